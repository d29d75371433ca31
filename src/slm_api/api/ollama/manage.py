"""Ollama's /api/delete and /api/copy over MODELS_DIR and the recorded names (names.py).

A copy is a new name for the same file; a delete takes one name away, and the file with its
last name. A model in memory is unloaded first, as `DELETE /v1/models/{id}` does (a request
still running on it finishes: the engine closes it when the last one lets go).
"""

from __future__ import annotations

from slm_api.api.ollama import models, names
from slm_api.errors import APIError
from slm_api.plumbing import state


def delete(model: str) -> None:
    if models.is_configured_alias(model):
        raise APIError(400, f"'{model}' is set by OLLAMA_ALIASES; remove it there", param="model")
    engine = state.engine()
    model_id = models.resolve(model)  # Ollama's 404 for an unknown name
    path = engine.path_for_id(model_id)
    full = models.ollama_name(model.strip())
    last = True

    def take(recorded: dict[str, str]) -> None:
        nonlocal last
        if recorded.get(full) == path.name:
            del recorded[full]
            last = path.name not in recorded.values()
        else:  # the file's own name: the file goes, and every name given to it
            for name in [n for n, f in recorded.items() if f == path.name]:
                del recorded[name]

    names.update(engine.models_dir, take)
    if last:
        engine.unload(model_id)
        path.unlink(missing_ok=True)


def copy(source: str, destination: str) -> None:
    engine = state.engine()
    model_id = models.resolve(source)
    path = engine.path_for_id(model_id)
    dest = names.valid_name(destination.strip(), "destination")
    if models.is_configured_alias(dest):
        raise APIError(400, f"'{destination}' is set by OLLAMA_ALIASES", param="destination")
    stem, _, tag = dest.rpartition(":")
    other = engine.models_dir / f"{stem}.gguf"
    if tag == models.DEFAULT_TAG and "/" not in stem and other.is_file() \
            and other.resolve() != path:
        # Recorded, it would shadow that file's own name: two models under one name.
        raise APIError(400, f"'{destination}' is the name of another model file",
                       param="destination")

    def add(recorded: dict[str, str]) -> None:
        if path.name not in recorded.values():
            recorded[names.names_of(recorded, path.name)[0]] = path.name  # keep its own name
        recorded[dest] = path.name

    names.update(engine.models_dir, add)
