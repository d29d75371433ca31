"""Server-Sent Events framing, as the OpenAI streaming API sends them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response

from slm_api.api.core.errors import log_server_error, request_id
from slm_api.errors import SlmError


def _frame(payload: dict[str, Any], named: bool) -> str:
    data = f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"
    return f"event: {payload['type']}\n{data}" if named else data


def sse_response(
    events: Iterable[dict[str, Any]],
    *,
    named: bool = False,
    done: bool = True,
    error_event: Callable[[SlmError], dict[str, Any]] = SlmError.body,
) -> Response:
    """Stream `events` as `data: {json}` frames, then `data: [DONE]`. Any SlmError after the
    stream has started can no longer change the status, so it goes out as an error frame.

    The Responses and Messages APIs differ: each frame is named after its payload's `type`
    (`event: ...`, which Anthropic's SDK requires), no [DONE] closes the stream, and an error
    has their own shape (`error_event`)."""
    rid = request_id()  # the body runs after the request context is gone

    def body() -> Iterator[str]:
        try:
            for event in events:
                yield _frame(event, named)
        except SlmError as exc:
            log_server_error(exc, rid)
            yield _frame(error_event(exc), named)
        finally:
            # Closing the events generator is what aborts the generation on disconnect.
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if done:
            yield "data: [DONE]\n\n"

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    # Reverse proxies (nginx) must not buffer a token stream.
    response.headers["X-Accel-Buffering"] = "no"
    return response
