"""The objects `create_app` builds before anything else, each behind one accessor (flaskr's
`get_db` pattern): the settings, the engine, the download jobs.

Every other object the app holds keeps its accessor with the module that owns it, as flaskr
keeps `get_db` in db.py: the metrics with observability.py (`get_metrics`), the rate limits
with ratelimit.py (`get_rate_limits`), the keys with security.py (`get_keys`), the drain with
lifecycle.py (`get_lifecycle`), a family's own objects with their family (the Responses store:
api/responses/store.py, the OpenAPI document: api/admin/docs.py). No module reads
`app.extensions` or `app.config` for an object it does not own. So this module types against
none of them, and knows no family. Each accessor reads the current app, or the `app` given
(for code that runs at setup, outside a request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from slm_api.config import Settings
    from slm_api.engine import Engine
    from slm_api.hub import DownloadJobs

_SETTINGS = "SETTINGS"
_ENGINE = "slm_engine"
_DOWNLOADS = "slm_downloads"


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
