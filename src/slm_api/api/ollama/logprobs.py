"""Ollama's `logprobs` array on /api/chat and /api/generate replies: the engine's per-token
log-probabilities (the same ones /v1/chat/completions reports, computed once in the engine),
in Ollama's shape. A stream's object carries those of the tokens generated since the object
before it, so each token's entry goes out once, at the latest on the final object."""

from __future__ import annotations

from typing import Any

from slm_api.api.core.logprobs import token_logprobs
from slm_api.engine import Chunk
from slm_api.engine.types import TokenLogprob


class LogprobFeed:
    def __init__(self, wanted: bool, top_n: int | None):
        self.wanted, self.top_n = wanted, top_n
        self._pending: list[TokenLogprob] = []

    def add(self, chunk: Chunk) -> None:
        self.extend(chunk.logprobs)

    def extend(self, items: tuple[TokenLogprob, ...] | list[TokenLogprob]) -> None:
        if self.wanted:
            self._pending.extend(items)

    def take(self) -> dict[str, Any]:
        """`{"logprobs": [...]}` for the next object (empty: nothing to add to it)."""
        if not self._pending:
            return {}
        items, self._pending = self._pending, []
        return {"logprobs": token_logprobs(items, self.top_n)}
