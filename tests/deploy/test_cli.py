"""The command line: `slm-api serve` flags win over the environment; the default models fetch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from test_deploy import REPO, free_port


def test_serve_flags_win_over_environment(models_dir: Path):
    port = free_port()
    model = next(models_dir.glob("*.gguf"))
    env = {
        **os.environ,
        "PORT": "1",
        "HOST": "0.0.0.0",
        "MODELS_DIR": str(models_dir),
        "MODEL_PATH": "/nonexistent.gguf",
        "N_THREADS": "2",
        "PYTHONPATH": str(REPO / "src"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slm_api",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model",
            str(model),
            "--log-level",
            "WARNING",
        ],
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.5)
        assert body is not None, "server did not start"
        assert body["model"] == model.stem
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_fetch_default_model(tmp_path: Path):
    env = {**os.environ, "MODELS_DIR": str(tmp_path), "PYTHONPATH": str(REPO / "src")}
    env.pop("MODEL_PATH", None)
    out = subprocess.run(
        [sys.executable, "-m", "slm_api", "fetch-default-model"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    from slm_api.default_model import EMBEDDED_MODELS, sha256_file
    from slm_api.gguf_info import metadata_keys

    written = [Path(line) for line in out.stdout.split()]
    assert sorted(p.name for p in written) == sorted(EMBEDDED_MODELS)
    # Only the finished files: no wheel, no partial file left beside them.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EMBEDDED_MODELS)
    for path in written:
        if EMBEDDED_MODELS[path.name].sha256 is None:
            # Computed from a hash-pinned wheel (MiniLM, converted): a BERT embedding GGUF.
            assert "bert.pooling_type" in metadata_keys(path)
        else:
            assert sha256_file(path) == EMBEDDED_MODELS[path.name].sha256


def test_serve_flags_go_into_settings_not_the_environment(monkeypatch):
    from argparse import Namespace

    from slm_api.cli import _settings

    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    args = Namespace(host="127.0.0.1", port=8123, model="~/m.gguf", log_level=None)
    settings = _settings(args)
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8123, "DEBUG")
    assert settings.model_path == Path.home() / "m.gguf"
    assert os.environ["PORT"] == "1" and "MODEL_PATH" not in os.environ
