"""A family's dialect: its error body and how its streams are framed, bound to its blueprint
once. The error handlers (api/core/errors.py) and the one stream writer (api/core/sse.py's
`stream_response`) read it for the request's blueprint; a blueprint that binds none speaks
OpenAI's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, Flask, current_app, has_request_context, request

from slm_api.errors import SlmError

# "sse": `data: {json}` frames closed by `data: [DONE]` (OpenAI); "named_sse": each frame named
# after its payload's `type`, no [DONE] (Anthropic Messages, OpenAI Responses); "ndjson": one
# JSON object a line (Ollama); "plain_sse": `data: {json}` frames with no [DONE] (llama-server's
# own routes, /infill).
Framing = Literal["sse", "named_sse", "ndjson", "plain_sse"]


@dataclass(frozen=True)
class Dialect:
    # Any error as the family's body (the status says the HTTP code).
    error_body: Callable[[SlmError], dict[str, Any]] = SlmError.body
    framing: Framing = "sse"
    # An error after the stream started, as its last event; `sent`: the events sent before it
    # (Responses numbers its events). None: the error body.
    error_event: Callable[[SlmError, int], dict[str, Any]] | None = None

    def stream_error(self, exc: SlmError, sent: int) -> dict[str, Any]:
        return self.error_event(exc, sent) if self.error_event else self.error_body(exc)


OPENAI = Dialect()
_KEY = "slm_dialects"


def bind_dialect(bp: Blueprint, dialect: Dialect) -> None:
    """Every error and stream of `bp`'s routes in `dialect` (set when an app registers it)."""

    def record(setup: Any) -> None:
        app: Flask = setup.app
        app.extensions.setdefault(_KEY, {})[bp.name] = dialect

    bp.record_once(record)


def dialect_of(app: Flask | None = None, blueprint: str | None = None) -> Dialect:
    """The dialect of `blueprint` (the request's, by default); OpenAI's outside a request."""
    if blueprint is None:
        if not has_request_context():
            return OPENAI
        blueprint = request.blueprint or ""
    table: dict[str, Dialect] = (app or current_app).extensions.get(_KEY, {})
    return table.get(blueprint, OPENAI)
