"""POST /v1/embeddings: one normalised vector per input."""

from __future__ import annotations

import base64
import struct

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import one_or_many, parse_body
from slm_api.api.core.contract import contract
from slm_api.api.openai.protocol import EmbeddingList, EmbeddingRequest
from slm_api.errors import APIError
from slm_api.plumbing import state

bp = Blueprint("embeddings", __name__)


def _encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        # The openai SDK decodes base64 as little-endian float32.
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


@bp.post("/v1/embeddings")
@contract(body=EmbeddingRequest, response=EmbeddingList)
def embeddings() -> Response:
    """Create embeddings.

    One L2-normalised vector per input. Without `model`, the default embedding model
    (all-MiniLM-L6-v2, EMBEDDING_MODEL) when it is in MODELS_DIR, else the active model."""
    req = parse_body(EmbeddingRequest)
    engine = state.engine()
    with engine.use(req.model or engine.default_embedding_model()) as model:
        token_lists = [model.tokenize(item, param="input") if isinstance(item, str) else item
                       for item in one_or_many(req.input)]
        too_long = [i for i, toks in enumerate(token_lists) if len(toks) > model.info.n_ctx]
        if too_long:
            raise APIError(
                400,
                f"input {too_long[0]} has {len(token_lists[too_long[0]])} tokens, more than the "
                f"model's context of {model.info.n_ctx}",
                param="input", code="context_length_exceeded",  # the code chat's gives
            )
        vectors = model.embed(token_lists)
        model_id = model.info.id
    if req.dimensions:
        # Matryoshka-style truncation, renormalised, like OpenAI's `dimensions`.
        vectors = [_renorm(v[: req.dimensions]) for v in vectors]
    n_tokens = sum(len(t) for t in token_lists)
    return jsonify(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
                for i, v in enumerate(vectors)
            ],
            "model": model_id,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }
    )


def _renorm(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]
