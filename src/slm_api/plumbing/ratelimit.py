"""Per-client request and token limits on a store replicas can share (flask-limiter on `limits`).

- Requests per minute: a flask-limiter application limit, moving window, keyed by the client id
  security.py puts in `g.client_id` (the key's id, or the address when the API is open).
- Tokens per minute: prompt + completion tokens, known only once a generation ends (a stream
  ends after its request context is gone), so they are charged then and checked before the next
  request. A fixed one-minute window: `limits` records a fixed-window charge even past the limit,
  so the request that crosses the budget is counted whole and the next ones wait.
- RATE_LIMIT_STORAGE_URI picks the store: `memory://` (one process) or `redis://host:port/db`
  (every replica sees the same counters).
- A store that cannot be reached never becomes a 500: RATE_LIMIT_FAIL=open lets requests through
  unlimited, `closed` answers 503; either way a log line and slm_rate_limit_storage_errors.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import partial

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.strategies import FixedWindowRateLimiter
from prometheus_client import CollectorRegistry, Counter

from slm_api.api.core.errors import error_response
from slm_api.config import Settings
from slm_api.errors import APIError

log = logging.getLogger("slm_api.ratelimit")  # its name before the move: log filters keep working

KEY_PREFIX = "slm"
_EXTENSION = "slm_rate_limits"
# Redis answers in well under a millisecond; waiting longer than this means it is gone, and a
# request must not hang on it.
REDIS_TIMEOUT_S = 0.5



def duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: `20ms`, `1.5s`, `6m0s`."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 1):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


class _OneLineForStoreErrors(logging.Filter):
    """flask-limiter logs a traceback for every request it lets through while the store is down;
    `RateLimits.storage_failed` says it once a second in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StorageError))


_STORE_ERROR_FILTER = _OneLineForStoreErrors()


def _storage_options(uri: str) -> dict[str, object]:
    options: dict[str, object] = {"wrap_exceptions": True}
    if uri.startswith(("redis://", "rediss://", "redis+")):
        options.update(socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S)
    return options


class RateLimits:
    """The app's limits, reached through `get_rate_limits()`. `registry`: the app's metrics
    registry, where the store's failures are counted."""

    def __init__(self, app: Flask, settings: Settings, exempt: Callable[[], bool],
                 registry: CollectorRegistry | None = None):
        self.rpm, self.tpm = settings.rate_limit_rpm, settings.rate_limit_tpm
        self.fail_open = settings.rate_limit_fail == "open"
        self.storage_uri = settings.rate_limit_storage_uri
        self.limiter = Limiter(
            key_func=lambda: g.get("client_id") or request.remote_addr or "unknown",
            application_limits=[f"{self.rpm} per minute"] if self.rpm else [],
            strategy="moving-window",
            storage_uri=self.storage_uri,
            storage_options=_storage_options(self.storage_uri),  # type: ignore[arg-type]
            key_prefix=KEY_PREFIX,
            headers_enabled=False,  # OpenAI's header names are set below
            swallow_errors=self.fail_open,
        )
        self.limiter.request_filter(exempt)
        self.limiter.logger.addFilter(_STORE_ERROR_FILTER)  # the same object: added once
        self.limiter.init_app(app)
        self.tokens = FixedWindowRateLimiter(self.limiter.storage)
        self.tokens_item = RateLimitItemPerMinute(max(self.tpm, 1))
        self.storage_errors = Counter(
            "slm_rate_limit_storage_errors",
            "Rate-limit store calls that failed (requests passed or got 503 per RATE_LIMIT_FAIL)",
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._last_log = 0.0

    def storage_failed(self, exc: BaseException | None) -> None:
        """Count a store failure; log it, at most once a second (a dead Redis fails them all)."""
        self.storage_errors.inc()
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            self._last_log = now
            outcome = "requests pass unlimited" if self.fail_open else "requests get 503"
            log.error(
                "rate-limit store %s unreachable (%s): %s (RATE_LIMIT_FAIL=%s)",
                self.storage_uri, exc or "check skipped", outcome,
                "open" if self.fail_open else "closed",
            )

    def unavailable(self) -> APIError:
        return APIError(
            503, "Rate-limit store unreachable; retry shortly", code="rate_limit_store_unavailable"
        )

    def _token_key(self, client: str) -> tuple[str, str, str]:
        return KEY_PREFIX, client, "tokens"

    def check_tokens(self, client: str) -> None:
        """Before a request: 429 if the client's tokens of this minute are spent."""
        if not self.tpm:
            return
        try:
            reset_at, remaining = self.tokens.get_window_stats(
                self.tokens_item, *self._token_key(client)
            )
        except StorageError as exc:
            self.storage_failed(exc)
            if self.fail_open:
                return
            raise self.unavailable() from exc
        g.slm_tokens_window = (reset_at, remaining)
        if remaining <= 0:
            wait = max(reset_at - time.time(), 0.001)
            raise APIError(
                429,
                f"Rate limit of {self.tpm} tokens per minute reached; retry in {math.ceil(wait)} s",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(math.ceil(wait)), **self._token_headers(reset_at, 0)},
            )

    def charge_tokens(self, client: str, tokens: int) -> None:
        """After a generation (possibly outside any request): count its tokens."""
        if not self.tpm or tokens <= 0:
            return
        try:
            self.tokens.hit(self.tokens_item, *self._token_key(client), cost=tokens)
        except StorageError as exc:
            self.storage_failed(exc)

    def _token_headers(self, reset_at: float, remaining: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit-tokens": str(self.tpm),
            "x-ratelimit-remaining-tokens": str(max(remaining, 0)),
            "x-ratelimit-reset-tokens": duration(reset_at - time.time()),
        }

    def request_headers(self) -> dict[str, str]:
        """x-ratelimit-*-requests for this request's client (empty when no limit applied)."""
        current = self.limiter.current_limit
        if current is None:
            return {}
        reset_at, remaining = current.window
        return {
            "x-ratelimit-limit-requests": str(current.limit.amount),
            "x-ratelimit-remaining-requests": str(max(remaining, 0)),
            "x-ratelimit-reset-requests": duration(reset_at - time.time()),
        }

    def response_headers(self) -> dict[str, str]:
        headers = {}
        try:
            headers.update(self.request_headers())
        except StorageError as exc:
            self.storage_failed(exc)
        window = g.get("slm_tokens_window")
        if window is not None:
            headers.update(self._token_headers(window[0], window[1]))
        return headers


