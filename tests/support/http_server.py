"""A real slm-api HTTP server on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from flask import Flask
from werkzeug.serving import make_server

from slm_api.app import create_app
from slm_api.config import DEFAULT_MODEL_FILE, Settings
from slm_api.plumbing import state

MODEL = Path(DEFAULT_MODEL_FILE).stem  # the id of the default model
REPO = Path(__file__).resolve().parents[2]


def make_settings(models_dir: Path, **overrides: object) -> Settings:
    # Small context and two threads: the suite shares two cores with everything else.
    # The Hub cache and prompt cache live beside MODELS_DIR, so tests see only what lands in it.
    base = dict(
        models_dir=models_dir,
        n_threads=2,
        n_ctx=2048,
        n_parallel=4,
        hf_home=models_dir.with_name(models_dir.name + "-hf"),
        cache_dir=models_dir.with_name(models_dir.name + "-cache"),
        data_dir=models_dir.with_name(models_dir.name + "-data"),
        log_level="WARNING",
    )
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port; yields its base URL, closes its engine after."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        state.engine(app).close()


@contextmanager
def running_server(settings: Settings, *, load_model: bool = True) -> Iterator[str]:
    """Serve the app built from `settings`; yields its base URL."""
    with serving(create_app(settings, load_model=load_model)) as url:
        yield url


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of GET /metrics (0.0 when absent), e.g. metric(url, "slm_queue_depth",
    model=MODEL)."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def model_folder(folder: Path, models_dir: Path, *aliases: str) -> Path:
    """`folder` holding the default model under its own name and under each alias (hard links:
    no copies of 250 MB)."""
    default = next(models_dir.glob("*.gguf"))
    for name in (default.name, *aliases):
        os.link(default, folder / name)
    return folder


@contextmanager
def gunicorn_server(models_dir: Path, **env_vars: object) -> Iterator[subprocess.Popen]:
    """`slm-api serve` (gunicorn, the production worker) on a free loopback port, settings as
    environment variables; yields the process, its base URL in `.url`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MODELS_DIR": str(models_dir), "N_THREADS": "2", "N_CTX": "2048",
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO / "src"),
           **{k: str(v) for k, v in env_vars.items()}}
    proc = subprocess.Popen(
        [sys.executable, "-m", "slm_api", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env)
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "the server exited while starting"
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            try:
                url = proc.url  # type: ignore[attr-defined]
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
