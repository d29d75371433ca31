"""How a generation ended, as every generating route reports it: `cut` (ended at the token
budget), OpenAI's `finish_reason` and `usage` (chat, completions, extract)."""

from __future__ import annotations

from typing import Any

from slm_api.engine import Finished


def usage(finished: Finished | None, reasoning_tokens: int | None = None) -> dict[str, Any]:
    """OpenAI's usage object; `reasoning_tokens` (a reasoning model's thinking, counted by the
    conversation core) adds completion_tokens_details."""
    if finished is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    out: dict[str, Any] = {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
    }
    if reasoning_tokens is not None:
        # Re-tokenized text may differ by a token from what was sampled: never above the total.
        out["completion_tokens_details"] = {
            "reasoning_tokens": min(reasoning_tokens, finished.completion_tokens)}
    return out


def finish_reason(finished: Finished | None) -> str:
    # "abort" only happens when the client is gone; nobody reads it, but keep the field valid.
    reason = finished.finish_reason if finished else "stop"
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def cut(finished: Finished | None) -> bool:
    """The generation ended at its token budget (or the request's deadline): every family
    names it its own way (length, max_tokens, incomplete), and a cut reply is not checked
    against its structured-output guarantee."""
    return finished is not None and finished.finish_reason == "length"
