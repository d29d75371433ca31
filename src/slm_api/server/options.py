"""Gunicorn settings for `slm-api serve`: one worker process (it owns the model), many threads
(connections), and the worker class of server/worker.py (a probe lane, admission at the door, a
drain on SIGTERM)."""

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
        "worker_class": "slm_api.server.worker.ProbeLaneWorker",
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


def from_env() -> dict[str, Any]:
    """The settings of a gunicorn config file, for `gunicorn -w 1 -b 0.0.0.0:8000
    slm_api.app:app`: gunicorn.conf.py in the checkout and the image (read from the working
    directory), or `-c python:slm_api.gunicorn_conf` anywhere else. The same worker, threads
    and timeouts as `slm-api serve`, from the environment and .env; what gunicorn's command line
    gives wins, except a second worker, which is refused."""
    conf = options(Settings.from_env())
    conf["wsgi_app"] = "slm_api.app:app"  # so a bare `gunicorn` serves it too
    conf["on_starting"] = one_worker_only
    return conf


def one_worker_only(server: Any) -> None:
    """gunicorn's on_starting hook: every worker would load its own copy of the model and run
    its own decode loop, so `-w 2` means twice the memory and no shared batching."""
    if server.cfg.workers != 1:
        raise SystemExit(
            f"slm-api: {server.cfg.workers} workers would each load their own copy of the model;"
            " run one (-w 1): its threads and the engine's batching serve concurrent requests"
        )
