"""Three replicas behind the checked-in nginx config with a shared Redis, on loopback
(`make test-scale`): shared limits, unbuffered streams, a rolling restart that rolls a new model
out, and a crash.

Skipped by `make test` (it needs ~1.5 GB and a few minutes); `make test-scale` sets
SLM_TEST_SCALE=1.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support.cluster import Cluster
from support.http_server import model_folder
from support.streams import NO_END

pytestmark = pytest.mark.skipif(
    os.environ.get("SLM_TEST_SCALE") != "1",
    reason="replicas + nginx + Redis: run by `make test-scale` (SLM_TEST_SCALE=1)",
)

RPM = 5
# Enough keys that the bounded load below stays under RPM for each of them.
KEYS = [f"k{i}" for i in range(240)]
ROLLOUT = "rollout-v2"


@pytest.fixture(scope="module")
def folder(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODELS_DIR of the replicas: the default model, and the same weights as the "new" model
    a rollout switches to."""
    return model_folder(tmp_path_factory.mktemp("scale-models"), models_dir, f"{ROLLOUT}.gguf")


@pytest.fixture(scope="module")
def cluster(folder: Path, tmp_path_factory: pytest.TempPathFactory):
    keys = ",".join([*(f"{k}:{k}" for k in KEYS), "k-rpm:rpm", "k-stream:stream"])
    with Cluster(folder, tmp_path_factory.mktemp("cluster"), 3, RATE_LIMIT_RPM=str(RPM),
                 OPENAI_API_KEYS=keys) as c:
        yield c


def _chat(url: str, key: str, *, stream: bool = False, max_tokens: int = 8,
          request_id: str | None = None, session: str | None = None,
          to_the_end: bool = False) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": request_id or uuid.uuid4().hex}
    if session:
        headers["X-Session-ID"] = session
    body = {"messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": max_tokens, "stream": stream}
    if to_the_end:  # every one of max_tokens generated
        body["logit_bias"] = NO_END
    return requests.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=120,
                         stream=stream)


class Load:
    """A bounded load through the balancer: `workers` threads, one key per request (so no key
    nears its RPM), alternating plain and streamed completions. Records every outcome."""

    def __init__(self, url: str, keys: list[str], workers: int = 3, pause_s: float = 0.2):
        self.url, self.pause_s = url, pause_s
        self._keys = itertools.cycle(keys)
        self._lock = threading.Lock()
        self.outcomes: list[tuple[float, str, int | str]] = []  # (started, request id, status)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(workers)]

    def _one(self, stream: bool) -> None:
        with self._lock:
            key = next(self._keys)
        rid, started = uuid.uuid4().hex, time.monotonic()
        try:
            r = _chat(self.url, key, stream=stream, request_id=rid)
            status: int | str = r.status_code
            if stream and r.status_code == 200:
                frames = [f for f in r.iter_lines() if f]
                # A stream that breaks off has no [DONE]: the request failed.
                if frames[-1] != b"data: [DONE]" or any(b'"error"' in f for f in frames):
                    status = "broken stream"
            elif r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is None:
                status = "empty reply"
            # Recorded as an outcome, not asserted: an assert here would end this worker and drop
            # the request from the count. nginx's own 502 page (a killed replica) carries no id.
            if r.status_code == 200 and r.headers.get("X-Request-ID") != rid:
                status = "X-Request-ID did not pass through"
        except requests.RequestException as exc:
            status = type(exc).__name__
        with self._lock:
            self.outcomes.append((started, rid, status))

    def _run(self, worker: int) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            self._one(stream=(worker + n) % 2 == 1)
            time.sleep(self.pause_s)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=180)

    def failures(self, since: float = 0.0) -> list[tuple[float, str, int | str]]:
        return [o for o in self.outcomes if o[2] != 200 and o[0] >= since]


