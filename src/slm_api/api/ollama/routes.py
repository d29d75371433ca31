"""Ollama's API (/api/...): HTTP only. Requests parse into protocol.py's models, serving.py
maps them onto the conversation core, and replies go out as Ollama's JSON, streams as
newline-delimited JSON objects (application/x-ndjson). Every error is {"error": "..."}."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import embedding_inputs, parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.errors import register_envelope
from slm_api.api.core.sse import guarded, json_bytes
from slm_api.api.ollama import models, serving
from slm_api.api.ollama.protocol import (
    VERSION,
    ChatRequest,
    ChatResponse,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    ModelList,
    OllamaError,
    PullRequest,
    RunningList,
    ShowRequest,
    ShowResponse,
    Version,
)
from slm_api.errors import APIError, SlmError
from slm_api.plumbing import state

bp = Blueprint("ollama", __name__)


def error_body(exc: SlmError) -> dict[str, Any]:
    """Ollama's error shape: only a message; the status says the kind."""
    return {"error": exc.message}


register_envelope(bp.name, error_body)


def _line(obj: dict[str, Any]) -> bytes:
    return json_bytes(obj) + b"\n"


def ndjson(objects: Iterable[dict[str, Any]]) -> Response:
    """One JSON object per line. An error after the first line can no longer change the status:
    it goes out as a last {"error": ...} line, which Ollama's clients raise."""
    lines = guarded(objects, _line, lambda exc: _line(error_body(exc)))
    response = Response(lines, mimetype="application/x-ndjson")
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _reply(reply: serving.ChatReply | serving.GenerateReply, stream: bool | None) -> Response:
    if stream is False:
        return jsonify(reply.complete())
    return ndjson(reply.stream())


# -- models ---------------------------------------------------------------------------------


@bp.get("/api/version")
@contract(response=Version, error=OllamaError)
def version() -> Response:
    """The Ollama version this server is compatible with."""
    return jsonify({"version": VERSION})


@bp.get("/api/tags")
@contract(response=ModelList, error=OllamaError)
def tags() -> Response:
    """List local models (Ollama's `ollama list`): every GGUF file in MODELS_DIR as
    `<file stem>:latest`, and each OLLAMA_ALIASES name."""
    return jsonify({"models": [models.listed(name, path) for name, path in models.listed_names()]})


@bp.post("/api/show")
@contract(body=ShowRequest, response=ShowResponse, error=OllamaError)
def show() -> Response:
    """Show a model: details, GGUF metadata as model_info, its chat template, capabilities."""
    req = parse_body(ShowRequest)
    path = state.engine().path_for_id(models.resolve(req.model))
    return jsonify(models.show(path, bool(req.verbose)))


@bp.get("/api/ps")
@contract(response=RunningList, error=OllamaError)
def ps() -> Response:
    """List the models loaded in memory, and when each will be unloaded (its keep-alive)."""
    engine = state.engine()
    out = [models.running(models.ollama_name(info.id), info.path, info.n_ctx,
                          engine.expires_at(info.id))
           for info in engine.loaded()]
    return jsonify({"models": out})


# -- generation -----------------------------------------------------------------------------


@bp.post("/api/chat")
@contract(body=ChatRequest, response=ChatResponse, error=OllamaError, media=True,
          content_type=("application/json", "application/x-ndjson"))
def chat() -> Response:
    """Chat with a model (Ollama's /api/chat).

    Streams by default (`"stream": false` for one object): NDJSON objects with
    `message.content` pieces, tool calls whole, then one `done: true` object with
    `done_reason` and the durations in nanoseconds. No messages: the model is loaded (or
    unloaded with `keep_alive: 0`)."""
    req = parse_body(ChatRequest)
    if not req.messages:
        return jsonify(serving.load_only(req, "message", {"role": "assistant", "content": ""}))
    return _reply(serving.ChatReply(req), req.stream)


