"""Gunicorn settings for `slm-api serve`: one worker process (it owns the model), many threads
(connections)."""

from __future__ import annotations

from typing import Any

from slm_api.config import Settings


def options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": f"{settings.host}:{settings.port}",
        # One process holds the model in memory; threads let a long stream and /health be
        # served at the same time. The engine batches whatever the threads submit.
        "workers": 1,
        "worker_class": "gthread",
        "threads": 32,
        # A generation may outlast gunicorn's default 30 s; the engine has its own time cap.
        "timeout": 0,
        "graceful_timeout": 10,
        "keepalive": 5,
        "loglevel": settings.log_level.lower(),
        "accesslog": None,
    }