def _wait_until(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_rpm_limit_holds_exactly_across_replicas(cluster):
    # One key, its requests all at once and spread over every replica by a new session id each:
    # the counters in Redis let exactly RPM of them through.
    ids = [f"rpm-{i}-{uuid.uuid4().hex[:8]}" for i in range(RPM + 3)]

    def one(i: int) -> requests.Response:
        return requests.get(f"{cluster.url}/v1/models", timeout=30, headers={
            "Authorization": "Bearer k-rpm", "X-Session-ID": f"s{i}", "X-Request-ID": ids[i]})

    with ThreadPoolExecutor(len(ids)) as pool:
        responses = list(pool.map(one, range(len(ids))))
    assert sorted(r.status_code for r in responses) == [200] * RPM + [429] * 3
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
    served = cluster.upstreams(*ids)
    assert len({served[rid][-1] for rid in ids}) >= 2, "the requests did not spread"


def test_client_address_reaches_the_replicas(cluster):
    # nginx appends the client to X-Forwarded-For and the replicas trust one hop
    # (TRUSTED_PROXY_HOPS=1): a client on this machine is a local admin through the balancer...
    auth = {"Authorization": "Bearer k-stream"}
    r = requests.get(f"{cluster.url}/load/no-such-job", headers=auth, timeout=30)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "job_not_found")
    # ...and a header the client forges does not make a remote client of it, nor the reverse:
    # the hop nginx appended is the one believed.
    forged = {**auth, "X-Forwarded-For": "203.0.113.9"}
    r = requests.get(f"{cluster.url}/load/no-such-job", headers=forged, timeout=30)
    assert r.json()["error"]["code"] == "job_not_found"


def test_streams_arrive_unbuffered(cluster):
    def frame_times(url: str) -> list[float]:
        started = time.monotonic()
        r = _chat(url, "k-stream", stream=True, max_tokens=24, to_the_end=True)
        assert r.status_code == 200
        times = [time.monotonic() - started for line in r.iter_lines() if line]
        return times

    direct = frame_times(cluster.replicas[0].url)
    through = frame_times(cluster.url)

    def separate(times: list[float]) -> int:
        # Frames a buffering proxy holds back land in one read, microseconds apart; unbuffered
        # ones arrive a token's decode apart (milliseconds, however fast the machine).
        return sum(b - a > 0.001 for a, b in zip(times, times[1:], strict=False))

    assert len(through) >= 10
    assert separate(through) >= max(5, separate(direct) // 2), (direct, through)
    print(f"\nfirst token: direct {direct[1] * 1000:.0f} ms, through nginx "
          f"{through[1] * 1000:.0f} ms")


def test_rolling_restart_fails_no_request_and_rolls_a_model_out(cluster, folder):
    # Rolling a model out: the file is already in every replica's MODELS_DIR (a shared volume),
    # MODEL_PATH changes, and the replicas restart one at a time.
    with Load(cluster.url, KEYS[:120]) as load:
        time.sleep(1.0)
        for replica in cluster.replicas:
            assert replica.terminate() == 0
            replica.start(MODEL_PATH=str(folder / f"{ROLLOUT}.gguf"))
            replica.wait_ready()
            assert replica.health()["model"] == ROLLOUT
            # nginx's passive check keeps a replica out for fail_timeout (5 s) after a failed
            # try; the next replica goes down only once this one is back in the pool, as a
            # rollout with a readiness gate does (docs/scaling.md).
            time.sleep(5.5)
        time.sleep(1.0)
    assert len(load.outcomes) >= 10
    assert load.failures() == [], load.failures()
    served = {r.health()["model"] for r in cluster.replicas}
    assert served == {ROLLOUT}


def test_sigkill_loses_only_in_flight_requests(cluster):
    victim = cluster.replicas[1]
    victim_addr = f"127.0.0.1:{victim.port}"
    with Load(cluster.url, KEYS[120:], workers=3, pause_s=0.1) as load:
        time.sleep(2.0)
        killed_at = time.monotonic()
        victim.kill()
        time.sleep(6.0)
    after = [o for o in load.outcomes if o[0] > killed_at]
    assert len(after) >= 6
    # At most the requests the victim was serving (3 workers: at most 3 in flight anywhere).
    assert len(load.failures()) <= 3, load.failures()
    assert load.failures(since=killed_at + 0.5) == []
    # Passive health check: one refused connection marks it failed for fail_timeout (5 s), so
    # within 6 s nginx tries it for at most two requests (then the next replica serves them).
    served = cluster.upstreams(*(rid for _, rid, _ in after))
    tries = [rid for _, rid, _ in after if victim_addr in served.get(rid, [])]
    assert len(tries) <= 2, (tries, len(after))
    victim.start()
    victim.wait_ready()
    _wait_until(lambda: _chat(cluster.url, KEYS[0], max_tokens=1).status_code == 200, 30)


def test_every_replica_serves_the_same_file(cluster):
    bodies = [replica.health() for replica in cluster.replicas]
    assert {(b["model"], b["model_fingerprint"]) for b in bodies} == {
        (ROLLOUT, bodies[0]["model_fingerprint"])}
    assert len(bodies[0]["model_fingerprint"]) == 16
