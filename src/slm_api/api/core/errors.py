"""Every failure leaves the server with the right status in its family's error body (the dialect
bound to the route's blueprint, api/core/dialect.py; OpenAI's envelope by default)."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, has_request_context, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from slm_api.api.core.dialect import dialect_of
from slm_api.errors import APIError, SlmError

__all__ = ["error_reply", "error_response", "register_error_handlers", "validation_message"]

log = logging.getLogger("slm_api.api.errors")  # its name before the move: log filters keep working

def error_response(exc: SlmError) -> Response:
    """`exc` in the request's family's error body (api/core/dialect.py), status and headers."""
    response = jsonify(dialect_of().error_body(exc))
    response.status_code = exc.status
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


def error_reply(app: Flask, method: str, path: str, exc: SlmError) -> Response:
    """`exc` as the route at `path` would answer it, for a request that never reaches a view:
    the worker's 408 for a stalled body and its 503 when every thread is busy are answered from
    its main loop, in the envelope of the family the client speaks."""
    with app.test_request_context(path, method=method):
        return error_response(exc)


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "__root__"}


def _is_type_tag(part: object) -> bool:
    """pydantic puts the union member tried into an error's location ("stop.str",
    "input.constrained-str"); the client's field is the part before it."""
    if not isinstance(part, str):
        return False
    return (part in _TYPE_TAGS or "[" in part or part[:1].isupper()
            or part.startswith("constrained-"))


def validation_message(exc: ValidationError) -> tuple[str, str | None]:
    """The first pydantic error as a readable sentence, and the field it concerns."""
    first = exc.errors(include_url=False)[0]
    parts = list(first.get("loc", ()))
    if "[key]" in parts:  # a bad key of a mapping: the field is the mapping, the key is in msg
        cut = parts.index("[key]")
        parts = parts[: cut - 1]
    loc = ".".join(str(p) for p in parts if not _is_type_tag(p))
    msg = first.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return (f"{loc}: {msg}" if loc else msg), (loc or None)


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def log_server_error(exc: SlmError, request_id: str | None) -> None:
    """A 5xx is the server's fault by definition: each one is logged with its request id, so an
    operator can find the client's report in the log."""
    if exc.status >= 500 and exc.status != 503:  # 503 is load shedding, counted in /metrics
        log.error("%d %s: %s (request %s)", exc.status, exc.code, exc.message, request_id)


def documented_allow(allow: str, *, keep_http: bool) -> str:
    """`allow` cut to the methods /openapi.json documents for this URL's path template.

    Werkzeug lists every rule the URL matches: /v1/models/chat matches its own GET rule and
    DELETE /v1/models/<model_id>, which the document lists under another path. HEAD and OPTIONS
    are HTTP's own and stay only where `keep_http` (an OPTIONS answer)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    templates: dict[str, list[str]] = {}
    for method in (m.strip() for m in allow.split(",")):
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        templates.setdefault(rule.rule, []).append(method)
    if not templates:
        return allow
    # The most specific template (fewest variable parts) is the one the document lists it under.
    methods = templates[min(templates, key=lambda t: (t.count("<"), -len(t)))]
    return ", ".join(m for m in methods if keep_http or m not in ("HEAD", "OPTIONS"))


def register_error_handlers(app: Flask) -> None:
    @app.after_request
    def _documented_allow(response: Response) -> Response:
        if request.method == "OPTIONS" and "Allow" in response.headers:
            response.headers["Allow"] = documented_allow(response.headers["Allow"],
                                                         keep_http=True)
        return response

    @app.errorhandler(SlmError)
    def _slm_error(exc: SlmError) -> Response:
        log_server_error(exc, request_id())
        return error_response(exc)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Response:
        message, param = validation_message(exc)
        return error_response(APIError(400, message, param=param, code="invalid_value"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            404: "Unknown route; see /docs for the API",
            405: "Method not allowed for this route",
            413: "Request body too large",
        }
        message = messages.get(status) or exc.description or exc.name
        if status == 400 and "JSON" in (exc.description or ""):
            message = "The request body is not valid JSON"
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        if "Allow" in headers:
            headers["Allow"] = documented_allow(headers["Allow"], keep_http=False)
        return error_response(APIError(status, message, headers=headers))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Never leak a traceback to the client; the log has it.
        log.exception("unhandled error (request %s)", request_id())
        return error_response(SlmError("Internal server error", code="internal_error"))
