"""POST /load downloads a GGUF from the Hub (a local fake of it), then /reload serves it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from http_server import make_settings, running_server


@pytest.fixture
def hub_server(fake_hub, tmp_path: Path):
    with running_server(make_settings(tmp_path), load_model=False) as url:
        yield url, tmp_path


def test_load_then_reload_serves_the_download(fake_hub, hub_server, model_path: Path):
    url, models = hub_server
    fake_hub.add_file("acme/gemma-small", "gemma-small.Q4_K_M.gguf", model_path.read_bytes())
    r = requests.post(
        f"{url}/load",
        timeout=300,
        json={"repo_id": "acme/gemma-small", "filename": "gemma-small.Q4_K_M.gguf"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "downloaded"
    assert body["repo_id"] == "acme/gemma-small"
    assert Path(body["path"]).parent == models.resolve()
    assert Path(body["path"]).stat().st_size == model_path.stat().st_size
    assert "/reload" in body["hint"]
    assert sorted(p.name for p in models.iterdir() if p.suffix == ".gguf") == [
        "gemma-small.Q4_K_M.gguf"
    ]

    r = requests.post(f"{url}/reload", json={"model_path": "gemma-small.Q4_K_M.gguf"}, timeout=120)
    assert r.status_code == 200, r.text
    r = requests.post(
        f"{url}/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
    )
    assert r.status_code == 200 and r.json()["model"] == "gemma-small.Q4_K_M"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"repo_id": "acme/absent", "filename": "x.gguf"}, 404),
        ({"repo_id": "acme/tiny", "filename": "absent.gguf"}, 404),
        ({"repo_id": "acme/tiny", "filename": "tiny.gguf", "revision": "nope"}, 404),
        ({"repo_id": "acme/tiny", "filename": "../tiny.gguf"}, 400),
        ({"repo_id": "acme/tiny", "filename": "sub/tiny.gguf"}, 400),
        ({"repo_id": "acme/tiny", "filename": "tiny.bin"}, 400),
        ({"repo_id": "../../etc", "filename": "tiny.gguf"}, 400),
        ({"repo_id": "acme/tiny"}, 400),
    ],
)
def test_load_refusals(fake_hub, hub_server, body, status):
    url, models = hub_server
    fake_hub.add_file("acme/tiny", "tiny.gguf", b"GGUF" + bytes(64))
    r = requests.post(f"{url}/load", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert not [p for p in models.iterdir() if p.is_file()]


def test_hub_unreachable_is_502(hub_server, monkeypatch):
    url, models = hub_server
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    r = requests.post(
        f"{url}/load", json={"repo_id": "acme/tiny", "filename": "tiny.gguf"}, timeout=120
    )
    assert r.status_code == 502, r.text
    assert not [p for p in models.iterdir() if p.is_file()]