@bp.post("/api/generate")
@contract(body=GenerateRequest, response=GenerateResponse, media=True,
          error=OllamaError, content_type=("application/json", "application/x-ndjson"))
def generate() -> Response:
    """Generate a completion (Ollama's /api/generate).

    The prompt through the model's chat template (`raw: true`: as it is), `context` from an
    earlier reply to continue it. Streams by default, as /api/chat."""
    req = parse_body(GenerateRequest)
    if not req.prompt and not req.context:
        return jsonify(serving.load_only(req, "response", ""))
    return _reply(serving.GenerateReply(req), req.stream)


# -- embeddings -----------------------------------------------------------------------------


@bp.post("/api/embed")
@contract(body=EmbedRequest, response=EmbedResponse, error=OllamaError)
def embed() -> Response:
    """Embed one input or a list: one L2-normalised vector each (the /v1/embeddings path)."""
    req = parse_body(EmbedRequest)
    texts = [req.input] if isinstance(req.input, str) else list(req.input)
    texts = embedding_inputs([t for t in texts if t])  # Ollama skips empty inputs
    vectors, n_tokens, timings = serving.embed(texts, req.model, req.truncate is not False, req)
    if req.dimensions:
        vectors = [serving.renorm(v[: req.dimensions]) for v in vectors]
    return jsonify({"model": req.model, "embeddings": vectors, **timings,
                    "prompt_eval_count": n_tokens})


@bp.post("/api/embeddings")
@contract(body=EmbeddingsRequest, response=EmbeddingsResponse, error=OllamaError)
def embeddings() -> Response:
    """Embed one prompt (Ollama's older route, superseded by /api/embed)."""
    req = parse_body(EmbeddingsRequest)
    vectors, _, _ = serving.embed([req.prompt] if req.prompt else [], req.model, True, req)
    return jsonify({"embedding": vectors[0] if vectors else []})


# -- what this server does not do -----------------------------------------------------------


@bp.post("/api/create")
@contract(body=CreateRequest, response=OllamaError, error=OllamaError)
def create() -> Response:
    """Refused: slm-api has no Modelfiles; put a GGUF file in MODELS_DIR instead."""
    parse_body(CreateRequest)
    raise APIError(400, "creating models is not supported: put a GGUF file in MODELS_DIR "
                   "(or download one with POST /load) and it is listed as <file stem>:latest")


@bp.post("/api/push")
@contract(body=PullRequest, response=OllamaError, error=OllamaError)
def push() -> Response:
    """Refused: there is no registry to push to."""
    parse_body(PullRequest)
    raise APIError(400, "pushing models is not supported by this server")


@bp.post("/api/pull")
@contract(body=PullRequest, response=OllamaError, error=OllamaError)
def pull() -> Response:
    """Refused for now: download GGUFs from the Hub with the admin route POST /load."""
    parse_body(PullRequest)
    raise APIError(400, "pulling from Ollama's registry is not supported: download a GGUF "
                   "from the Hugging Face Hub with the admin route POST /load")


@bp.delete("/api/delete")
@contract(body=DeleteRequest, response=OllamaError, error=OllamaError)
def delete() -> Response:
    """Refused here: delete model files with the admin route DELETE /v1/models/<id>."""
    req = parse_body(DeleteRequest)
    models.resolve(req.model)  # an unknown name is still Ollama's 404
    raise APIError(400, "deleting models through the Ollama API is not supported: use the "
                   "admin route DELETE /v1/models/<id>")


@bp.post("/api/copy")
@contract(body=CopyRequest, response=OllamaError, error=OllamaError)
def copy() -> Response:
    """Refused: name aliases are set with OLLAMA_ALIASES."""
    req = parse_body(CopyRequest)
    models.resolve(req.source)
    raise APIError(400, "copying models is not supported: add an alias with OLLAMA_ALIASES "
                   "(name:tag=model-id)")
