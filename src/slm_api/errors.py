"""One error base for everything the server refuses or fails at.

Each error knows its HTTP status, OpenAI `type`, `code` and `param`; `api/core/errors.py` has the
one handler that turns any of them into the envelope, and `api/core/sse.py` turns one raised
mid-stream into an error event. Nothing here imports Flask or llama_cpp, so pure code can raise
them.
"""

from __future__ import annotations

# OpenAI's `type` field by status; clients (the openai SDK) map statuses to exception classes,
# the type string is what humans read.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "server_overloaded",
    507: "insufficient_storage",
}


def error_type(status: int) -> str:
    """OpenAI's `type` for an HTTP status."""
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _override(target: object, **values: object) -> None:
    """Set the given (not None) values on a class or an instance, over the inherited ones."""
    for name, value in values.items():
        if value is not None:
            setattr(target, name, value)


class SlmError(Exception):
    """Base of every error that reaches a client: status, OpenAI type, code, param, headers."""

    status = 500
    code: str | None = None
    param: str | None = None

    def __init_subclass__(
        cls, *, status: int | None = None, code: str | None = None, param: str | None = None,
        **kwargs: object,
    ) -> None:
        # `class NotFound(SlmError, status=404, code="not_found")`: a subclass's defaults
        # in its header, where a reader looks for them.
        super().__init_subclass__(**kwargs)
        _override(cls, status=status, code=code, param=param)

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        _override(self, status=status, code=code, param=param)
        self.headers = dict(headers or {})
        if self.status in (429, 503):
            self.headers.setdefault("Retry-After", "1")

    @property
    def type(self) -> str:
        return error_type(self.status)

    def body(self) -> dict:
        """The OpenAI error envelope."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class APIError(SlmError):
    """An error the HTTP layer raises itself, status first."""

    def __init__(self, status: int, message: str, **kwargs: object):
        super().__init__(message, status=status, **kwargs)  # type: ignore[arg-type]


class EngineError(SlmError):
    """Raised by the engine (the llama.cpp runtime) and the pure code it runs."""


class ModelNotFound(EngineError, status=404, code="model_not_found", param="model"):
    """No GGUF file in MODELS_DIR has this id."""


class ModelLoadError(EngineError, status=400, code="model_load_failed"):
    """The file exists but llama.cpp cannot load it (corrupt, wrong format, too big)."""


class NoModelLoaded(EngineError, status=503, code="no_model_loaded"):
    """No model was named and none is active."""


class ModelCapacity(EngineError, status=403, code="admin_key_required", param="model"):
    """Loading the named model would unload the one other clients use (MAX_LOADED_MODELS
    reached): only admin rights may do that."""


class InvalidRequest(EngineError, status=400, code="invalid_request"):
    """Bad input the engine can only see once it has tokens (prompt too long, bad grammar)."""


class QueueFull(EngineError, status=503, code="queue_full"):
    """MAX_QUEUE requests already wait for a sequence."""


class ClientTooSlow(SlmError, TimeoutError, status=408, code="request_timeout"):
    """A client sent its request slower than the socket deadlines allow (intake.py). A
    TimeoutError too, so gunicorn's own reads (its body drain) treat it as the timeout it is."""


class Draining(EngineError):
    """The server is shutting down (SIGTERM): new work goes to another replica."""

    status = 503
    code = "draining"
