"""Under gunicorn as deployed: probes answer while streams hold every thread, work beyond
capacity is refused at once, and SIGTERM drains streams to their [DONE]."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from support.http_server import gunicorn_server

# A base-model continuation that goes on far past the few seconds a test holds it.
COUNTING = {"prompt": "1, 2, 3, 4, 5,", "temperature": 0, "stream": True}
# A chat stream sends its first event (the role) before its first token: a waiting one is
# visibly answered (status 200) while it waits for a slot.
CHAT = {"messages": [{"role": "user", "content": "Count from 1 to 1000."}], "stream": True}


class Stream:
    """A streaming request read on its own thread; keeps the status, headers and SSE data."""

    def __init__(self, url: str, path: str, body: dict):
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.events: list[str] = []
        self.first_token = threading.Event()
        self.answered = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url + path, body), daemon=True)
        self._thread.start()

    def _run(self, url: str, body: dict) -> None:
        try:
            with requests.post(url, json=body, stream=True, timeout=120) as r:
                self.status, self.headers = r.status_code, dict(r.headers)
                self.answered.set()
                if r.status_code != 200:
                    self.events.append(r.text)
                    return
                for line in r.iter_lines(decode_unicode=True):
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        if len(self.events) >= 2:
                            self.first_token.set()
                    if self._stop.is_set():
                        return
        finally:
            self.answered.set()

    def close(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def last_finish_reason(self) -> str | None:
        for data in reversed(self.events):
            if data != "[DONE]":
                choices = json.loads(data).get("choices") or [{}]
                return choices[0].get("finish_reason")
        return None


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
        deadline = time.monotonic() + 30
        while requests.get(proc.url + "/health", timeout=10).json()["requests_in_flight"] < 4:
            assert time.monotonic() < deadline, "the queued requests never arrived"
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
