"""Who may call what: API keys, admin routes, allowed Host names, CORS. (The per-client rate
limits are ratelimit.py's; `exempt` tells them which requests are never counted.)

Each route declares its access on its view (`@contract(access=...)`, api/core/contract.py);
`route_policy(endpoint)` reads it: "open", "admin" or "api" ("monitoring" routes are open unless
PROTECT_METRICS=1). A URL no route matches is "api" (a key is asked for before a 404 is given);
a view with no contract is "admin" (a route that forgot to say is closed, not open).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from flask_cors import CORS
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from slm_api.api.core.contract import Access, access_of, contract_of
from slm_api.config import Settings
from slm_api.errors import APIError
from slm_api.plumbing import state
from slm_api.plumbing.hosts import HostAllowlist

# Headers a reverse proxy adds: a loopback connection carrying one was relayed for someone else.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
_EXTENSION = "slm_keys"


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest's time independent of key length.
    return hashlib.sha256(key.encode("utf-8")).digest()


def generated_client_id(key: str) -> str:
    """A stable id for a key configured without one; reveals nothing usable about the key."""
    return "client-" + hashlib.sha256(b"slm-api-client:" + key.encode("utf-8")).hexdigest()[:10]


def parse_keys(entries: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`key` or `key:client_id` entries -> {key: client_id}. The id follows the last colon."""
    keys: dict[str, str] = {}
    for entry in entries:
        entry = entry.strip()
        key, sep, client = entry.rpartition(":")
        if not sep or not key or not client.strip():
            key, client = entry, ""
        key, client = key.strip(), client.strip()
        if key:
            keys[key] = client or generated_client_id(key)
    return keys


