"""Token log-probabilities in the two shapes OpenAI uses (chat and legacy completions); the
chat one's per-token entries are also Ollama's `logprobs` array."""

from __future__ import annotations

from typing import Any

from slm_api.engine.types import TokenLogprob


def token_logprobs(items: list[TokenLogprob], top_n: int | None) -> list[dict[str, Any]]:
    """One `{token, logprob, bytes, top_logprobs}` entry per generated token."""
    top_n = top_n or 0
    return [
        {
            "token": lp.token,
            "logprob": lp.logprob,
            "bytes": lp.bytes,
            "top_logprobs": [
                {"token": tok, "logprob": val, "bytes": list(tok.encode("utf-8"))}
                for tok, val in lp.top[:top_n]
            ],
        }
        for lp in items
    ]


def chat_logprobs(items: list[TokenLogprob], top_n: int | None) -> dict[str, Any]:
    return {"content": token_logprobs(items, top_n), "refusal": None}


def completion_logprobs(items: list[TokenLogprob], top_n: int, text_offset: int) -> dict[str, Any]:
    offsets: list[int] = []
    for lp in items:
        offsets.append(text_offset)
        text_offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in items],
        "token_logprobs": [lp.logprob for lp in items],
        "top_logprobs": [dict(lp.top[:top_n]) for lp in items],
        "text_offset": offsets,
    }
