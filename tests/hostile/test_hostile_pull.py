"""Ollama's /api/pull, /api/copy and /api/delete as an attacker sends them (issue 39's surface).

They change what every client gets (they fill and empty MODELS_DIR), so a plain key is refused
whatever the body says, before the name is even read; an admin's name is a name, never a path
(`..`, absolute paths, NUL, 600 characters, the default model's own file name); and deleting the
model a stream is reading lets the stream finish. /health answers within 1 s throughout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.http_server import MODEL, make_settings, model_folder, running_server

PLAIN = {"Authorization": "Bearer sk-plain"}
ADMIN = {"Authorization": "Bearer sk-admin"}
SPARE = "spare"

HOSTILE_NAMES = [
    "../../etc/passwd", "/etc/passwd", "hf.co/../../etc/passwd.gguf", "a\x00b",
    "hf.co/owner/repo:../../x.gguf", "owner/repo/../x.gguf", "owner/repo/%2e%2e.gguf",
    "x" * 600, "hf.co/owner/repo:" + "Q" * 200, "C:\\models\\x.gguf",
]


def healthy(url: str) -> None:
    start = time.monotonic()
    r = requests.get(f"{url}/health", timeout=5)
    assert r.status_code == 200, r.text
    assert time.monotonic() - start < 1.0


@pytest.fixture
def keyed(models_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir, f"{SPARE}.gguf")
    settings = make_settings(folder, openai_api_keys=("sk-plain:plain",),
                             admin_api_keys=("sk-admin:admin",), max_loaded_models=2,
                             n_parallel=2)
    with running_server(settings) as url:
        yield url, folder


def calls(name: str) -> list[tuple[str, str, dict]]:
    return [("post", "/api/pull", {"model": name, "stream": False}),
            ("post", "/api/copy", {"source": SPARE, "destination": name}),
            ("post", "/api/copy", {"source": name, "destination": "fine"}),
            ("delete", "/api/delete", {"model": name})]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_hostile_plain_key_is_refused_before_the_name_is_read(keyed) -> None:
    url, folder = keyed
    before = files(folder)
    for name in [*HOSTILE_NAMES, SPARE, MODEL, "hf.co/owner/repo"]:
        for method, route, body in calls(name):
            r = requests.request(method, f"{url}{route}", json=body, headers=PLAIN, timeout=30)
            assert r.status_code == 403, (route, name, r.text)
            assert list(r.json()) == ["error"], r.text
            r = requests.request(method, f"{url}{route}", json=body, timeout=30)
            assert r.status_code == 401, (route, name, r.text)
    healthy(url)
    assert files(folder) == before


def test_hostile_admin_names_are_names_never_paths(keyed) -> None:
    url, folder = keyed
    before = files(folder)
    for name in HOSTILE_NAMES:
        for method, route, body in calls(name):
            r = requests.request(method, f"{url}{route}", json=body, headers=ADMIN, timeout=30)
            assert r.status_code in (400, 404), (route, name, r.status_code, r.text)
            assert list(r.json()) == ["error"], r.text
    # A copy may not take the default model's own file name (two models under one name).
    r = requests.post(f"{url}/api/copy", json={"source": SPARE, "destination": MODEL},
                      headers=ADMIN, timeout=30)
    assert r.status_code == 400, r.text
    healthy(url)
    assert files(folder) == before


def test_hostile_delete_of_the_model_a_stream_reads_lets_it_finish(keyed) -> None:
    url, folder = keyed
    lines: list[dict] = []
    started = threading.Event()

    def stream() -> None:
        with requests.post(f"{url}/api/generate", headers=PLAIN, stream=True, timeout=120,
                           json={"model": SPARE, "prompt": "Count to fifty:",
                                 "options": {"num_predict": 48, "temperature": 0}}) as r:
            assert r.status_code == 200, r.text
            for line in r.iter_lines():
                if line:
                    lines.append(json.loads(line))
                    started.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(60), "the stream never started"
    r = requests.delete(f"{url}/api/delete", json={"model": SPARE}, headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    healthy(url)
    reader.join(120)
    assert lines and lines[-1]["done"] is True, lines[-3:]
    assert f"{SPARE}.gguf" not in files(folder)
    r = requests.post(f"{url}/api/generate", headers=PLAIN, timeout=120, json={
        "model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
    assert r.status_code == 200, r.text
    healthy(url)
