"""Each way the README tells users to start the server, run as written (on loopback and a free
port), answers /health and a chat completion over real HTTP: `make run` in a fresh copy of the
checkout and gunicorn with the package's config module from a folder
with no gunicorn.conf.py. (`slm-api serve`: test_deploy.py and test_install.py; the bare
`gunicorn -w 1 -b ... slm_api.app:app` in the checkout: test_gunicorn_command.py; `python -m
slm_api serve`: test_serving.py's server.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from test_deploy import README, REPO, free_port

BIN = Path(sys.executable).parent


@contextmanager
def started(cmd: list[str], cwd: Path, env: dict[str, str], url: str,
            wait_s: float = 180) -> Iterator[subprocess.Popen]:
    """`cmd` running until /health answers 200; stopped (SIGTERM, then the drain) after."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            assert proc.poll() is None, f"{cmd} exited while starting"
            assert time.monotonic() < deadline, f"{cmd}: no /health 200 in {wait_s} s"
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        yield proc
    finally:
        # The whole group: `make run` is make, then slm-api, then gunicorn's arbiter and worker.
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


def assert_serves(url: str) -> None:
    reply = requests.post(f"{url}/v1/chat/completions", timeout=120, json={
        "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] >= 1


def _env(models_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "MODELS_DIR": str(models_dir), "N_THREADS": "2", "N_CTX": "2048",
            "LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO / "src"), **extra}


def test_python_m_slm_api_serve_is_the_suites_own_server():
    # `python -m slm_api serve` is how support.http_server.gunicorn_server starts the server that
    # test_serving.py streams from (and calls /health on), so it needs no server of its own here.
    import inspect

    from support import http_server

    assert ".venv/bin/python -m slm_api serve" in README
    assert '"-m", "slm_api", "serve"' in inspect.getsource(http_server.gunicorn_server)


def test_gunicorn_with_the_package_config_from_any_folder(models_dir: Path, tmp_path: Path):
    # An install has no gunicorn.conf.py: `-c python:slm_api.gunicorn_conf` gives the worker
    # and threads of `slm-api serve` (test_gunicorn_command.py checks what they do under load).
    line = "gunicorn -c python:slm_api.gunicorn_conf -w 1 -b 0.0.0.0:8000 slm_api.app:app"
    assert line in README
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "gunicorn"), "-c", "python:slm_api.gunicorn_conf", "-w", "1", "-b",
           f"127.0.0.1:{port}", "slm_api.app:app"]
    assert not (tmp_path / "gunicorn.conf.py").exists()
    with started(cmd, tmp_path, _env(models_dir), url):
        assert_serves(url)


def _fresh_copy(dest: Path) -> Path:
    """The checkout's tracked and new files (what a clone has), without .venv or models."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file() and not name.startswith(("models/", "tests/", "docs/", "bench/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_make_run_in_a_fresh_copy(models_dir: Path, tmp_path: Path):
    # `make run` as the README says, in a copy with no .venv: it makes the venv, installs the
    # runtime (`pip install -e .`, never the dev extras), writes the models and serves. The
    # venv sees the suite's installed dependencies through a .pth line, so pip resolves them
    # instead of compiling llama-cpp-python again (that cold figure is the README's, by hand).
    # The models are linked in first, so `fetch-default-model` only checks their sha256.
    clone = _fresh_copy(tmp_path / "clone")
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True, timeout=120)
    purelib = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (clone / "models").mkdir()
    for gguf in (REPO / "models").glob("*.gguf"):
        os.link(gguf, clone / "models" / gguf.name)

    dry = subprocess.run(["make", "-n", "run"], cwd=clone, capture_output=True, text=True)
    assert ".venv/bin/pip install -e .\n" in dry.stdout, dry.stdout
    assert "[dev]" not in dry.stdout

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOST="127.0.0.1", PORT=str(port), N_THREADS="2", N_CTX="2048",
               LOG_LEVEL="WARNING")
    with started(["make", "run"], clone, env, url, wait_s=300):
        assert_serves(url)
    assert (clone / ".venv/.installed-runtime").exists()
    assert not (clone / ".venv/.installed").exists()  # the dev extras' stamp
    where = subprocess.run([str(clone / ".venv/bin/python"), "-c",
                            "import slm_api; print(slm_api.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=env).stdout
    assert Path(where.strip()).is_relative_to(clone), where
