"""The app's shared objects, each behind one accessor (flaskr's `get_db` pattern).

`create_app` stores them once; every other module reads them through these functions, never
through `app.extensions` or `app.config` directly. A family's own objects keep their
accessor with their owner (the Responses store: api/responses/store.py), so this module
knows none of the families. Each accessor reads the current app, or the
`app` given (for code that runs at setup, outside a request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from slm_api.config import Settings
    from slm_api.engine import Engine
    from slm_api.hub import DownloadJobs
    from slm_api.plumbing.observability import Metrics
    from slm_api.plumbing.ratelimit import RateLimits
    from slm_api.plumbing.security import KeyRing

_SETTINGS = "SETTINGS"
_ENGINE = "slm_engine"
_DOWNLOADS = "slm_downloads"
_METRICS = "slm_metrics"
_KEYS = "slm_keys"
_OPENAPI = "slm_openapi"
_RATE_LIMITS = "slm_rate_limits"


def _app(app: Flask | None) -> Flask:
    return app if app is not None else current_app  # type: ignore[return-value]


def init_app(app: Flask, settings: Settings, engine: Engine, downloads: DownloadJobs) -> None:
    app.config[_SETTINGS] = settings
    app.extensions[_ENGINE] = engine
    app.extensions[_DOWNLOADS] = downloads


def settings(app: Flask | None = None) -> Settings:
    return _app(app).config[_SETTINGS]


def engine(app: Flask | None = None) -> Engine:
    return _app(app).extensions[_ENGINE]


def downloads(app: Flask | None = None) -> DownloadJobs:
    return _app(app).extensions[_DOWNLOADS]


def set_metrics(app: Flask, metrics: Metrics) -> None:
    app.extensions[_METRICS] = metrics


def metrics(app: Flask | None = None) -> Metrics | None:
    """None in an app built without observability (no /metrics to feed)."""
    return _app(app).extensions.get(_METRICS)


def set_keys(app: Flask, keys: KeyRing) -> None:
    app.extensions[_KEYS] = keys


def keys(app: Flask | None = None) -> KeyRing | None:
    return _app(app).extensions.get(_KEYS)


def set_rate_limits(app: Flask, limits: RateLimits) -> None:
    app.extensions[_RATE_LIMITS] = limits


def rate_limits(app: Flask | None = None) -> RateLimits | None:
    """None when RATE_LIMIT_RPM and RATE_LIMIT_TPM are both off."""
    return _app(app).extensions.get(_RATE_LIMITS)


def openapi_spec(app: Flask, build: Callable[[Flask], dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI document, built once by `build(app)`: routes are fixed once serving starts."""
    spec = app.extensions.get(_OPENAPI)
    if spec is None:
        spec = app.extensions[_OPENAPI] = build(app)
    return spec
