"""llama.cpp's samplers beyond the OpenAI set (Mirostat, DRY, XTC, typical, top-n-sigma, the
penalty window): one set of request fields, taken by Ollama's `options` and, as llama-server
takes them, by the OpenAI-shaped routes as extra body fields.

Each bound stops where llama.cpp would quietly do nothing or something else: a DRY base below
1 or an XTC threshold above 0.5 turns that sampler off in llama.cpp, and a breaker longer than
40 characters is cut there; those are a 400 here rather than an ignored knob.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from slm_api.api.core.protocol import MAX_CTX, RequestBody

MAX_DRY_BREAKERS = 16  # llama-server's default list has 4; each costs a tokenization per request
MAX_DRY_BREAKER_CHARS = 40  # llama.cpp truncates longer ones (MAX_CHAR_LEN in llama-sampler.cpp)

DryBreaker = Annotated[str, Field(min_length=1, max_length=MAX_DRY_BREAKER_CHARS)]
# A penalty window in tokens: -1 the whole context, 0 off. Bounded by the longest context,
# since llama.cpp allocates a ring buffer of that many tokens per request.
Window = Annotated[int, Field(ge=-1, le=MAX_CTX)]


class SamplerFields(RequestBody):
    """The samplers' fields; unset ones keep llama-server's defaults (each sampler off)."""

    mirostat: int | None = Field(None, ge=0, le=2, description=(
        "1: Mirostat, 2: Mirostat 2.0; either replaces top_k/top_p/min_p"))
    mirostat_tau: float | None = Field(None, ge=0.0, le=100.0)
    mirostat_eta: float | None = Field(None, ge=0.0, le=1.0)
    typical_p: float | None = Field(None, ge=0.0, le=1.0, description="1: off")
    top_n_sigma: float | None = Field(None, ge=-1.0, le=100.0, description="<= 0: off")
    repeat_last_n: Window | None = Field(None, description=(
        "tokens the repeat/presence/frequency penalties look back on; -1: the context"))
    dry_multiplier: float | None = Field(None, ge=0.0, le=100.0, description="0: DRY off")
    dry_base: float | None = Field(None, ge=1.0, le=100.0)
    dry_allowed_length: int | None = Field(None, ge=0, le=MAX_CTX)
    dry_penalty_last_n: Window | None = None
    dry_sequence_breakers: list[DryBreaker] | None = Field(None, max_length=MAX_DRY_BREAKERS)
    xtc_probability: float | None = Field(None, ge=0.0, le=1.0, description="0: XTC off")
    xtc_threshold: float | None = Field(None, ge=0.0, le=0.5)

    def sampler_values(self) -> dict[str, Any]:
        """The fields the client set, as SamplingParams keyword arguments."""
        given = {name: getattr(self, name) for name in SamplerFields.model_fields}
        if given["dry_sequence_breakers"] is not None:
            given["dry_sequence_breakers"] = tuple(given["dry_sequence_breakers"])
        return {k: v for k, v in given.items() if v is not None}
