"""Ollama's API (/api/...): HTTP only. Requests parse into protocol.py's models, serving.py
maps them onto the conversation core, and replies go out as Ollama's JSON, streams as
newline-delimited JSON objects (application/x-ndjson). Every error is {"error": "..."}."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import embedding_inputs, parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.dialect import Dialect, bind_dialect
from slm_api.api.core.sse import stream_response
from slm_api.api.ollama import models, serving
from slm_api.api.ollama.protocol import (
    VERSION,
    ChatRequest,
    ChatResponse,
    CreateRequest,
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


# Streams as one JSON object a line; an error after the first line goes out as a last
# {"error": ...} line, which Ollama's clients raise.
OLLAMA = Dialect(error_body, "ndjson")
bind_dialect(bp, OLLAMA)


def ndjson(objects: Iterable[dict[str, Any]]) -> Response:
    return stream_response(objects, OLLAMA)


def _reply(reply: serving.ChatReply | serving.GenerateReply, stream: bool | None) -> Response:
    if stream is False:
        return jsonify(reply.complete())
    return ndjson(reply.stream())


# -- models ---------------------------------------------------------------------------------


@bp.get("/api/version")
@contract(access="api", response=Version, error=OllamaError)
def version() -> Response:
    """The Ollama version this server is compatible with."""
    return jsonify({"version": VERSION})


@bp.get("/api/tags")
@contract(access="api", response=ModelList, error=OllamaError)
def tags() -> Response:
    """List local models (Ollama's `ollama list`): every GGUF file in MODELS_DIR as
    `<file stem>:latest`, and each OLLAMA_ALIASES name."""
    return jsonify({"models": [models.listed(name, path) for name, path in models.listed_names()]})


@bp.post("/api/show")
@contract(access="api", body=ShowRequest, response=ShowResponse, error=OllamaError)
def show() -> Response:
    """Show a model: details, GGUF metadata as model_info, its chat template, capabilities."""
    req = parse_body(ShowRequest)
    path = state.engine().path_for_id(models.resolve(req.model))
    return jsonify(models.show(path, bool(req.verbose)))


@bp.get("/api/ps")
@contract(access="api", response=RunningList, error=OllamaError)
def ps() -> Response:
    """List the models loaded in memory, and when each will be unloaded (its keep-alive)."""
    engine = state.engine()
    out = [models.running(models.ollama_name(info.id), info.path, info.n_ctx,
                          engine.expires_at(info.id))
           for info in engine.loaded()]
    return jsonify({"models": out})


# -- generation -----------------------------------------------------------------------------


@bp.post("/api/chat")
@contract(access="api", body=ChatRequest, response=ChatResponse, error=OllamaError,
          media=True,
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
@contract(access="api", body=GenerateRequest, response=GenerateResponse, media=True,
          error=OllamaError, content_type=("application/json", "application/x-ndjson"))
def generate() -> Response:
    """Generate a completion (Ollama's /api/generate).

    The prompt through the model's chat template (`raw: true`: as it is), `context` from an
    earlier reply to continue it. With `suffix`: fill in the middle between prompt and suffix
    with the model's FIM tokens (a 400 for a model without them). Streams by default, as
    /api/chat."""
    req = parse_body(GenerateRequest)
    if not req.prompt and not req.context and not req.suffix:
        return jsonify(serving.load_only(req, "response", ""))
    return _reply(serving.GenerateReply(req), req.stream)


# -- embeddings -----------------------------------------------------------------------------


@bp.post("/api/embed")
@contract(access="api", body=EmbedRequest, response=EmbedResponse, error=OllamaError)
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
@contract(access="api", body=EmbeddingsRequest, response=EmbeddingsResponse, error=OllamaError)
def embeddings() -> Response:
    """Embed one prompt (Ollama's older route, superseded by /api/embed)."""
    req = parse_body(EmbeddingsRequest)
    vectors, _, _ = serving.embed([req.prompt] if req.prompt else [], req.model, True, req)
    return jsonify({"embedding": vectors[0] if vectors else []})


# -- what this server does not do -----------------------------------------------------------


@bp.post("/api/create")
@contract(access="admin", body=CreateRequest, response=OllamaError, error=OllamaError)
def create() -> Response:
    """Refused: slm-api has no Modelfiles; put a GGUF file in MODELS_DIR instead."""
    parse_body(CreateRequest)
    raise APIError(400, "creating models is not supported: put a GGUF file in MODELS_DIR "
                   "(or download one with POST /load) and it is listed as <file stem>:latest")


@bp.post("/api/push")
@contract(access="admin", body=PullRequest, response=OllamaError, error=OllamaError)
def push() -> Response:
    """Refused: there is no registry to push to."""
    parse_body(PullRequest)
    raise APIError(400, "pushing models is not supported by this server")

