"""What an operator sees: request ids, one JSON access-log line per request, /metrics.

Metrics live in a registry of the app's own (not prometheus_client's global one), so apps built
side by side in one process (tests) never collide. Engine numbers (queue depth, generations in
flight, loaded models) are read from the engine when /metrics is scraped, not pushed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from slm_api.api.core.contract import contract
from slm_api.engine import Engine
from slm_api.plumbing import state

ACCESS_LOGGER = "slm_api.access"
REQUEST_ID_HEADER = "X-Request-ID"
# Visible ASCII only, capped: an incoming id is echoed into headers and logs, so it must not
# carry spaces, control characters (log forging, header splitting) or bulk.
_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
# Body fields that hold prompt text; logged only with LOG_PROMPTS=1.
PROMPT_FIELDS = ("messages", "prompt", "input", "text", "instructions", "suffix")
PROMPT_LOG_CHARS = 2000

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

bp = Blueprint("observability", __name__)
_EXTENSION = "slm_metrics"


class Metrics:
    """The app's metrics; one instance per app, reached through `get_metrics()`."""

    def __init__(self, engine: Engine):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "slm_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "slm_request_duration_seconds",
            "Time from request to the last byte of the response (streams included)",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "slm_time_to_first_token_seconds", "Time from submission to the first generated token",
            buckets=_TTFT_BUCKETS, registry=r,
        )
        self.generation_time = Histogram(
            "slm_generation_duration_seconds", "Time from submission to the end of a generation",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens_per_second = Histogram(
            "slm_generation_tokens_per_second",
            "Completion tokens per second of decoding, per generation",
            buckets=_TPS_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter(
            "slm_prompt_tokens", "Prompt tokens of finished generations", registry=r
        )
        self.completion_tokens = Counter(
            "slm_completion_tokens", "Tokens generated", registry=r
        )
        self.generations = Counter(
            "slm_generations", "Finished generations by finish reason", ["finish_reason"],
            registry=r,
        )
        r.register(_EngineCollector(engine))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def get_metrics(app: Flask | None = None) -> Metrics | None:
    """The app's metrics (`app`, or the current one); None in an app built without
    observability (no /metrics to feed)."""
    return (app if app is not None else current_app).extensions.get(_EXTENSION)


class _EngineCollector(Collector):
    """Engine state, read at scrape time through the registry's read-only methods."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        loaded = self.engine.loaded()
        stats = self.engine.stats()
        active_id = self.engine.active_id
        models = GaugeMetricFamily("slm_models_loaded", "Models held in memory")
        models.add_metric([], len(loaded))
        info = GaugeMetricFamily(
            "slm_model_loaded", "1 per model in memory; active=1 for the default one",
            labels=["model", "active"],
        )
        for m in loaded:
            info.add_metric([m.id, "1" if m.id == active_id else "0"], 1)
        pinned = GaugeMetricFamily(
            "slm_requests_using_model", "Requests holding a model (generating or waiting)"
        )
        pinned.add_metric([], self.engine.in_use())
        in_flight = GaugeMetricFamily(
            "slm_generations_in_flight", "Sequences being generated", labels=["model"]
        )
        queued = GaugeMetricFamily(
            "slm_queue_depth", "Generations waiting for a free slot", labels=["model"]
        )
        slots = GaugeMetricFamily(
            "slm_parallel_slots", "Sequences a model generates side by side", labels=["model"]
        )
        sampled = CounterMetricFamily(
            "slm_tokens_sampled", "Tokens the decode loop sampled, for every generation "
            "(aborted ones included) since the model was loaded", labels=["model"],
        )
        drafts = CounterMetricFamily(
            "slm_draft_tokens", "Prompt-lookup draft tokens decoded, by whether the model "
            "agreed with them (accepted) or they were dropped (rejected)",
            labels=["model", "outcome"],
        )
        images = CounterMetricFamily(
            "slm_image_encodes", "Images and sounds a projector met in prompts: encoded, or "
            "reused (the encoder's output kept for the same picture)",
            labels=["model", "outcome"],
        )
        for model_id, s in stats.items():
            if "images_encoded" in s:
                images.add_metric([model_id, "encoded"], s["images_encoded"])
                images.add_metric([model_id, "reused"], s.get("image_encodes_reused", 0))
            in_flight.add_metric([model_id], s.get("active", 0))
            queued.add_metric([model_id], s.get("queued", 0))
            slots.add_metric([model_id], s.get("n_parallel", 0))
            sampled.add_metric([model_id], s.get("tokens_sampled", 0))
            accepted = s.get("draft_tokens_accepted", 0)
            drafts.add_metric([model_id, "accepted"], accepted)
            drafts.add_metric([model_id, "rejected"], s.get("draft_tokens", 0) - accepted)
        return [models, info, pinned, in_flight, queued, slots, sampled, drafts, images]


@dataclass
class RequestStats:
    """Token counts of one HTTP request (a /v1/completions request may run several)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    generations: int = 0


GenerationRecorder = Callable[[int, int, "float | None", float, str], None]


def _noop_recorder(*_: Any) -> None:
    return None


def generation_recorder() -> GenerationRecorder:
    """`record(prompt_tokens, completion_tokens, ttft_s, duration_s, finish_reason)`, bound to
    this app and request. Take it while the request context exists: a streamed body runs after
    the context is gone, and the recorder keeps working there."""
    metrics = get_metrics() if has_request_context() else None
    if metrics is None:
        return _noop_recorder
    stats: RequestStats = g.setdefault("slm_stats", RequestStats())

    def record(
        prompt_tokens: int, completion_tokens: int, ttft_s: float | None, duration_s: float,
        finish_reason: str = "stop",
    ) -> None:
        metrics.prompt_tokens.inc(prompt_tokens)
        metrics.completion_tokens.inc(completion_tokens)
        metrics.generations.labels(finish_reason).inc()
        metrics.generation_time.observe(duration_s)
        if ttft_s is not None:
            metrics.ttft.observe(ttft_s)
        decode_s = duration_s - (ttft_s or 0.0)
        if completion_tokens > 1 and decode_s > 0:
            metrics.tokens_per_second.observe(completion_tokens / decode_s)
        stats.prompt_tokens += prompt_tokens
        stats.completion_tokens += completion_tokens
        stats.generations += 1
        if stats.ttft_s is None:
            stats.ttft_s = ttft_s

    return record


def valid_request_id(value: str | None) -> bool:
    return bool(value) and _REQUEST_ID_RE.match(value) is not None


def _prompt_text() -> str | None:
    try:
        body = request.get_json(silent=True, cache=True)
    except Exception:  # a body over MAX_REQUEST_BYTES cannot be read again; log none
        return None
    if not isinstance(body, dict):
        return None
    picked = {k: body[k] for k in PROMPT_FIELDS if k in body}
    if not picked:
        return None
    return json.dumps(picked, ensure_ascii=False)[:PROMPT_LOG_CHARS]


def _access_logger() -> logging.Logger:
    logger = logging.getLogger(ACCESS_LOGGER)
    # Its own handler and level: access lines are the operator's record of traffic and should
    # not vanish with LOG_LEVEL=WARNING nor be reformatted by the root handler.
    if not any(getattr(h, "_slm_access", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._slm_access = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


@bp.get("/metrics")
@contract(access="monitoring", content_type="text/plain")
def metrics() -> Response:
    """Prometheus metrics."""
    return Response(get_metrics().render(), mimetype=None,  # type: ignore[union-attr]
                    content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Request ids, access log and /metrics. Call before security.init_app so that responses
    refused by it still carry a request id and are counted."""
    metrics_ = app.extensions[_EXTENSION] = Metrics(state.engine(app))
    log_prompts = state.settings(app).log_prompts
    access = _access_logger()
    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = incoming if valid_request_id(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()
        g.slm_stats = RequestStats()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("started") or time.perf_counter()
        stats: RequestStats = g.get("slm_stats") or RequestStats()
        line: dict[str, Any] = {
            "request_id": request_id,
            "client_id": g.get("client_id") or request.remote_addr,
            "method": request.method,
            "route": request.url_rule.rule if request.url_rule else None,
            "path": request.path[:200],
            "status": response.status_code,
        }
        if log_prompts:
            line["prompt"] = _prompt_text()
        route_label = line["route"] or "<unmatched>"

        def _closed() -> None:
            # Runs once the last byte has gone out (or the client left): a stream's latency and
            # token counts are only known here.
            latency = time.perf_counter() - started
            metrics_.requests.labels(route_label, request_method, str(status)).inc()
            metrics_.latency.labels(route_label).observe(latency)
            entry = {
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                **line,
                "latency_ms": round(latency * 1000, 1),
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
            }
            if stats.ttft_s is not None:
                entry["ttft_ms"] = round(stats.ttft_s * 1000, 1)
            access.info(json.dumps(entry, ensure_ascii=True))

        request_method, status = request.method, response.status_code
        response.call_on_close(_closed)
        return response
