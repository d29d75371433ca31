"""Which models are in memory: load, unload, reload, least-recently-used eviction.

A request pins its model for as long as it runs (`with engine.use(...)`), so a reload or an
eviction never pulls a model out from under a generation: a retired model is closed when its last
request lets go of it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from slm_api.config import Settings
from slm_api.engine.llama_model import LoadedModel
from slm_api.engine.projector import file_media_kinds
from slm_api.engine.types import LoadOptions, ModelInfo
from slm_api.errors import (
    EngineError,
    InvalidRequest,
    ModelCapacity,
    ModelNotFound,
    NoModelLoaded,
)
from slm_api.gguf_info import file_kind

log = logging.getLogger(__name__)
_REAP_WAIT_MAX_S = 3600.0


def _is_file(path: Path) -> bool:
    # Client-chosen names: too long (ENAMETOOLONG) or with NUL must read as "no such model",
    # not escape as an exception and a 500.
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


@dataclass
class _Entry:
    model: LoadedModel
    pins: int = 0
    retired: bool = False
    last_used: float = 0.0  # monotonic; while pinned, when the last request began
    keep_alive_s: float | None = None  # idle time before it is unloaded; None: never


class Engine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.started_at = time.time()
        self._lock = threading.Lock()  # guards the dicts below; never held while loading
        self._load_lock = threading.Lock()  # one load at a time keeps peak memory bounded
        self._loaded: OrderedDict[str, _Entry] = OrderedDict()
        self._active_id: str | None = None
        self._draining = False
        self._reaper: threading.Thread | None = None  # started by the first finite keep-alive
        self._wake = threading.Condition(self._lock)
        self._closed = False

    # -- files -----------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    def model_files(self) -> list[Path]:
        if not self.models_dir.is_dir():
            return []
        # A projector (mmproj-*.gguf) is part of the model beside it, not a model.
        return sorted(p for p in self.models_dir.glob("*.gguf")
                      if p.is_file() and not p.name.lower().startswith("mmproj-"))

    def resolve_path(self, model_path: str | Path, param: str = "model_path") -> Path:
        """A client-given path, made absolute, refused unless it lies inside MODELS_DIR."""
        root = self.models_dir.resolve()
        if "\x00" in str(model_path):  # os calls raise ValueError on NUL: refuse it as input
            raise InvalidRequest(f"{param} must not contain NUL characters", param=param)
        raw = Path(model_path)
        candidate = (raw if raw.is_absolute() else root / raw).resolve()
        if not candidate.is_relative_to(root):
            # Paths given relative to the working directory (models/x.gguf) are accepted too.
            alt = Path.cwd().joinpath(raw).resolve()
            if raw.is_absolute() or not alt.is_relative_to(root):
                raise InvalidRequest(f"{param} must be inside MODELS_DIR ({root})", param=param)
            candidate = alt
        if not _is_file(candidate):
            raise ModelNotFound(f"model file not found: {candidate.name[:100]}", param=param)
        return candidate

    def path_for_id(self, model_id: str) -> Path:
        name = model_id if model_id.endswith(".gguf") else f"{model_id}.gguf"
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelNotFound(f"The model `{model_id}` does not exist")
        path = self.models_dir / name
        if not _is_file(path):
            raise ModelNotFound(f"The model `{model_id}` does not exist")
        return path.resolve()

    # -- state -----------------------------------------------------------------------------

    @property
    def active(self) -> ModelInfo | None:
        with self._lock:
            entry = self._loaded.get(self._active_id) if self._active_id else None
            return entry.model.info if entry else None

    @property
    def active_id(self) -> str | None:
        return self._active_id

    def loaded(self) -> list[ModelInfo]:
        with self._lock:
            return [e.model.info for e in self._loaded.values()]

    def is_loaded(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._loaded

    def media_kinds(self, path: Path) -> frozenset[str]:
        """What besides text the model in `path` reads ({"image"}, ...): its loaded projector's
        kinds, else what its projector file declares."""
        with self._lock:
            entry = self._loaded.get(path.stem)
        if entry is not None:
            return entry.model.media_kinds
        return file_media_kinds(path, self.settings)

    def in_use(self) -> int:
        with self._lock:
            return sum(e.pins for e in self._loaded.values())

    def stats(self) -> dict[str, dict[str, int]]:
        """Scheduler numbers per loaded model id ({"active", "queued", "n_parallel",
        "tokens_sampled"}), for
        /metrics. Read under the registry lock so no model is closed while being read."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for model_id, entry in self._loaded.items():
                try:
                    out[model_id] = dict(entry.model.stats())
                except Exception:  # a scrape must never fail because one model cannot answer
                    log.debug("no stats from model %s", model_id, exc_info=True)
        return out

    def loops_alive(self) -> bool:
        """Liveness: every loaded model's decode loop still runs."""
        with self._lock:
            return all(e.model.loop_alive for e in self._loaded.values())

    def drain(self, deadline: float) -> None:
        """Shutting down: no new generations; running ones end by `deadline` (monotonic)."""
        self._draining = True
        with self._lock:
            models = [e.model for e in self._loaded.values()]
        for model in models:
            model.drain(deadline)

    @property
    def draining(self) -> bool:
        return self._draining

    # -- loading ---------------------------------------------------------------------------

    def start(self) -> None:
        """Load the configured default model if its file is there; serve without one otherwise."""
        path = self.settings.default_model_path
        if not path.is_file():
            log.warning("default model %s not found; serving with no model loaded", path)
            return
        # The operator chose MODEL_PATH, so unlike a client's /reload it may lie anywhere.
        try:
            self._load_path(path.resolve(), LoadOptions(), activate=True, replace=True)
        except EngineError as exc:
            log.error("could not load %s: %s; serving with no model loaded", path, exc.message)

    def load(
        self, model_id: str, options: LoadOptions | None = None, *, activate: bool = False,
        evict_active: bool = True,
    ) -> ModelInfo:
        """Load `model_id` from MODELS_DIR. With `evict_active` False (a client without admin
        rights asked), a load that could only fit by unloading the active model is refused
        with ModelCapacity instead: the model every other client uses stays."""
        path = self.path_for_id(model_id)
        return self._load_path(path, options or LoadOptions(), activate=activate,
                               evict_active=evict_active)

    def reload(self, path: str | Path, options: LoadOptions | None = None) -> ModelInfo:
        """Load `path` and make it the active model. On failure the old model keeps serving."""
        path = self.resolve_path(path)
        return self._load_path(path, options or LoadOptions(), activate=True, replace=True)

    def _load_path(
        self, path: Path, options: LoadOptions, *, activate: bool, replace: bool = False,
        evict_active: bool = True,
    ) -> ModelInfo:
        model_id = path.stem
        with self._load_lock:
            with self._lock:
                entry = self._loaded.get(model_id)
                if entry and not replace:
                    self._loaded.move_to_end(model_id)
                    if activate:
                        self._active_id = model_id
                        entry.keep_alive_s = None
                    return entry.model.info
                if not (evict_active or activate) and self._needs_active_evicted(path):
                    raise ModelCapacity(
                        f"loading {model_id} would unload {self._active_id}, the model other "
                        f"clients use (MAX_LOADED_MODELS={self.settings.max_loaded_models}); "
                        "that needs admin rights, or a higher MAX_LOADED_MODELS")
            if options.mmproj is not None:  # a client's path: inside MODELS_DIR or refused
                options = dataclasses.replace(
                    options, mmproj=self.resolve_path(options.mmproj, param="mmproj"))
            # Load outside the registry lock: requests on other models keep flowing.
            model = LoadedModel.load(path, self.settings, options)
            with self._lock:
                old = self._loaded.pop(model_id, None)
                if old:
                    self._retire(old)
                # The model serving requests that name none stays (no surprise 503 on
                # /health after an idle night); models loaded on demand expire.
                keep = None if activate else self.settings.keep_alive_s
                # A second's grace: the request that loaded it pins it before any unload.
                self._loaded[model_id] = _Entry(model, last_used=time.monotonic() + 1.0,
                                                keep_alive_s=keep)
                self._schedule()
                # An embedding model loaded on demand never becomes the model chat falls back to.
                if activate or (self._active_id is None and model.info.kind == "chat"):
                    self._active_id = model_id
                self._evict_over_capacity(keep=model_id, spare_active=not evict_active)
            log.info("loaded model %s from %s", model_id, path)
            return model.info

    def unload(self, model_id: str) -> bool:
        with self._lock:
            entry = self._loaded.pop(model_id, None)
            if entry is None:
                return False
            if self._active_id == model_id:
                self._active_id = None
            self._retire(entry)
        return True

    def _needs_active_evicted(self, path: Path) -> bool:
        # Called with self._lock held: whether a chat model from `path` fits only in the place
        # of the active one (every other chat model in memory is in use).
        if self._active_id not in self._loaded:
            return False
        if file_kind(path, self.settings.embedding_models) != "chat":
            return False  # embedding and rerank models have a limit of their own
        chat = [mid for mid, e in self._loaded.items() if e.model.info.kind == "chat"]
        spare = [mid for mid in chat if mid != self._active_id and self._loaded[mid].pins == 0]
        return len(chat) >= self.settings.max_loaded_models and not spare

    def _evict_over_capacity(self, keep: str, spare_active: bool = False) -> None:
        # Called with self._lock held. Least recently used first, never one that is pinned,
        # and with `spare_active` never the active model.
        # Chat models count against MAX_LOADED_MODELS; embedding and rerank models (tens of MB,
        # no decode loop) against MAX_LOADED_EMBEDDING_MODELS, so loading one never evicts the
        # chat model.
        for chat, limit in ((True, self.settings.max_loaded_models),
                            (False, self.settings.max_loaded_embedding_models)):
            while True:
                ids = [mid for mid, e in self._loaded.items()
                       if (e.model.info.kind == "chat") == chat]
                victim = next((mid for mid in ids
                               if mid != keep and self._loaded[mid].pins == 0
                               and not (spare_active and mid == self._active_id)), None)
                if len(ids) <= limit or victim is None:
                    break
                self._retire(self._loaded.pop(victim))
                log.info("unloaded model %s (least recently used)", victim)

    def _retire(self, entry: _Entry) -> None:
        # Called with self._lock held: close now if idle, else when the last request lets go.
        entry.retired = True
        if entry.pins == 0:
            entry.model.close()

    def default_embedding_model(self) -> str | None:
        """EMBEDDING_MODEL's id when its file is in MODELS_DIR (`make run` writes MiniLM)."""
        model_id = self.settings.embedding_model
        if not model_id or model_id == "off":
            return None
        try:
            self.path_for_id(model_id)
        except ModelNotFound:
            return None
        return model_id

    # -- use -------------------------------------------------------------------------------

    @contextmanager
    def use(
        self, model_id: str | None = None, options: LoadOptions | None = None, *,
        evict_active: bool = True,
    ) -> Iterator[LoadedModel]:
        """Pin a model for one request, loading it first when it is not in memory (see load
        for `evict_active`)."""
        entry = self._pin(model_id, options, evict_active)
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.pins -= 1
                if entry.pins == 0:
                    entry.last_used = time.monotonic()  # idle from now: keep-alive counts
                if entry.retired and entry.pins == 0:
                    entry.model.close()
                elif not entry.retired:
                    self._evict_over_capacity(keep=self._active_id or "")
                    self._schedule()

    def _pin(self, model_id: str | None, options: LoadOptions | None,
             evict_active: bool) -> _Entry:
        if not model_id:
            model_id = self._active_id
            if model_id is None:
                raise NoModelLoaded("no model is loaded; POST /reload or /v1/models to load one")
        elif model_id.endswith(".gguf"):
            model_id = model_id[: -len(".gguf")]
        for _ in range(3):
            with self._lock:
                entry = self._loaded.get(model_id)
                if entry is not None:
                    entry.pins += 1
                    entry.last_used = time.monotonic()
                    self._loaded.move_to_end(model_id)
                    return entry
            self.load(model_id, options, evict_active=evict_active)
        raise NoModelLoaded(f"model {model_id} was unloaded while loading; try again")

    # -- keep-alive -------------------------------------------------------------------------

    def set_keep_alive(self, model_id: str, seconds: float | None) -> None:
        """How long `model_id` stays loaded once idle (Ollama's keep_alive); 0 unloads it as
        soon as no request uses it, None keeps it."""
        with self._lock:
            entry = self._loaded.get(model_id)
            if entry is not None:
                entry.keep_alive_s = seconds
                self._schedule()

    def shorten_keep_alive(self, model_id: str, seconds: float | None) -> bool:
        """A plain client's keep_alive (api/core/rights.py): it may bring forward the unload
        of a model loaded on demand, never of the active model, never lengthen a life, and
        never while another request uses the model. Whether it applied."""
        with self._lock:
            entry = self._loaded.get(model_id)
            if (entry is None or model_id == self._active_id or entry.keep_alive_s is None
                    or seconds is None or seconds >= entry.keep_alive_s or entry.pins > 1):
                return False
            entry.keep_alive_s = max(seconds, 0.0)
            self._schedule()
            return True

    def expires_at(self, model_id: str) -> float | None:
        """When (time.time()) an idle `model_id` will be unloaded; None: never (or not
        loaded). A model in use expires its keep-alive after the request ends."""
        with self._lock:
            entry = self._loaded.get(model_id)
            if entry is None or entry.keep_alive_s is None:
                return None
            idle_since = entry.last_used if entry.pins == 0 else time.monotonic()
            return time.time() + idle_since + entry.keep_alive_s - time.monotonic()

    def _schedule(self) -> None:
        # Called with self._lock held: unload what is due now, let the reaper wait for the rest.
        due = self._unload_expired(time.monotonic())
        if due is not None and self._reaper is None and not self._closed:
            self._reaper = threading.Thread(target=self._reap, name="keep-alive", daemon=True)
            self._reaper.start()
        self._wake.notify_all()

    def _unload_expired(self, now: float) -> float | None:
        """Unload idle models past their keep-alive (lock held); the next deadline, if any."""
        deadline = None
        for model_id, entry in list(self._loaded.items()):
            if entry.pins or entry.keep_alive_s is None:
                continue
            ends = entry.last_used + entry.keep_alive_s
            if ends <= now:
                # The active id is kept: a request naming no model loads it again.
                self._retire(self._loaded.pop(model_id))
                log.info("unloaded model %s (idle for its keep-alive)", model_id)
            else:
                deadline = ends if deadline is None else min(deadline, ends)
        return deadline

    def _reap(self) -> None:
        with self._lock:
            while not self._closed:
                deadline = self._unload_expired(time.monotonic())
                # At most an hour a wait: a keep_alive of 1e300 s is a valid request, and a
                # wait that long overflows the clock (OverflowError would end this thread, and
                # with it every later unload).
                self._wake.wait(None if deadline is None
                                else min(deadline - time.monotonic(), _REAP_WAIT_MAX_S))

    def close(self) -> None:
        with self._lock:
            entries = list(self._loaded.values())
            self._loaded.clear()
            self._active_id = None
            self._closed = True
            self._wake.notify_all()
            for entry in entries:
                self._retire(entry)
