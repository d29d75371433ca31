"""/v1/extract's body and reply: text in, JSON that fits a schema out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_INPUTS,
    Name,
    ReplyBody,
    RequestBody,
    Seed,
    Usage,
)


class ExtractRequest(RequestBody):
    model: Name | None = None
    text: str | None = Field(None, min_length=1)
    # Pictures to extract from (a receipt, a form, a screenshot) on a vision model: data: URLs,
    # bare base64 (as Ollama's `images`), or http(s) URLs where the operator allows remote
    # images. MAX_IMAGES is the real cap, checked by the media intake with a message naming it.
    images: list[str] | None = Field(None, max_length=MAX_INPUTS)
    schema_: dict[str, Any] | bool | None = Field(None, alias="schema")
    instructions: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, gt=0, le=INT32_MAX)
    seed: Seed | None = None




# -- extract and extras ---------------------------------------------------------------------


class ExtractResult(ReplyBody):
    object: Literal["extract.result"]
    created: int
    model: str
    latency_ms: float
    data: Any = Field(description="JSON that fits the request's schema")
    usage: Usage


