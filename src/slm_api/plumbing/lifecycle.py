"""Shutting down without dropping streams: the drain that SIGTERM starts.

The gunicorn worker (server/worker.py) calls `Lifecycle.drain()` on SIGTERM and stops once it
returns.
While draining, /ready answers 503 so balancers stop sending traffic, every route that is not a
probe, the metrics or the docs answers 503 + Retry-After, requests still waiting for a slot get
503, and running generations go on to their end, but no later than DRAIN_TIMEOUT_S, when they
end with finish_reason "length" and [DONE].
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, request

from slm_api.engine import Engine
from slm_api.errors import Draining
from slm_api.plumbing import state
from slm_api.plumbing.security import route_access

log = logging.getLogger("slm_api.lifecycle")  # its name before the move: log filters keep working

# After the drain deadline, time left for the last frames to reach slow clients.
WRITE_GRACE_S = 5.0
_EXTENSION = "slm_lifecycle"


class Lifecycle:
    def __init__(self, engine: Engine, drain_timeout_s: float):
        self.engine = engine
        self.drain_timeout_s = drain_timeout_s

    @property
    def draining(self) -> bool:
        return self.engine.draining

    def drain(self) -> float:
        """Block until every request holding a model has finished (or the drain timeout and a
        short grace have passed); returns the seconds it took."""
        started = time.monotonic()
        deadline = started + self.drain_timeout_s
        self.engine.drain(deadline)
        while self.engine.in_use() > 0 and time.monotonic() < deadline + WRITE_GRACE_S:
            time.sleep(0.05)
        took = time.monotonic() - started
        left = self.engine.in_use()
        if left:
            log.warning("drain: %d request(s) still open after %.1f s; stopping anyway", left, took)
        else:
            log.info("drain: done in %.1f s", took)
        return took


def get_lifecycle(app: Any) -> Lifecycle | None:
    """The drain of `app`: what the gunicorn worker (server/worker.py) calls on SIGTERM. None for a
    WSGI app that is not one of ours (or was built without it)."""
    return getattr(app, "extensions", {}).get(_EXTENSION)


def init_app(app: Flask) -> None:
    settings = state.settings(app)
    lifecycle = app.extensions[_EXTENSION] = Lifecycle(state.engine(app),
                                                       settings.drain_timeout_s)

    @app.before_request
    def _refuse_while_draining() -> None:
        if lifecycle.draining and route_access(app, request.endpoint) not in ("open",
                                                                             "monitoring"):
            raise Draining("the server is shutting down; retry on another replica")
