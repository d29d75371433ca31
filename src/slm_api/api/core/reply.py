"""How a generation ended, as every generating route reports it: the engine's FinishCause by
each family's name (one table), `cut`, and OpenAI's `usage` (chat, completions, extract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slm_api.engine import FinishCause, Finished


@dataclass(frozen=True)
class FinishNames:
    """One finish cause in each family's words: OpenAI's finish_reason, Anthropic's
    stop_reason, Responses' incomplete_details.reason (None: the response is complete),
    Ollama's done_reason."""

    openai: str
    anthropic: str
    responses: str | None
    ollama: str


_ENDED = FinishNames("stop", "end_turn", None, "stop")
_CUT = FinishNames("length", "max_tokens", "max_output_tokens", "length")
FINISH_NAMES: dict[FinishCause, FinishNames] = {
    FinishCause.STOP: _ENDED,
    # Anthropic names only the client's own stop strings (families check which matched).
    FinishCause.STOP_SEQUENCE: FinishNames("stop", "stop_sequence", None, "stop"),
    FinishCause.MAX_TOKENS: _CUT,
    FinishCause.CONTEXT_FULL: _CUT,
    FinishCause.DEADLINE: _CUT,
    FinishCause.DRAIN: _CUT,
    # Only when the client is gone: nobody reads it, but the fields stay valid.
    FinishCause.ABORT: _ENDED,
}
# A reply that ended with tool calls (decided by the core's parser, not the engine).
TOOL_CALL_NAMES = FinishNames("tool_calls", "tool_use", None, "stop")


def finish_names(finished: Finished | None, called: bool = False) -> FinishNames:
    """How each family names the end of `finished`; `called`: the reply made tool calls (a
    call cut by a limit is no call to run: the cut wins)."""
    if finished is None:
        return _ENDED
    names = FINISH_NAMES[finished.cause]
    return TOOL_CALL_NAMES if called and not finished.cause.cut else names


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
    return finish_names(finished).openai


def cut(finished: Finished | None) -> bool:
    """The generation ended at its token budget (or the request's deadline): every family
    names it its own way (length, max_tokens, incomplete), and a cut reply is not checked
    against its structured-output guarantee."""
    return finished is not None and finished.cause.cut
