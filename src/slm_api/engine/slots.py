"""The scheduler's choices, as pure functions: which sequence a new request takes, and how much
of a cached prefix it keeps. No llama.cpp here; tests/engine/test_slots.py checks them without a
model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from slm_api.engine.types import GenerationRequest, MediaSpan
from slm_api.errors import InvalidRequest

if TYPE_CHECKING:
    from slm_api.engine.job import Job

# Copying another sequence's KV stream costs about what reading 5 tokens does (8 ms for SmolLM2
# at N_CTX=4096): only worth it for a clearly longer prefix.
DONOR_MIN_GAIN = 16
# Slot.logit_row when this step's logits are the slot's kept `end` row, not a row of the batch.
END_ROW = -2


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True)
class EndLogits:
    """The logits a decode gave after a sequence's first `n` cached tokens, the end of the
    prompt it read. A later request with exactly that prompt starts from them and decodes
    nothing: decoding the last prompt token again, in a batch of one row instead of the
    prompt's chunk, takes other matrix kernels whose rounding can turn a greedy answer at a
    near-tie, so the same request would answer differently once its prompt is cached."""

    n: int
    row: np.ndarray


@dataclass
class Slot:
    """One llama.cpp sequence of the shared context, and the request it serves."""

    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    job: Job | None = None
    n_read: int = 0  # prompt tokens already in the cache
    # Sampled or forced tokens not yet decoded; logits are wanted after the last one.
    feed: list[int] = field(default_factory=list)
    # Guessed tokens decoded after `feed` (prompt lookup), each with its logits row: the ones
    # the model would have produced itself are kept, the rest dropped from the cache.
    draft: list[int] = field(default_factory=list)
    logit_row: int = -1  # row of this step's logits that belongs to this slot (or END_ROW)
    end: EndLogits | None = None  # the logits after cached[:end.n], while those cells stay
    last_used: float = 0.0
    # The slot whose prompt this one waits to copy (a choice of the same request, n > 1).
    fork: Slot | None = None


@dataclass(frozen=True)
class Placement:
    slot: Slot  # the free sequence the request takes
    keep: int  # leading prompt tokens whose KV it keeps (before the disk cache is asked)
    donor: Slot | None = None  # copy donor's first `keep` cells into `slot` first


def place(prompt: Sequence[int], free: list[Slot], slots: list[Slot], *, reuse: bool
          ) -> Placement:
    """The free sequence sharing the longest prefix with `prompt` (the least recently used when
    none does); or, when any sequence, even a running one, holds a clearly longer prefix, a
    copy of its cells. Without `reuse` (PROMPT_CACHE=off), the least recently used, emptied."""
    lru = min(free, key=lambda s: s.last_used)
    if not reuse:
        return Placement(lru, 0)
    best = max(free, key=lambda s: (common_prefix(s.cached, prompt), -s.last_used))
    keep = common_prefix(best.cached, prompt)
    slot = best if keep > 0 else lru
    donor = max(slots, key=lambda s: common_prefix(s.cached, prompt))
    donated = common_prefix(donor.cached, prompt)
    if donated > keep + DONOR_MIN_GAIN and donor is not slot:
        return Placement(slot, donated, donor)
    return Placement(slot, keep)


def check_fits(request: GenerationRequest, n_ctx: int) -> None:
    """Refuse a request whose prompt, or prompt plus max_tokens, cannot fit the context."""
    n_prompt = len(request.prompt)
    if n_prompt == 0:
        raise InvalidRequest("the prompt is empty", param="messages")
    if n_prompt >= n_ctx:
        raise InvalidRequest(
            f"the prompt has {n_prompt} tokens, more than this model's context of {n_ctx} "
            "tokens allows", param="messages", code="context_length_exceeded",
        )
    if n_prompt + request.max_tokens > n_ctx:
        raise InvalidRequest(
            f"the prompt has {n_prompt} tokens and max_tokens is {request.max_tokens}: "
            f"together more than this model's context of {n_ctx} tokens",
            param="max_tokens", code="context_length_exceeded",
        )


def without_media(prompt: list[int], media: Sequence[MediaSpan]) -> list[int]:
    """The prompt's text tokens: the media's placeholder ids left out."""
    if not media:
        return prompt
    out: list[int] = []
    at = 0
    for span in media:
        out.extend(prompt[at:span.start])
        at = span.start + span.n_tokens
    out.extend(prompt[at:])
    return out


def media_at(media: Sequence[MediaSpan], pos: int) -> MediaSpan | None:
    """The medium whose places start at prompt position `pos`, if one does."""
    return next((s for s in media if s.start == pos), None)


def text_until(media: Sequence[MediaSpan], pos: int, end: int) -> int:
    """Where the text run from `pos` stops: the next medium's start, or `end`."""
    return min([s.start for s in media if s.start > pos] + [end])


def media_floor(media: Sequence[MediaSpan], keep: int) -> int:
    """`keep` moved back to the start of a medium it would cut: a medium is in a sequence's
    cache whole or not at all."""
    for span in media:
        if span.start < keep < span.start + span.n_tokens:
            return span.start
    return keep


def position(media: Sequence[MediaSpan], index: int) -> int:
    """The position llama.cpp gives the token at `index` of a sequence whose prompt holds
    `media`: its index, less the places each medium wholly before it takes beyond its positions
    (M-RoPE). A medium starting at `index` starts there. Positions follow from the tokens alone:
    a cached prefix matched by token identity holds the same media, so the same positions."""
    if not media:
        return index  # a text prompt: the decode loop asks this once a token
    return index - sum(s.n_tokens - s.n_pos for s in media
                       if s.n_pos != s.n_tokens and s.start + s.n_tokens <= index)
