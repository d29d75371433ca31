"""OpenAI's API, HTTP only: /v1/chat/completions, /v1/completions, /v1/embeddings and the model
listings (/v1/models, /models). Each view parses its body into protocol.py's model, calls
serving.py, and returns JSON or an SSE stream. One blueprint per endpoint family, named as
before the move: endpoint names (`chat.chat_completions`, ...) are the OpenAPI operation ids
and what security.py's route policy reads."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.sse import stream_response
from slm_api.api.openai import serving
from slm_api.api.openai.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    LocalModels,
    Model,
    ModelList,
)
from slm_api.engine import ModelNotFound
from slm_api.plumbing import state

chat_bp = Blueprint("chat", __name__)
completions_bp = Blueprint("completions", __name__)
embeddings_bp = Blueprint("embeddings", __name__)
models_bp = Blueprint("models", __name__)


@chat_bp.post("/v1/chat/completions")
@contract(access="api", body=ChatCompletionRequest, response=ChatCompletion,
          stream=ChatCompletionChunk, media=True)
def chat_completions() -> Response:
    """Create a chat completion.

    Messages in, an assistant message (or tool calls) out, as OpenAI's API. With
    `"stream": true` the reply comes as Server-Sent Events. `response_format` (json_object,
    json_schema) and forced `tool_choice` constrain the output with a grammar. `n` choices
    (up to MAX_N) share one evaluation of the prompt."""
    req = parse_body(ChatCompletionRequest)
    reply = serving.ChatReply(req)
    if req.stream:
        return stream_response(reply.stream())
    return jsonify(reply.complete())


@completions_bp.post("/v1/completions")
@contract(access="api", body=CompletionRequest, response=Completion, stream=Completion,
          media=True)
def completions() -> Response:
    """Create a text completion (the legacy API).

    A prompt (text or token ids, one or several) in, its continuation out. On a vision model
    a prompt may be llama-server's object, `{"prompt_string": "... <__media__> ...",
    "multimodal_data": ["<base64 image>"]}`: one marker per image, in order."""
    req = parse_body(CompletionRequest)
    reply = serving.CompletionReply(req)
    if req.stream:
        return stream_response(reply.stream())
    return jsonify(reply.complete())


@embeddings_bp.post("/v1/embeddings")
@contract(access="api", body=EmbeddingRequest, response=EmbeddingList)
def embeddings() -> Response:
    """Create embeddings.

    One L2-normalised vector per input. Without `model`, the default embedding model
    (all-MiniLM-L6-v2, EMBEDDING_MODEL) when it is in MODELS_DIR, else the active model."""
    return jsonify(serving.embeddings(parse_body(EmbeddingRequest)))


@models_bp.get("/models")
@contract(access="api", response=LocalModels)
def list_models() -> Response:
    """List the GGUF files in MODELS_DIR and the active model."""
    return jsonify(serving.local_models())


@models_bp.get("/v1/models")
@contract(access="api", response=ModelList)
def openai_models() -> Response:
    """List models (OpenAI shape)."""
    return jsonify(serving.openai_models())


@models_bp.get("/v1/models/chat")
@contract(access="api", response=ModelList)
def chat_models() -> Response:
    """List chat models."""
    return jsonify(serving.openai_models("chat"))


@models_bp.get("/v1/models/embeddings")
@contract(access="api", response=ModelList)
def embedding_models() -> Response:
    """List embedding models."""
    return jsonify(serving.openai_models("embedding"))


@models_bp.get("/v1/models/<path:model_id>")
@contract(access="api", response=Model)
def openai_model(model_id: str) -> Response:
    """Retrieve a model."""
    try:
        return jsonify(serving.openai_model(state.engine().path_for_id(model_id)))
    except ModelNotFound:
        raise ModelNotFound(f"The model `{model_id}` does not exist") from None
