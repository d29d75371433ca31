"""Request ids, the JSON access log and /metrics, through real HTTP."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support.http_server import MODEL, make_settings, running_server

from slm_api.plumbing.observability import ACCESS_LOGGER

SECRET = "purple-elephant-prompt"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))

    def wait_for(self, request_id: str, timeout: float = 5.0) -> dict:
        # The line is written once the response is closed, just after the client has it.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line["request_id"] == request_id:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no access-log line for {request_id}")


@pytest.fixture
def access_log():
    handler = _Lines()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("obs-models")


def _samples(url: str, headers: dict | None = None) -> dict[tuple[str, tuple], float]:
    r = requests.get(f"{url}/metrics", headers=headers or {}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_ids(empty_dir):
    with running_server(make_settings(empty_dir, openai_api_key="k"), load_model=False) as url:
        auth = {"Authorization": "Bearer k"}
        made = requests.get(f"{url}/v1/models", headers=auth, timeout=10).headers["X-Request-ID"]
        assert len(made) == 32 and int(made, 16) >= 0
        kept = requests.get(f"{url}/v1/models", timeout=10,
                            headers={**auth, "X-Request-ID": "trace-42.a_b"})
        assert kept.headers["X-Request-ID"] == "trace-42.a_b"
        # Errors carry it too: refused by security, unknown route, bad body.
        for method, path, headers in (("GET", "/v1/models", {}), ("GET", "/nope", auth),
                                      ("POST", "/v1/chat/completions", auth)):
            r = requests.request(method, url + path, headers={**headers, "X-Request-ID": "e-1"},
                                 timeout=10)
            assert r.status_code >= 400 and r.headers["X-Request-ID"] == "e-1"
        # Ids that could forge log lines or bloat headers are replaced, not echoed.
        for bad in ("has space", "x" * 129, "tab\there", "caf\u00e9"):
            r = requests.get(f"{url}/v1/models", timeout=10,
                             headers={**auth, "X-Request-ID": bad.encode("utf-8")})
            assert r.headers["X-Request-ID"] != bad and len(r.headers["X-Request-ID"]) == 32


def test_access_log_lines(empty_dir, access_log):
    keys = dict(openai_api_keys=("key-a:team-a",), log_prompts=False)
    with running_server(make_settings(empty_dir, **keys), load_model=False) as url:
        r = requests.post(f"{url}/v1/chat/completions", timeout=10,
                          headers={"Authorization": "Bearer key-a", "X-Request-ID": "log-1"},
                          json={"messages": [{"role": "user", "content": SECRET}]})
        assert r.status_code == 503
        line = access_log.wait_for("log-1")
        assert line["client_id"] == "team-a" and line["status"] == 503
        assert line["route"] == "/v1/chat/completions" and line["method"] == "POST"
        assert line["latency_ms"] >= 0 and line["completion_tokens"] == 0
        assert "T" in line["time"] and line["time"].endswith("+00:00")
        requests.get(f"{url}/health", headers={"X-Request-ID": "log-2"}, timeout=10)
        assert access_log.wait_for("log-2")["client_id"] == "127.0.0.1"
        assert SECRET not in json.dumps(access_log.lines)
    with running_server(make_settings(empty_dir, log_prompts=True), load_model=False) as url:
        requests.post(f"{url}/v1/completions", headers={"X-Request-ID": "log-3"},
                      json={"prompt": SECRET}, timeout=10)
        assert SECRET in access_log.wait_for("log-3")["prompt"]


def test_metrics_without_model(empty_dir):
    with running_server(make_settings(empty_dir), load_model=False) as url:
        for _ in range(3):
            requests.get(f"{url}/v1/models", timeout=10)
        requests.get(f"{url}/v1/models/x", timeout=10)  # 404, counted under the template
        requests.get(f"{url}/missing/route", timeout=10)
        # A request is counted when its response closes, just after the client got it.
        deadline = time.monotonic() + 5
        samples = _samples(url)
        while time.monotonic() < deadline and (
                _value(samples, "slm_requests_total", route="<unmatched>", method="GET",
                       status="404") == 0
                or _value(samples, "slm_requests_total", route="/v1/models", method="GET",
                          status="200") < 3):
            time.sleep(0.05)
            samples = _samples(url)
        assert _value(samples, "slm_requests_total", route="/v1/models", method="GET",
                      status="200") == 3
        assert _value(samples, "slm_requests_total", route="/v1/models/<path:model_id>",
                      method="GET", status="404") == 1
        assert _value(samples, "slm_requests_total", route="<unmatched>", method="GET",
                      status="404") == 1
        assert _value(samples, "slm_request_duration_seconds_count", route="/v1/models") == 3
        assert _value(samples, "slm_models_loaded") == 0
    # A second app in the same process starts from zero: registries are per app.
    with running_server(make_settings(empty_dir), load_model=False) as url:
        assert _value(_samples(url), "slm_requests_total", route="/v1/models", method="GET",
                      status="200") == 0


def test_generation_metrics_and_log(models_dir, access_log):
    settings = make_settings(models_dir, n_parallel=2)
    with running_server(settings) as url:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story"}],
                "max_tokens": 8, "temperature": 0}
        r = requests.post(f"{url}/v1/chat/completions", json=chat, timeout=60,
                          headers={"X-Request-ID": "gen-1"})
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        line = access_log.wait_for("gen-1")
        assert line["prompt_tokens"] == usage["prompt_tokens"] > 0
        assert line["completion_tokens"] == usage["completion_tokens"] > 0
        assert line["ttft_ms"] > 0

        # While a stream runs, the engine numbers show it in flight.
        started, done = threading.Event(), threading.Event()
        in_flight: list[float] = []
        stream_ids: list[str | None] = []

        def stream() -> None:
            body = {**chat, "stream": True, "max_tokens": 200}
            with requests.post(f"{url}/v1/chat/completions", json=body, stream=True,
                               timeout=60, headers={"X-Request-ID": "gen-2"}) as resp:
                stream_ids.append(resp.headers.get("X-Request-ID"))
                for raw in resp.iter_lines():
                    # The first frame (the role) can precede the scheduler taking the job.
                    has_text = b'"content":"' in raw and b'"content":""' not in raw
                    if not started.is_set() and has_text:
                        in_flight.append(_value(_samples(url), "slm_generations_in_flight",
                                                model=MODEL))
                        started.set()
                    if done.is_set():
                        break

        worker = threading.Thread(target=stream)
        worker.start()
        assert started.wait(60)
        done.set()
        worker.join(60)
        assert in_flight == [1.0]
        assert stream_ids == ["gen-2"]  # streams carry the id too
        assert access_log.wait_for("gen-2")["status"] == 200

        samples = _samples(url)
        assert _value(samples, "slm_prompt_tokens_total") >= usage["prompt_tokens"]
        assert _value(samples, "slm_completion_tokens_total") >= usage["completion_tokens"]
        assert _value(samples, "slm_time_to_first_token_seconds_count") >= 1
        assert _value(samples, "slm_generation_tokens_per_second_count") >= 1
        assert _value(samples, "slm_generations_total", finish_reason="length") >= 1
        assert _value(samples, "slm_models_loaded") == 1
        assert _value(samples, "slm_model_loaded", model=MODEL, active="1") == 1
        assert _value(samples, "slm_parallel_slots", model=MODEL) == 2
        assert _value(samples, "slm_queue_depth", model=MODEL) == 0
        assert _value(samples, "slm_requests_total", route="/v1/chat/completions",
                      method="POST", status="200") == 2
