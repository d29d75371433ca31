"""Model listings: GET /models (this server's own shape) and the OpenAI /v1/models family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.core.contract import contract
from slm_api.api.openai.protocol import LocalModels, Model, ModelList
from slm_api.engine import ModelNotFound
from slm_api.gguf_info import file_kind
from slm_api.plumbing import state

bp = Blueprint("models", __name__)


def _kind(path: Path) -> str:
    loaded = {m.id: m for m in state.engine().loaded()}
    if path.stem in loaded:
        return loaded[path.stem].kind
    return file_kind(path, state.settings().embedding_models)


def _openai_model(path: Path) -> dict[str, Any]:
    return {
        "id": path.stem,
        "object": "model",
        "created": int(path.stat().st_mtime),
        "owned_by": "slm-api",
        "kind": _kind(path),
        "loaded": state.engine().is_loaded(path.stem),
        "size_bytes": path.stat().st_size,
    }


@bp.get("/models")
@contract(response=LocalModels)
def list_models() -> Response:
    """List the GGUF files in MODELS_DIR and the active model."""
    eng = state.engine()
    active = eng.active
    return jsonify(
        {
            "active": {"name": active.id, "path": str(active.path), "n_ctx": active.n_ctx}
            if active
            else None,
            "models": [
                {"name": p.name, "id": p.stem, "size_bytes": p.stat().st_size,
                 "loaded": eng.is_loaded(p.stem)}
                for p in eng.model_files()
            ],
        }
    )


@bp.get("/v1/models")
@contract(response=ModelList)
def openai_models() -> Response:
    """List models (OpenAI shape)."""
    data = [_openai_model(p) for p in state.engine().model_files()]
    return jsonify({"object": "list", "data": data})


@bp.get("/v1/models/chat")
@contract(response=ModelList)
def chat_models() -> Response:
    """List chat models."""
    data = [_openai_model(p) for p in state.engine().model_files()]
    return jsonify({"object": "list", "data": [m for m in data if m["kind"] == "chat"]})


@bp.get("/v1/models/embeddings")
@contract(response=ModelList)
def embedding_models() -> Response:
    """List embedding models."""
    data = [_openai_model(p) for p in state.engine().model_files()]
    return jsonify({"object": "list", "data": [m for m in data if m["kind"] == "embedding"]})


@bp.get("/v1/models/<path:model_id>")
@contract(response=Model)
def openai_model(model_id: str) -> Response:
    """Retrieve a model."""
    try:
        return jsonify(_openai_model(state.engine().path_for_id(model_id)))
    except ModelNotFound:
        raise ModelNotFound(f"The model `{model_id}` does not exist") from None
