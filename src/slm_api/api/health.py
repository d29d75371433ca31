"""GET /health (is a model loaded, which, and for how long) and GET /ready (should a balancer
send traffic here)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from slm_api import state
from slm_api.engine import gpu_offload_supported

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> tuple[Response, int]:
    # Reads registry state only: never waits on a generation or a load.
    eng = state.engine()
    active = eng.active
    body = {
        "status": "ok" if active else "no_model",
        "model_loaded": active is not None,
        "model": active.id if active else None,
        "model_path": str(active.path) if active else None,
        "n_ctx": active.n_ctx if active else None,
        "chat_format": active.chat_format if active else None,
        "loaded_models": [m.id for m in eng.loaded()],
        "requests_in_flight": eng.in_use(),
        "gpu_offload": gpu_offload_supported(),
        "uptime_s": round(time.time() - eng.started_at, 1),
    }
    return jsonify(body), 200 if active else 503


@bp.get("/ready")
def ready() -> tuple[Response, int]:
    """Readiness, for balancers and Kubernetes: 200 only when this replica should get traffic."""
    active = state.engine().active
    body = {"status": "ready" if active else "no_model", "model": active.id if active else None}
    return jsonify(body), 200 if active else 503
