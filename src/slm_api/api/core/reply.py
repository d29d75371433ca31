"""Reply fields every generating route shares: `usage` and `finish_reason`."""

from __future__ import annotations

from typing import Any

from slm_api.engine import Finished


def usage(finished: Finished | None) -> dict[str, Any]:
    if finished is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
    }


def finish_reason(finished: Finished | None) -> str:
    # "abort" only happens when the client is gone; nobody reads it, but keep the field valid.
    reason = finished.finish_reason if finished else "stop"
    return reason if reason in ("stop", "length", "tool_calls") else "stop"
