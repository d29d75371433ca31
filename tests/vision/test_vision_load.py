"""A projector named on POST /reload (issue 38): taken from MODELS_DIR only, checked before
libmtmd reads it, and what the model then reads shown on /health."""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from support.http_server import MODEL, make_settings, running_server
from support.vision_gguf import MMPROJ_NAME, TEXT_NAME, write_tiny_vlm


@pytest.fixture(scope="module")
def load_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default text model active; the tiny VLM beside it with its projector under a name
    that is not found by name (projector.gguf)."""
    built = tmp_path_factory.mktemp("vlm-build")
    write_tiny_vlm(built, model_path.parent)
    folder = tmp_path_factory.mktemp("vision-load")
    shutil.copyfile(built / TEXT_NAME, folder / TEXT_NAME)
    shutil.copyfile(built / MMPROJ_NAME, folder / "projector.gguf")
    (folder / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    os.link(model_path, folder / model_path.name)
    with running_server(make_settings(folder, max_loaded_models=2)) as url:
        yield url


def reload(url: str, **body: object) -> requests.Response:
    return requests.post(f"{url}/reload", json={"model_path": TEXT_NAME, **body}, timeout=120)


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=10).json()


def test_a_projector_named_on_reload(load_server: str):
    assert reload(load_server).status_code == 200
    assert health(load_server)["input_modalities"] == ["text"]  # none found by name
    assert reload(load_server, mmproj="projector.gguf").status_code == 200
    h = health(load_server)
    assert h["mmproj"] == "projector.gguf" and h["input_modalities"] == ["text", "image"]
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    reply = requests.post(f"{load_server}/v1/chat/completions", timeout=120, json={
        "max_tokens": 3, "temperature": 0, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": url}}]}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["prompt_tokens"] > 16


@pytest.mark.parametrize("mmproj, status", [
    ("/etc/passwd", 400),           # outside MODELS_DIR
    ("../outside.gguf", 400),
    ("missing.gguf", 404),
    ("broken.gguf", 400),           # our header parser refuses it before libmtmd reads it
    (f"{MODEL}.gguf", 400),         # a GGUF, but no projector
])
def test_a_bad_projector_is_refused_and_the_old_model_keeps_serving(
        load_server: str, mmproj: str, status: int):
    before = health(load_server)["model"]
    r = reload(load_server, mmproj=mmproj)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == "mmproj"
    assert health(load_server)["model"] == before
