"""Rerank logic: pick a model that can rank (refuse one that cannot, naming those that can),
score every document in one pass of packed decodes, sort, cut to top_n."""

from __future__ import annotations

from typing import Any

from slm_api.api.core.rights import use_model
from slm_api.api.rerank.protocol import RerankRequest
from slm_api.engine import Engine
from slm_api.errors import APIError
from slm_api.gguf_info import UNREADABLE, file_kind

HINT = "load a reranker GGUF (rank pooling), e.g. bge-reranker-v2-m3, into MODELS_DIR"


def rerankers(engine: Engine) -> list[str]:
    """Ids of models that can rank: loaded ones first, then files in MODELS_DIR."""
    ids = [m.id for m in engine.loaded() if m.kind == "rerank"]
    ids += [p.stem for p in engine.model_files()
            if p.stem not in ids and file_kind(p, engine.settings.embedding_models) == "rerank"]
    return ids


def _choose(engine: Engine, requested: str | None) -> str:
    able = rerankers(engine)
    named = ", ".join(able) if able else f"none ({HINT})"
    if requested is None:
        if not able:
            raise APIError(400, f"no model here can rerank: {HINT}", param="model",
                           code="model_cannot_rerank")
        return able[0]
    model_id = requested.removesuffix(".gguf")
    loaded = {m.id: m.kind for m in engine.loaded()}
    # Read the file's header before loading: a chat model must not be loaded (and evict the
    # active one) only to be refused.
    kind = loaded.get(model_id) or file_kind(engine.path_for_id(model_id),
                                             engine.settings.embedding_models)
    # An unreadable file goes on to the loader, whose 400 says what is wrong with it.
    if kind not in ("rerank", UNREADABLE):
        raise APIError(400, f"model {model_id} is a {kind} model and cannot rerank; models "
                       f"that can: {named}", param="model", code="model_cannot_rerank")
    return model_id


def rerank(engine: Engine, req: RerankRequest) -> dict[str, Any]:
    texts = req.texts()
    with use_model(_choose(engine, req.model)) as model:
        scores, n_tokens = model.rank(req.query, texts)
        model_id = model.info.id
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[: req.top_n]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if req.return_documents:
            item["document"] = {"text": texts[i]}
        results.append(item)
    return {"model": model_id, "results": results,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}
