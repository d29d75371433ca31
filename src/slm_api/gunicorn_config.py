"""Gunicorn settings for `slm-api serve`: one worker process (it owns the model), many threads
(connections), and the worker class of worker.py (a probe lane, admission at the door, a drain
on SIGTERM)."""

from __future__ import annotations

from typing import Any

from slm_api.config import Settings


def options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": f"{settings.host}:{settings.port}",
        # One process holds the model in memory; the engine batches whatever the threads submit.
        # A stream holds a thread for its whole life, so probes get a lane of their own and a
        # request finding every thread busy is refused at once (worker.py says why).
        "workers": 1,
        "worker_class": "slm_api.worker.ProbeLaneWorker",
        "threads": settings.request_threads,
        # A generation may outlast gunicorn's default 30 s; the engine has its own time cap.
        "timeout": 0,
        # The drain (lifecycle.py) ends generations by DRAIN_TIMEOUT_S; the rest is time for
        # their last frames to be written before the arbiter kills the worker.
        "graceful_timeout": int(settings.drain_timeout_s) + 15,
        "keepalive": 5,
        "loglevel": settings.log_level.lower(),
        "accesslog": None,
    }
