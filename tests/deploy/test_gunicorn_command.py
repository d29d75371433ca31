"""`gunicorn -w 1 -b HOST:PORT slm_api.app:app`, the command users copy into systemd units and
Dockerfiles, serves as `slm-api serve` does: gunicorn.conf.py (read from the working directory)
gives it the probe-lane worker and the thread count, and `slm_api.app:app` is built on first use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests
from support.streams import CHAT, Stream, wait_for_a_token
from test_deploy import REPO, free_port

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def _env(models_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "MODELS_DIR": str(models_dir), "N_THREADS": "2", "N_CTX": "2048",
            "LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO / "src"), **extra}


def _wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "gunicorn exited while starting"
        assert time.monotonic() < deadline, "gunicorn did not serve /health in 120 s"
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)


def test_the_readme_gunicorn_line_serves_with_the_probe_lane(models_dir: Path):
    # The README's line, on loopback and a free port: 4 request threads (HTTP_THREADS, read by
    # gunicorn.conf.py), so 4 streams hold every one of them. A bare sync worker would leave
    # /health waiting behind the first stream; gthread without the lane would queue it behind
    # all four; the probe-lane worker answers it and refuses the fifth stream with 503.
    port = free_port()
    proc = subprocess.Popen(
        [GUNICORN, "-w", "1", "-b", f"127.0.0.1:{port}", "slm_api.app:app"],
        cwd=REPO, env=_env(models_dir, N_PARALLEL="2", MAX_QUEUE="2", HTTP_THREADS="4"))
    url = f"http://127.0.0.1:{port}"
    streams: list[Stream] = []
    try:
        _wait_healthy(proc, url)
        streams = [Stream(url, "/v1/chat/completions", {**CHAT, "max_tokens": 1500})
                   for _ in range(4)]
        for s in streams:
            assert s.answered.wait(60)
        assert wait_for_a_token(streams, 60), "no stream produced a token"
        # The fifth is refused only while all four hold their threads: none may have ended.
        assert requests.get(f"{url}/health", timeout=30).json()["requests_in_flight"] == 4
        for _ in range(5):
            started = time.monotonic()
            health = requests.get(f"{url}/health", timeout=30)
            assert health.status_code == 200, health.text
            assert time.monotonic() - started < 1.0
        fifth = requests.post(f"{url}/v1/chat/completions",
                              json={**CHAT, "max_tokens": 5}, timeout=30)
        assert fifth.status_code == 503 and fifth.json()["error"]["code"] == "server_busy"
        assert Counter(s.status for s in streams) == {200: 4}
        for s in streams:
            s.close()
        for s in streams:
            s.join(60)
        # A whole stream once the threads are free again: role, tokens, finish, [DONE].
        done = Stream(url, "/v1/chat/completions", {**CHAT, "max_tokens": 8})
        done.join(120)
        assert done.status == 200 and done.events[-1] == "[DONE]"
        assert done.last_finish_reason() == "length"
    finally:
        for s in streams:
            s.close()
        proc.terminate()
        proc.wait(timeout=60)


def test_a_second_worker_is_refused_before_any_model_loads(models_dir: Path):
    # Each worker would load its own copy of the model; gunicorn.conf.py's on_starting hook
    # stops the arbiter before it forks one.
    port = free_port()
    out = subprocess.run(
        [GUNICORN, "-w", "2", "-b", f"127.0.0.1:{port}", "slm_api.app:app"],
        cwd=REPO, env=_env(models_dir), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "run one (-w 1)" in out.stderr


def test_importing_the_module_builds_no_app():
    # `slm_api.app:app` exists for WSGI servers; importing the module (the tests, create_app's
    # callers) must not load a model as a side effect.
    code = ("import slm_api.app as m; assert '_lazy' in vars(m) and not m._lazy; "
            "print(callable(getattr(m, 'create_app')))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(Path("/nonexistent")),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
