"""Routes that change what the server holds: downloads, reloads, model load/unload, cache warm-up.

Each is an admin route (see security): it can fill the disk or swap the model.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, jsonify

from slm_api.api.admin.protocol import (
    AdminResult,
    DownloadJob,
    LoadRequest,
    ModelDeleted,
    ModelLoadRequest,
    ReloadRequest,
    RestoreCacheRequest,
    SetModelRequest,
)
from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.media import plan_with_media
from slm_api.engine import ModelInfo
from slm_api.errors import APIError
from slm_api.hub import download_gguf, validate_request
from slm_api.plumbing import state

bp = Blueprint("admin", __name__)


def _info(info: ModelInfo) -> dict:
    data = asdict(info)
    data["path"] = str(info.path)
    data["mmproj"] = str(info.mmproj) if info.mmproj else None
    data["media_kinds"] = sorted(info.media_kinds)
    return data


@bp.post("/load")
@contract(access="admin", body=LoadRequest, response=AdminResult, statuses=(202,))
def load() -> tuple[Response, int]:
    """Download a GGUF file from the Hugging Face Hub.

    `"async": true` answers 202 with a job id to poll."""
    req = parse_body(LoadRequest)
    settings = state.settings()
    validate_request(req.repo_id, req.filename, req.revision, settings)
    if req.async_:
        job_id = state.downloads().start(req.repo_id, req.filename, req.revision)
        return jsonify({"status": "accepted", "job_id": job_id, "poll": f"/load/{job_id}"}), 202
    path = download_gguf(req.repo_id, req.filename, req.revision, settings)
    rel = path.name
    return jsonify(
        {
            "status": "downloaded",
            "repo_id": req.repo_id,
            "filename": req.filename,
            "path": str(path),
            "hint": f'POST /reload {{"model_path": "{rel}"}}',
        }
    ), 200


@bp.get("/load/<job_id>")
@contract(access="admin", response=DownloadJob)
def load_job(job_id: str) -> Response:
    """Poll a download job."""
    job = state.downloads().get(job_id)
    if job is None:
        raise APIError(404, f"no download job {job_id}", param="job_id", code="job_not_found")
    return jsonify(job)


@bp.delete("/load/<job_id>")
@contract(access="admin", response=DownloadJob)
def cancel_load_job(job_id: str) -> Response:
    """Cancel a download job."""
    if not state.downloads().cancel(job_id):
        raise APIError(404, f"no download job {job_id}", param="job_id", code="job_not_found")
    return jsonify(state.downloads().get(job_id))


@bp.post("/reload")
@contract(access="admin", body=ReloadRequest, response=AdminResult)
def reload() -> Response:
    """Load a GGUF file and make it the active model."""
    req = parse_body(ReloadRequest)
    info = state.engine().reload(req.model_path, req.to_load_options())
    return jsonify({"status": "reloaded", "model": _info(info)})


@bp.post("/v1/models")
@contract(access="admin", body=ModelLoadRequest, response=AdminResult)
def load_model() -> Response:
    """Load a model from MODELS_DIR."""
    req = parse_body(ModelLoadRequest)
    info = state.engine().load(req.model, req.to_load_options())
    return jsonify({"status": "loaded", "model": _info(info)})


@bp.post("/setModel")
@contract(access="admin", body=SetModelRequest, response=AdminResult)
def set_model() -> Response:
    """Load a model and make it the default."""
    req = parse_body(SetModelRequest)
    info = state.engine().load(req.model_name, req.to_load_options(), activate=True)
    return jsonify({"status": "loaded", "model": _info(info)})


@bp.delete("/v1/models/<path:model_id>")
@contract(access="admin", response=ModelDeleted)
def unload_model(model_id: str) -> Response:
    """Unload a model from memory."""
    eng = state.engine()
    eng.path_for_id(model_id)  # 404 for an id that names no file
    unloaded = eng.unload(model_id.removesuffix(".gguf"))
    return jsonify({"id": model_id, "object": "model", "deleted": unloaded})


@bp.post("/restore_cache")
@contract(access="admin", body=RestoreCacheRequest, response=AdminResult)
def restore_cache() -> Response:
    """Pre-fill the prompt cache with messages."""
    req = parse_body(RestoreCacheRequest)
    with state.engine().use(req.model) as model:
        # The very tokens a chat request with this body reads (generation prompt, tools and
        # thinking as planned), so its prompt is found whole in the cache.
        planned = plan_with_media(model, req.to_turn())
        prompt = planned.tokens
        cached = model.warm(prompt, planned.media)
        model_id = model.info.id
    return jsonify({"status": "cached", "model": model_id, "cached_tokens": cached,
                    "prompt_tokens": len(prompt)})