@dataclass(frozen=True)
class KeyRing:
    """Configured keys as digests -> client id; `admin` holds the subset allowed admin routes."""

    api: tuple[tuple[bytes, str], ...]
    admin: tuple[tuple[bytes, str], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        api = parse_keys(settings.openai_api_keys)
        if settings.openai_api_key:
            api.update(parse_keys((settings.openai_api_key,)))
        admin = parse_keys(settings.admin_api_keys)
        # An admin key also works as an API key: the operator should not need two.
        api.update({k: v for k, v in admin.items() if k not in api})
        return cls(
            api=tuple((_digest(k), c) for k, c in api.items()),
            admin=tuple((_digest(k), c) for k, c in admin.items()),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.api)

    @staticmethod
    def _match(given: str, ring: tuple[tuple[bytes, str], ...]) -> str | None:
        # Every key is compared (no early exit), so timing does not tell which one matched.
        digest, found = _digest(given), None
        for candidate, client in ring:
            if hmac.compare_digest(digest, candidate):
                found = client
        return found

    def client_for(self, given: str) -> str | None:
        return self._match(given, self.api)

    def admin_client_for(self, given: str) -> str | None:
        return self._match(given, self.admin)


def route_access(app: Flask, endpoint: str | None) -> Access:
    """What the route declared (`@contract(access=...)`); "api" where no route matched."""
    if endpoint is None:
        return "api"
    return access_of(app.view_functions.get(endpoint))


def route_policy(app: Flask, endpoint: str | None, settings: Settings) -> str:
    """"open", "admin" or "api" for a Flask endpoint name (None: no route matched)."""
    access = route_access(app, endpoint)
    if access == "monitoring":
        return "api" if settings.protect_metrics else "open"
    return access


def is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def bearer_token() -> str | None:
    """The key a client sent: `Authorization: Bearer <key>`, or `x-api-key: <key>` (how the
    anthropic SDK and Claude-style tools send it)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip() or None


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def check_body_size(max_bytes: int) -> None:
    """413 for a body without Content-Length (chunked) that runs past MAX_REQUEST_BYTES.

    Werkzeug caps such a stream at the limit but then just stops reading, so the view would see
    a truncated body (a misleading 400 "not valid JSON"). Read it here, and if the cap was hit,
    look one byte further in the raw input to tell "exactly at the limit" from "too large"."""
    if request.content_length is not None or request.method in ("GET", "HEAD", "OPTIONS"):
        return  # with Content-Length, Werkzeug itself refuses an oversized body
    data = request.get_data(cache=True)
    if len(data) >= max_bytes and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def body_limit(settings: Settings) -> int:
    """The current route's body limit: routes whose contract says they take media get the
    media budget (never less than MAX_REQUEST_BYTES)."""
    view = current_app.view_functions.get(request.endpoint or "")
    declared = contract_of(view)
    if declared is not None and declared.media:
        return max(settings.max_request_bytes, settings.max_media_request_bytes)
    return settings.max_request_bytes


def _authorize(keys: KeyRing, hosts: HostAllowlist, settings: Settings) -> None:
    g.client_id = request.remote_addr or "unknown"
    if request.method == "OPTIONS":
        return  # CORS preflights carry no credentials by design
    policy = route_policy(current_app, request.endpoint, settings)
    if policy == "open":
        return
    # Where no key is asked for, being on this machine is the credential; a page in the user's
    # browser can borrow that by DNS rebinding, but not its Host header.
    trusts_position = not keys.enabled or (policy == "admin" and not keys.admin)
    if trusts_position and not hosts.allows(request.headers.get("Host")):
        raise APIError(
            403,
            "Host header not in ALLOWED_HOSTS; without API keys this server answers only to the "
            "names in ALLOWED_HOSTS (add this name there, or configure API keys)",
            code="host_not_allowed",
        )
    token = bearer_token()
    if keys.enabled:
        if token is None:
            raise _unauthorized(
                "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
            )
        client = keys.client_for(token)
        if client is None:
            raise _unauthorized("Incorrect API key provided")
        g.client_id = client
    if policy == "admin":
        _authorize_admin(keys, token, settings)


def _admin_refusal(keys: KeyRing, token: str | None, settings: Settings) -> APIError | None:
    """Why this request has no admin rights (None: it has them): one rule for the admin routes
    and for the admin-only parts of other requests (see has_admin_rights)."""
    if keys.admin:
        if token is None:
            return _unauthorized("This admin route needs a key from ADMIN_API_KEYS")
        if keys.admin_client_for(token) is None:
            return APIError(403, "This key may not use admin routes", code="admin_key_required")
        return None
    # No admin keys: only this machine may download files or swap models. Behind a proxy every
    # client looks like loopback, so a relayed request (forwarding headers) is refused unless
    # TRUSTED_PROXY_HOPS made remote_addr the real client.
    relayed = settings.trusted_proxy_hops == 0 and any(
        h in request.headers for h in FORWARDING_HEADERS
    )
    if not is_loopback(request.remote_addr) or relayed:
        return APIError(
            403,
            "Admin routes are open to loopback clients only; set ADMIN_API_KEYS to use them "
            "remotely",
            code="admin_forbidden",
        )
    return None


def _authorize_admin(keys: KeyRing, token: str | None, settings: Settings) -> None:
    refusal = _admin_refusal(keys, token, settings)
    if refusal is not None:
        raise refusal
    if keys.admin and token is not None:
        g.client_id = keys.admin_client_for(token)


def has_admin_rights() -> bool:
    """Whether the current request could call the admin routes: what a request needs to change
    a model other clients share (unload it, or load it its own way). An app built without
    security (get_keys None) trusts its caller, as its admin routes do."""
    keys = get_keys()
    if keys is None:
        return True
    return _admin_refusal(keys, bearer_token(), state.settings()) is None


def get_keys(app: Flask | None = None) -> KeyRing | None:
    """The app's keys (`app`, or the current one); None in an app built without security."""
    return (app if app is not None else current_app).extensions.get(_EXTENSION)


def exempt(settings: Settings) -> Callable[[], bool]:
    """Whether the current request is never counted against anyone (ratelimit.py's filter):
    CORS preflights and open routes (health, docs)."""

    def _exempt() -> bool:
        return (request.method == "OPTIONS"
                or route_policy(current_app, request.endpoint, settings) == "open")

    return _exempt


def init_app(app: Flask) -> None:
    """Install key checks, admin checks, Host checks and CORS on `app`. The rate limits go in
    after this (create_app): the hook installed here names the client they are kept for."""
    settings = state.settings(app)
    keys = app.extensions[_EXTENSION] = KeyRing.from_settings(settings)
    hosts = HostAllowlist(settings.allowed_hosts, settings.host)
    if settings.trusted_proxy_hops > 0:
        # Only then is X-Forwarded-For believed: a client could otherwise claim to be loopback.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    @app.before_request
    def _security() -> None:
        _authorize(keys, hosts, settings)
        # After the key check: an anonymous client cannot make the server read its body.
        limit = body_limit(settings)
        request.max_content_length = limit  # Werkzeug's 413 for a Content-Length above it
        check_body_size(limit)

    if settings.cors_origins:
        CORS(
            app,
            origins=list(settings.cors_origins),
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "x-api-key",
                           "anthropic-version"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
