"""Rerank request and response types, with Jina's / Cohere's field names."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from slm_api.api.core.protocol import NonEmptyText, ReplyBody, RequestBody

MAX_DOCUMENTS = 1000


class RerankDocumentIn(RequestBody):
    text: NonEmptyText


class RerankRequest(RequestBody):
    model: str | None = Field(None, description="a reranker (rank pooling); none: the first one")
    query: NonEmptyText
    documents: Annotated[list[NonEmptyText | RerankDocumentIn],
                         Field(min_length=1, max_length=MAX_DOCUMENTS)]
    top_n: int | None = Field(None, ge=1, le=MAX_DOCUMENTS,
                              description="how many results; none: all")
    return_documents: bool = False

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankDocumentOut(ReplyBody):
    text: str


class RerankResult(ReplyBody):
    index: int = Field(description="the document's position in `documents`")
    relevance_score: float = Field(description="the model's score (a logit: higher is closer)")
    document: RerankDocumentOut | None = None


class RerankUsage(ReplyBody):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(ReplyBody):
    model: str
    results: list[RerankResult]
    usage: RerankUsage
