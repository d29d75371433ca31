"""Streamed replies: the one stream writer every family's stream goes through (framing by the
family's dialect: SSE, named SSE, NDJSON), and the guard that catches, logs and frames an error
once the stream has started."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response

from slm_api.api.core.dialect import OPENAI, Dialect, Framing, dialect_of
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
    error_frame: Callable[[SlmError, int], bytes],
) -> Iterator[bytes]:
    """`events` framed one by one. Once the first frame is out the status can no longer change,
    so a failure after it goes out as the family's error frame (given the count of events sent
    before it): an SlmError as itself, anything else as an internal error, a 5xx logged with its
    request id either way, never a connection cut mid-stream (which a WSGI server turns into
    an HTML 500 when nothing was sent yet)."""
    rid = request_id()  # the body runs after the request context is gone

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            for event in events:
                yield frame(event)
                sent += 1
        except SlmError as exc:
            log_server_error(exc, rid)
            yield error_frame(exc, sent)
        except Exception:
            log.exception("stream failed (request %s)", rid)
            yield error_frame(SlmError("Internal server error", code="internal_error"), sent)
        finally:
            # Closing the events generator is what aborts the generation on disconnect.
            close = getattr(events, "close", None)
            if close is not None:
                close()

    return body()


def _frame(payload: dict[str, Any], framing: Framing) -> bytes:
    if framing == "ndjson":
        return json_bytes(payload) + b"\n"
    data = b"data: " + json_bytes(payload) + b"\n\n"
    return f"event: {payload['type']}\n".encode() + data if framing == "named_sse" else data


_MIMETYPES = {"sse": "text/event-stream", "named_sse": "text/event-stream",
              "plain_sse": "text/event-stream", "ndjson": "application/x-ndjson"}


def stream_response(events: Iterable[dict[str, Any]], dialect: Dialect | None = None
                    ) -> Response:
    """The one stream writer: `events` framed in the dialect of the route's family (`dialect`
    to name one), an error after the start as its error event, then SSE's `data: [DONE]`
    where the framing has one."""
    dialect = dialect or dialect_of()
    framing = dialect.framing
    frames = guarded(events, lambda event: _frame(event, framing),
                     lambda exc, sent: _frame(dialect.stream_error(exc, sent), framing))

    def body() -> Iterator[bytes]:
        yield from frames
        if framing == "sse":
            yield b"data: [DONE]\n\n"

    response = Response(body(), mimetype=_MIMETYPES[framing])
    if framing != "ndjson":
        response.headers["Cache-Control"] = "no-cache"
    # Reverse proxies (nginx) must not buffer a token stream.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def sse_response(events: Iterable[dict[str, Any]]) -> Response:
    """`events` as OpenAI's Server-Sent Events, whatever the route's family."""
    return stream_response(events, OPENAI)
