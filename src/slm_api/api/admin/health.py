"""GET /health (liveness: the process and its decode loops are alive, which model, for how long)
and GET /ready (readiness: should a balancer send traffic here).

Under gunicorn both are answered on the worker's probe lane (server/worker.py), never behind
streams.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from slm_api.api.admin.protocol import Health, Ready
from slm_api.api.core.contract import contract
from slm_api.engine import gpu_offload_supported
from slm_api.gguf_info import fingerprint
from slm_api.plumbing import state

bp = Blueprint("health", __name__)


@bp.get("/health")
@contract(access="monitoring", response=Health)
def health() -> tuple[Response, int]:
    """Liveness and the loaded model.

    200 while a model is loaded and every decode loop runs; 503 with `status` "no_model" (start
    one with POST /reload) or "engine_loop_dead" (restart the process). Reads registry state
    only: never waits on a generation or a load."""
    eng = state.engine()
    active = eng.active
    loops_alive = eng.loops_alive()
    status = "ok" if active else "no_model"
    if not loops_alive:
        status = "engine_loop_dead"
    body = {
        "status": status,
        "model_loaded": active is not None,
        "model": active.id if active else None,
        "model_path": str(active.path) if active else None,
        # Replicas behind a balancer: same id and fingerprint means the same file.
        "model_fingerprint": fingerprint(active.path) if active else None,
        "n_ctx": active.n_ctx if active else None,
        "chat_format": active.chat_format if active else None,
        # The active model's projector (issue 38): what it reads besides text.
        "mmproj": active.mmproj.name if active and active.mmproj else None,
        "input_modalities": ["text", *sorted(active.media_kinds)] if active else None,
        # What llama.cpp's context was made with (KV_CACHE_TYPE, FLASH_ATTENTION or /reload's).
        "kv_cache_type_k": active.kv_cache_type_k if active else None,
        "kv_cache_type_v": active.kv_cache_type_v if active else None,
        "flash_attention": active.flash_attention if active else None,
        "loaded_models": [m.id for m in eng.loaded()],
        "requests_in_flight": eng.in_use(),
        "draining": eng.draining,
        "gpu_offload": gpu_offload_supported(),
        "uptime_s": round(time.time() - eng.started_at, 1),
    }
    return jsonify(body), 200 if status == "ok" else 503


def _not_ready_reason() -> str | None:
    eng = state.engine()
    if eng.draining:
        return "draining"
    if eng.active is None:
        return "no_model"
    if not eng.loops_alive():
        return "engine_loop_dead"
    for stats in eng.stats().values():
        queued = stats.get("queued", 0)
        if queued and queued >= stats.get("max_queue", 0):
            return "queue_full"
    return None


@bp.get("/ready")
@contract(access="monitoring", response=Ready)
def ready() -> tuple[Response, int]:
    """Readiness, for balancers and Kubernetes.

    200 only when this replica should get traffic: a model is loaded, the generation queue is
    below MAX_QUEUE and the server is not draining after SIGTERM. Otherwise 503 with the reason
    in `status` ("no_model", "queue_full", "draining", "engine_loop_dead")."""
    reason = _not_ready_reason()
    active = state.engine().active
    body = {"status": reason or "ready", "model": active.id if active else None}
    response = jsonify(body)
    if reason is not None:
        response.headers["Retry-After"] = "1"
    return response, 503 if reason else 200
