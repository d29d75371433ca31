"""HTTP for reranking: parse, call serving, answer JSON."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.rerank.protocol import RerankRequest, RerankResponse
from slm_api.api.rerank.serving import rerank
from slm_api.plumbing import state

bp = Blueprint("rerank", __name__)


@contract(access="api", body=RerankRequest, response=RerankResponse)
def rerank_documents() -> Response:
    """Rerank documents.

    Scores each document against `query` with a cross-encoder (a GGUF with rank pooling) and
    answers them sorted by `relevance_score`, highest first, as Jina's and Cohere's rerank APIs
    do; `/rerank` and `/v2/rerank` are the paths llama-server and Cohere clients call."""
    req = parse_body(RerankRequest)
    return jsonify(rerank(state.engine(), req))


# One endpoint name per path: OpenAPI operation ids are made from them and must be unique.
for _path, _name in (("/v1/rerank", "rerank"), ("/rerank", "rerank_unversioned"),
                     ("/v2/rerank", "rerank_v2")):
    bp.add_url_rule(_path, endpoint=_name, view_func=rerank_documents, methods=["POST"])
