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
"""

from __future__ import annotations

from dataclasses import replace

from slm_api.config import Settings
from slm_api.engine.types import LoadOptions
from slm_api.plumbing import state
from slm_api.plumbing.security import has_admin_rights


def _shared(model_id: str | None) -> bool:
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
    )


def permitted_load_options(model_id: str | None, options: LoadOptions | None
                           ) -> LoadOptions | None:
    """The load options this request may use if `model_id` has to be loaded for it."""
    if options is None:
        return None
    if _shared(model_id) and not has_admin_rights():
        return None
    return capped(options, state.settings())
