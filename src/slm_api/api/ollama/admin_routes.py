"""Ollama's model management (/api/pull, /api/delete, /api/copy): HTTP only.

These change what the server holds (they fill or empty the disk): each route declares admin
access (@contract(access="admin")), so a plain API key gets a 403, in Ollama's {"error": "..."}
shape (its dialect, bound here as on the other /api routes)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.dialect import bind_dialect
from slm_api.api.ollama import manage
from slm_api.api.ollama.protocol import (
    CopyRequest,
    DeleteRequest,
    OllamaError,
    Progress,
    PullRequest,
    Status,
)
from slm_api.api.ollama.pull import Pull
from slm_api.api.ollama.routes import OLLAMA, ndjson

bp = Blueprint("ollama_admin", __name__)
bind_dialect(bp, OLLAMA)


@bp.post("/api/pull")
@contract(access="admin", body=PullRequest, response=Progress, error=OllamaError,
          content_type=("application/json", "application/x-ndjson"))
def pull() -> Response:
    """Download a GGUF from the Hugging Face Hub (admin).

    `hf.co/{owner}/{repo}:{quant}` (Q4_K_M without a tag), `hf.co/{owner}/{repo}:{file.gguf}`
    or `{owner}/{repo}/{file.gguf}`. Streams Ollama's progress objects (`pulling <digest>` with
    `total`/`completed`, `verifying sha256 digest`, `writing manifest`, `success`); with
    `"stream": false` only the last. The model is then listed and served under that name."""
    req = parse_body(PullRequest)
    job = Pull.start(req.model)
    if req.stream is False:
        return jsonify(job.run())
    return ndjson(job.progress())


@bp.delete("/api/delete")
@contract(access="admin", body=DeleteRequest, response=Status, error=OllamaError)
def delete() -> Response:
    """Delete a model name (admin); the file goes with its last name."""
    req = parse_body(DeleteRequest)
    manage.delete(req.model)
    return jsonify({"status": "success"})


@bp.post("/api/copy")
@contract(access="admin", body=CopyRequest, response=Status, error=OllamaError)
def copy() -> Response:
    """Give a model another name (admin): a record beside the files, no second copy."""
    req = parse_body(CopyRequest)
    manage.copy(req.source, req.destination)
    return jsonify({"status": "success"})