def get_rate_limits(app: Flask | None = None) -> RateLimits | None:
    """The app's limits (`app`, or the current one); None when RATE_LIMIT_RPM and
    RATE_LIMIT_TPM are both off."""
    return (app if app is not None else current_app).extensions.get(_EXTENSION)


def token_charger() -> Callable[[int], None] | None:
    """`charge(tokens)`: count a generation's tokens against this request's client once it
    has ended. Take it while the request context exists (a streamed body ends after it is
    gone); None when no token limit applies to this request."""
    if not has_request_context():
        return None
    limits = get_rate_limits()
    client = g.get("client_id")
    if limits is None or not client:
        return None
    return partial(limits.charge_tokens, client)


def init_app(app: Flask, settings: Settings, exempt: Callable[[], bool],
             registry: CollectorRegistry | None = None) -> RateLimits | None:
    """Install the limits (after security's hook, which names the client). None when off."""
    if not (settings.rate_limit_rpm or settings.rate_limit_tpm):
        return None
    limits = app.extensions[_EXTENSION] = RateLimits(app, settings, exempt, registry)

    @app.before_request
    def _after_request_limit() -> None:
        if exempt():
            return
        if limits.rpm and request.endpoint and limits.limiter.current_limit is None:
            # flask-limiter swallowed a store error (fail open): it leaves no limit behind.
            limits.storage_failed(None)
        limits.check_tokens(g.get("client_id") or "unknown")

    @app.after_request
    def _headers(response: Response) -> Response:
        if response.status_code != 429 and not exempt():
            for name, value in limits.response_headers().items():
                response.headers[name] = value
        return response

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Response:
        headers: dict[str, str] = {}
        try:
            headers = limits.request_headers()
            current = limits.limiter.current_limit
            wait = (current.window[0] - time.time()) if current else 1.0
        except StorageError:
            wait = 1.0
        wait_s = max(math.ceil(wait), 1)
        return error_response(APIError(
            429,
            f"Rate limit of {limits.rpm} requests per minute reached; retry in {wait_s} s",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(wait_s), **headers},
        ))

    @app.errorhandler(StorageError)
    def _store_down(exc: StorageError) -> Response:
        # Reached only with RATE_LIMIT_FAIL=closed (open swallows the error in flask-limiter).
        limits.storage_failed(exc)
        return error_response(limits.unavailable())

    return limits

