"""Streamed replies: Server-Sent Events framing as the OpenAI streaming API sends them, and the
one guard every stream (SSE here, Ollama's NDJSON) runs its events through."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response

from slm_api.api.core.errors import log_server_error, request_id
from slm_api.errors import SlmError

log = logging.getLogger("slm_api.api.errors")


def json_bytes(payload: Any) -> bytes:
    """`payload` as compact UTF-8 JSON. Text that is not Unicode (a lone surrogate) cannot be
    UTF-8: it goes out \\u-escaped, as JSON allows, rather than ending the stream mid-way."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":")).encode()


def guarded(
    events: Iterable[dict[str, Any]],
    frame: Callable[[dict[str, Any]], bytes],
    error_frame: Callable[[SlmError], bytes],
) -> Iterator[bytes]:
    """`events` framed one by one. Once the first frame is out the status can no longer change,
    so a failure after it goes out as the family's error frame: an SlmError as itself, anything
    else as an internal error (logged with its traceback), never a connection cut mid-stream
    (which a WSGI server turns into an HTML 500 when nothing was sent yet)."""
    rid = request_id()  # the body runs after the request context is gone

    def body() -> Iterator[bytes]:
        try:
            for event in events:
                yield frame(event)
        except SlmError as exc:
            log_server_error(exc, rid)
            yield error_frame(exc)
        except Exception:
            log.exception("stream failed (request %s)", rid)
            yield error_frame(SlmError("Internal server error", code="internal_error"))
        finally:
            # Closing the events generator is what aborts the generation on disconnect.
            close = getattr(events, "close", None)
            if close is not None:
                close()

    return body()


def _frame(payload: dict[str, Any], named: bool) -> bytes:
    data = b"data: " + json_bytes(payload) + b"\n\n"
    return f"event: {payload['type']}\n".encode() + data if named else data


def sse_response(
    events: Iterable[dict[str, Any]],
    *,
    named: bool = False,
    done: bool = True,
    error_event: Callable[[SlmError], dict[str, Any]] = SlmError.body,
) -> Response:
    """Stream `events` as `data: {json}` frames, then `data: [DONE]`. Any error after the
    stream has started can no longer change the status, so it goes out as an error frame.

    The Responses and Messages APIs differ: each frame is named after its payload's `type`
    (`event: ...`, which Anthropic's SDK requires), no [DONE] closes the stream, and an error
    has their own shape (`error_event`)."""
    frames = guarded(events, lambda event: _frame(event, named),
                     lambda exc: _frame(error_event(exc), named))

    def body() -> Iterator[bytes]:
        yield from frames
        if done:
            yield b"data: [DONE]\n\n"

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    # Reverse proxies (nginx) must not buffer a token stream.
    response.headers["X-Accel-Buffering"] = "no"
    return response
