"""Under gunicorn as deployed: probes answer while streams hold every thread, work beyond
capacity is refused at once, and SIGTERM drains streams to their [DONE]."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import requests
from support.http_server import MODEL, gunicorn_server, metric
from support.streams import CHAT, Stream

# A base-model continuation that goes on far past the few seconds a test holds it.
COUNTING = {"prompt": "1, 2, 3, 4, 5,", "temperature": 0, "stream": True}


def test_probes_answer_while_streams_hold_every_thread(models_dir: Path):
    # 12 request threads: 2 streams generate, 10 wait for a slot; the other 36 find no thread.
    with gunicorn_server(models_dir, N_PARALLEL=2, MAX_QUEUE=16, HTTP_THREADS=12) as proc:
        body = {**CHAT, "max_tokens": 1500}
        streams = [Stream(proc.url, "/v1/chat/completions", body) for _ in range(48)]
        try:
            for s in streams:
                assert s.answered.wait(60)
            took: list[float] = []
            for _ in range(15):
                for path in ("/health", "/ready"):
                    started = time.monotonic()
                    r = requests.get(proc.url + path, timeout=30)
                    took.append(time.monotonic() - started)
                    assert r.status_code == 200, r.text
            assert max(took) < 1.0  # loose: the benchmark measures p99 < 100 ms
            assert Counter(s.status for s in streams) == {200: 12, 503: 36}
            refused = [s for s in streams if s.status == 503]
            assert {s.headers.get("Retry-After") for s in refused} == {"1"}
            assert {json.loads(s.events[0])["error"]["code"] for s in refused} == {"server_busy"}
        finally:
            for s in streams:
                s.close()


def test_sigterm_drains_streams_to_done(models_dir: Path):
    with gunicorn_server(models_dir, N_PARALLEL=2, DRAIN_TIMEOUT_S=4) as proc:
        running = [Stream(proc.url, "/v1/completions", {**COUNTING, "max_tokens": 1500})
                   for _ in range(2)]
        for s in running:
            assert s.first_token.wait(60)
        queued_stream = Stream(proc.url, "/v1/chat/completions", {**CHAT, "max_tokens": 50})
        queued_plain = Stream(proc.url, "/v1/chat/completions",
                              {**CHAT, "stream": False, "max_tokens": 50})
        # Queued in the engine, not only arrived: a request still being planned when SIGTERM
        # comes is refused with a plain 503 (also right, but not what this test drains).
        deadline = time.monotonic() + 30
        while metric(proc.url, "slm_queue_depth", model=MODEL) < 2:
            assert time.monotonic() < deadline, "the queued requests never reached the queue"
            time.sleep(0.1)

        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        ready = requests.get(proc.url + "/ready", timeout=10)
        assert (ready.status_code, ready.json()["status"]) == (503, "draining")
        assert requests.get(proc.url + "/health", timeout=10).status_code == 200
        late = requests.post(proc.url + "/v1/completions", json={"prompt": "hi"}, timeout=10)
        assert (late.status_code, late.json()["error"]["code"]) == (503, "draining")
        assert late.headers["Retry-After"] == "1"

        assert proc.wait(timeout=40) == 0
        exited = time.monotonic() - sent
        for s in (*running, queued_stream, queued_plain):
            s.join(10)
        for s in running:
            assert s.events[-1] == "[DONE]"
            assert s.last_finish_reason() == "length"
        assert queued_stream.events[-1] == "[DONE]"
        assert json.loads(queued_stream.events[-2])["error"]["code"] == "draining"
        assert queued_plain.status == 503
        assert json.loads(queued_plain.events[0])["error"]["code"] == "draining"
        assert 4 <= exited < 4 + 15
