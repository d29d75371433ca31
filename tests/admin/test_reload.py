"""POST /reload swaps the model, and a failed reload keeps the old model serving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from support.ggufs import write_tiny_gguf
from support.http_server import MODEL, make_settings, model_folder, running_server


@pytest.fixture(scope="module")
def reload_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("reload-models")
    model_folder(folder, models_dir, "second-copy.gguf")
    default = next(models_dir.glob("*.gguf"))
    (folder / "corrupt.gguf").write_bytes(b"GGUF" + os.urandom(4096))
    with default.open("rb") as src:
        (folder / "truncated.gguf").write_bytes(src.read(1_000_000))
    write_tiny_gguf(folder / "not-a-model.gguf", arch="no-such-architecture")
    with running_server(make_settings(folder)) as url:
        yield url


def chat_ok(url: str) -> str:
    r = requests.post(
        f"{url}/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
    )
    assert r.status_code == 200, r.text
    return r.json()["model"]


def test_reload_to_another_file(reload_server):
    r = requests.post(
        f"{reload_server}/reload",
        json={"model_path": "second-copy.gguf", "n_ctx": 1024},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"]["id"] == "second-copy"
    assert r.json()["model"]["n_ctx"] == 1024
    health = requests.get(f"{reload_server}/health", timeout=10).json()
    assert health["model"] == "second-copy" and health["n_ctx"] == 1024
    assert chat_ok(reload_server) == "second-copy"
    r = requests.post(
        f"{reload_server}/reload", json={"model_path": f"{MODEL}.gguf"}, timeout=120
    )
    assert r.status_code == 200
    assert chat_ok(reload_server) == MODEL


@pytest.mark.parametrize(
    "target, status",
    [
        ("missing.gguf", 404),
        ("corrupt.gguf", 400),
        ("truncated.gguf", 400),
        ("not-a-model.gguf", 400),
        ("../../etc/passwd", 400),
        ("/etc/passwd", 400),
        ("../" * 12 + "etc/hostname", 400),
    ],
)
def test_failed_reload_keeps_the_old_model(reload_server, target, status):
    before = requests.get(f"{reload_server}/health", timeout=10).json()["model"]
    r = requests.post(f"{reload_server}/reload", json={"model_path": target}, timeout=120)
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    if target == "not-a-model.gguf":  # llama.cpp's own reason reaches the client
        assert "no-such-architecture" in message, message
    assert requests.get(f"{reload_server}/health", timeout=10).json()["model"] == before
    assert chat_ok(reload_server) == before


def test_health_is_503_without_a_model(tmp_path):
    with running_server(make_settings(tmp_path), load_model=False) as url:
        r = requests.get(f"{url}/health", timeout=10)
        assert r.status_code == 503
        assert r.json()["model_loaded"] is False and r.json()["model"] is None
        r = requests.post(
            f"{url}/v1/chat/completions",
            timeout=10,
            json={"messages": [{"role": "user", "content": "Hi"}]},
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_model_loaded"


def test_models_lists_every_gguf(reload_server):
    body = requests.get(f"{reload_server}/models", timeout=10).json()
    names = {m["name"]: m["size_bytes"] for m in body["models"]}
    assert {f"{MODEL}.gguf", "second-copy.gguf", "corrupt.gguf"} <= set(names)
    assert names["corrupt.gguf"] == 4100
    assert body["active"]["name"]
