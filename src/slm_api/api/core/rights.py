"""What a request may change about the models other clients share (issue 36, class 3).

A generating request can carry load options (OpenAI's `load_model_configs`, Ollama's
`num_ctx`/`num_batch`/`num_gpu`/`num_thread`) and, on Ollama's routes, a `keep_alive`. Both
act on a model in memory that every client uses, so what decides is the admin rights the admin
routes check (plumbing/security.py: ADMIN_API_KEYS, else the loopback rule):

- Load options only matter when the request's model is not in memory and is loaded for it.
  They are capped by the server's own settings for everyone (never more KV memory than
  N_CTX x N_PARALLEL, threads, batch or GPU layers than configured): a larger model is what
  the admin routes (POST /reload, /v1/models) are for. A plain client's options are dropped for
  the start-up model (or the active one): it is loaded as the operator configured it, however
  it went out of memory.
- A plain client's keep_alive may only shorten the life of a model its own request loaded on
  demand, while no other request uses it (Engine.shorten_keep_alive); an admin's sets it.
  A generation's keep_alive never touches the active model (Open WebUI sends one with every
  chat): it goes only by an explicit unload (`ollama stop`, DELETE /v1/models/<id>).
- A plain client may name any model of MODELS_DIR and have it loaded, but never in the place
  of the active model: when MAX_LOADED_MODELS is reached and only the active model could make
  room, the request is a 403 (Engine.load's evict_active).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from slm_api.config import KV_CACHE_TYPES, Settings
from slm_api.engine.llama_model import LoadedModel
from slm_api.engine.types import LoadOptions
from slm_api.plumbing import state
from slm_api.plumbing.security import has_admin_rights


def is_shared(model_id: str | None) -> bool:
    """Whether `model_id` (None: the active model) is the one the server was started with or
    the one requests naming no model go to."""
    engine = state.engine()
    name = (model_id or "").removesuffix(".gguf")
    return not name or name in (engine.active_id, engine.settings.default_model_path.stem)


def capped(options: LoadOptions, settings: Settings) -> LoadOptions:
    """`options` within the server's settings: the KV cache (n_ctx x n_parallel cells) no
    larger than N_CTX x N_PARALLEL, one long sequence or several short ones; threads, batch
    and GPU layers no more than configured."""
    n_parallel = min(options.n_parallel or settings.n_parallel, settings.n_parallel)
    budget = settings.n_ctx * settings.n_parallel
    n_ctx = None if options.n_ctx is None else min(options.n_ctx, budget // n_parallel)
    gpu = options.n_gpu_layers
    if gpu is not None and settings.n_gpu_layers >= 0 and not 0 <= gpu <= settings.n_gpu_layers:
        gpu = settings.n_gpu_layers  # -1 is "all layers": more than a finite setting
    return replace(
        options,
        n_ctx=n_ctx,
        n_parallel=n_parallel if options.n_parallel is not None else None,
        n_threads=None if options.n_threads is None else min(options.n_threads, settings.threads),
        n_batch=None if options.n_batch is None else min(options.n_batch, settings.n_batch),
        n_gpu_layers=gpu,
        **_capped_cache(options, settings),
    )


def _capped_cache(options: LoadOptions, settings: Settings) -> dict[str, str | None]:
    # A cache type larger per value than the configured one (f32 over q8_0) would grow the
    # KV memory past what the operator sized: the configured type instead.
    configured = settings.kv_cache
    out: dict[str, str | None] = {"kv_cache_type": None}
    for side, mine in (("k", configured.type_k), ("v", configured.type_v)):
        asked = getattr(options, f"kv_cache_type_{side}") or options.kv_cache_type
        out[f"kv_cache_type_{side}"] = None if asked is None else \
            asked if KV_CACHE_TYPES[asked] <= KV_CACHE_TYPES[mine] else mine
    return out


def permitted_load_options(model_id: str | None, options: LoadOptions | None
                           ) -> LoadOptions | None:
    """The load options this request may use if `model_id` has to be loaded for it."""
    if options is None:
        return None
    if is_shared(model_id) and not has_admin_rights():
        return None
    return capped(options, state.settings())


@contextmanager
def use_model(model_id: str | None, options: LoadOptions | None = None
              ) -> Iterator[LoadedModel]:
    """The engine's `use` for a client's request: its load options as permitted above, and
    the active model unloaded to make room only with admin rights."""
    with state.engine().use(model_id, permitted_load_options(model_id, options),
                            evict_active=has_admin_rights()) as model:
        yield model

