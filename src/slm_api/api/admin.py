"""Routes that change what the server holds: downloads, reloads, model load/unload, cache warm-up.

Each is an admin route (see security): it can fill the disk or swap the model.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, current_app, jsonify

from slm_api.api.generate import engine, load_options, parse_body
from slm_api.api.schemas import (
    LoadRequest,
    ModelLoadRequest,
    ReloadRequest,
    RestoreCacheRequest,
    SetModelRequest,
)
from slm_api.engine import LoadOptions, ModelInfo
from slm_api.errors import APIError
from slm_api.hub import download_gguf, validate_request

bp = Blueprint("admin", __name__)


def _info(info: ModelInfo) -> dict:
    data = asdict(info)
    data["path"] = str(info.path)
    return data


def _jobs():
    return current_app.extensions["slm_downloads"]


@bp.post("/load")
def load() -> tuple[Response, int]:
    req = parse_body(LoadRequest)
    settings = current_app.config["SETTINGS"]
    validate_request(req.repo_id, req.filename, req.revision, settings)
    if req.async_:
        job_id = _jobs().start(req.repo_id, req.filename, req.revision)
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
def load_job(job_id: str) -> Response:
    job = _jobs().get(job_id)
    if job is None:
        raise APIError(404, f"no download job {job_id}", param="job_id", code="job_not_found")
    return jsonify(job)


@bp.delete("/load/<job_id>")
def cancel_load_job(job_id: str) -> Response:
    if not _jobs().cancel(job_id):
        raise APIError(404, f"no download job {job_id}", param="job_id", code="job_not_found")
    return jsonify(_jobs().get(job_id))


@bp.post("/reload")
def reload() -> Response:
    req = parse_body(ReloadRequest)
    options = LoadOptions(**req.model_dump(exclude_none=True, exclude={"model_path"}))
    info = engine().reload(req.model_path, options)
    return jsonify({"status": "reloaded", "model": _info(info)})


@bp.post("/v1/models")
def load_model() -> Response:
    req = parse_body(ModelLoadRequest)
    options = LoadOptions(**req.model_dump(exclude_none=True, exclude={"model"}))
    info = engine().load(req.model, options)
    return jsonify({"status": "loaded", "model": _info(info)})


@bp.post("/setModel")
def set_model() -> Response:
    req = parse_body(SetModelRequest)
    info = engine().load(req.model_name, load_options(req.load_model_configs), activate=True)
    return jsonify({"status": "loaded", "model": _info(info)})


@bp.delete("/v1/models/<path:model_id>")
def unload_model(model_id: str) -> Response:
    eng = engine()
    eng.path_for_id(model_id)  # 404 for an id that names no file
    unloaded = eng.unload(model_id.removesuffix(".gguf"))
    return jsonify({"id": model_id, "object": "model", "deleted": unloaded})


@bp.post("/restore_cache")
def restore_cache() -> Response:
    req = parse_body(RestoreCacheRequest)
    messages, tools = req.message_dicts(), req.tool_dicts()
    with engine().use(req.model) as model:
        prompt = model.tokenize(model.chat.render(messages, tools=tools))
        cached = model.warm(prompt)
        model_id = model.info.id
    return jsonify({"status": "cached", "model": model_id, "cached_tokens": cached,
                    "prompt_tokens": len(prompt)})
