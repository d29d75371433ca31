"""Anthropic's error envelope, for the Messages routes: their errors, 401s and 429s included.

It lives with its family, not in the base errors: the core knows only that a blueprint may
bind its own dialect (api/core/dialect.py), never which protocols do.
"""

from __future__ import annotations

from slm_api.api.core.dialect import Dialect
from slm_api.errors import SlmError

# Anthropic's error `type` names (its SDK maps statuses to exception classes the same way).
_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(status: int, message: str) -> dict:
    """Anthropic's error envelope: {"type": "error", "error": {"type", "message"}}."""
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def anthropic_body(exc: SlmError) -> dict:
    """`exc` in Anthropic's envelope (also a stream's `error` event)."""
    return anthropic_error_body(exc.status, exc.message)


# Every error in Anthropic's envelope (a stream's `error` event too); streams as named events.
ANTHROPIC = Dialect(anthropic_body, "named_sse")
