"""Issue 36, class 3: a plain client must not reconfigure the model everyone uses.

Through real HTTP, as the attacker would: a server with user keys and an admin key, the
start-up model loaded, and a spare model file clients may load on demand. A plain key's
`keep_alive: 0` leaves the start-up model serving, its `load_model_configs` / Ollama options
never change how a shared model is loaded and are capped by the server's settings, and its
keep_alive only shortens a model its own request loaded. /health answers within 1 s throughout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.http_server import MODEL, make_settings, model_folder, running_server

USER = {"Authorization": "Bearer sk-user"}
OTHER = {"Authorization": "Bearer sk-other"}
ADMIN = {"Authorization": "Bearer sk-admin"}
# The server's own memory budget: N_CTX x N_PARALLEL = 2048 KV cells.
N_CTX, N_PARALLEL = 1024, 2
SPARE = "spare"


def _settings(folder: Path, **overrides: object):
    base: dict[str, object] = dict(
        n_ctx=N_CTX, n_parallel=N_PARALLEL, max_loaded_models=2,
        openai_api_keys=("sk-user:user", "sk-other:other"), admin_api_keys=("sk-admin:admin",))
    return make_settings(folder, **{**base, **overrides})


@pytest.fixture
def url(models_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh keyed server per test: each one may unload or load models."""
    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir, f"{SPARE}.gguf")
    with running_server(_settings(folder)) as base:
        yield base


def healthy(url: str) -> None:
    """/health says the start-up model serves, within 1 s (the issue's deadline)."""
    start = time.monotonic()
    r = requests.get(f"{url}/health", timeout=5)
    assert time.monotonic() - start < 1.0
    assert r.status_code == 200, r.text


def running(url: str) -> dict[str, int]:
    """Models in memory (Ollama's /api/ps) -> their context length."""
    r = requests.get(f"{url}/api/ps", headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return {m["model"].removesuffix(":latest"): m["context_length"] for m in r.json()["models"]}


def unloaded(url: str, model: str) -> bool:
    """Whether `model` leaves memory (a model just loaded has a second's grace first)."""
    deadline = time.monotonic() + 10
    while model in running(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def chat(url: str, headers: dict[str, str], **body: object) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", headers=headers, timeout=120, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0,
        **body})


def test_plain_keep_alive_zero_leaves_the_start_up_model_serving(url: str):
    # `ollama stop` with a plain key: refused in Ollama's shape, nothing unloaded.
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=30,
                      json={"model": MODEL, "keep_alive": 0})
    assert r.status_code == 403, r.text
    assert isinstance(r.json()["error"], str) and "admin" in r.json()["error"]
    healthy(url)
    # keep_alive: 0 on a generation (sent by clients on every request) is ignored.
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=120, json={
        "model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": 0,
        "options": {"num_predict": 2, "temperature": 0}})
    assert r.status_code == 200, r.text
    healthy(url)
    assert MODEL in running(url)
    assert chat(url, USER).status_code == 200


def test_admin_keep_alive_zero_still_unloads(url: str):
    r = requests.post(f"{url}/api/generate", headers=ADMIN, timeout=30,
                      json={"model": MODEL, "keep_alive": 0})
    assert r.status_code == 200 and r.json()["done_reason"] == "unload", r.text
    assert unloaded(url, MODEL)


def test_plain_load_options_never_reload_the_start_up_model_their_way(url: str):
    requests.post(f"{url}/api/generate", headers=ADMIN, timeout=30,
                  json={"model": MODEL, "keep_alive": 0})
    assert unloaded(url, MODEL)
    # The next plain request loads it again, as the operator configured it.
    r = chat(url, USER, model=MODEL, load_model_configs={"n_ctx": 64, "n_parallel": 1,
                                                         "chat_format": "chatml"})
    assert r.status_code == 200, r.text
    assert running(url)[MODEL] == N_CTX
    healthy(url)


def test_plain_load_options_are_capped_by_the_server_settings(url: str):
    # One long sequence within the server's N_CTX x N_PARALLEL, never 131072 cells.
    r = chat(url, USER, model=SPARE, load_model_configs={"n_ctx": 131072, "n_parallel": 1})
    assert r.status_code == 200, r.text
    assert running(url)[SPARE] == N_CTX * N_PARALLEL
    healthy(url)


def test_plain_ollama_options_are_capped_too(url: str):
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=120,
                      json={"model": SPARE, "options": {"num_ctx": 131072, "num_thread": 256}})
    assert r.status_code == 200 and r.json()["done_reason"] == "load", r.text
    # n_parallel stays the server's: n_ctx at most N_CTX per sequence.
    assert running(url)[SPARE] == N_CTX
    assert running(url)[MODEL] == N_CTX


def test_plain_keep_alive_shortens_only_what_its_own_request_loaded(url: str):
    # Another client's model: refused; the model stays.
    r = requests.post(f"{url}/api/generate", headers=OTHER, timeout=120, json={"model": SPARE})
    assert r.status_code == 200, r.text
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=30,
                      json={"model": SPARE, "keep_alive": 0})
    assert r.status_code == 403, r.text
    assert SPARE in running(url)
    # A plain keep_alive on a generation for a model already loaded: ignored.
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=120, json={
        "model": SPARE, "prompt": "Hi", "stream": False, "keep_alive": 0,
        "options": {"num_predict": 1}})
    assert r.status_code == 200, r.text
    assert SPARE in running(url)
    # The admin unloads it; a plain request that loads it may end its life right away.
    requests.post(f"{url}/api/generate", headers=ADMIN, timeout=30,
                  json={"model": SPARE, "keep_alive": 0})
    assert unloaded(url, SPARE)
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=120, json={
        "model": SPARE, "prompt": "Hi", "stream": False, "keep_alive": 0,
        "options": {"num_predict": 1}})
    assert r.status_code == 200, r.text
    assert unloaded(url, SPARE)
    healthy(url)


def test_plain_keep_alive_never_lengthens_a_life(url: str):
    r = requests.post(f"{url}/api/generate", headers=USER, timeout=120,
                      json={"model": SPARE, "keep_alive": -1})
    assert r.status_code == 200, r.text
    ps = requests.get(f"{url}/api/ps", headers=USER, timeout=10).json()["models"]
    spare = next(m for m in ps if m["model"].startswith(SPARE))
    # KEEP_ALIVE's 5 minutes from now, not "forever" (Ollama writes a far year for that).
    assert spare["expires_at"] < "2100"


def test_remote_client_without_admin_keys_is_a_plain_client(models_dir: Path, tmp_path: Path):
    # No ADMIN_API_KEYS: admin rights are loopback's (the admin routes' rule), and a client
    # behind the trusted proxy is remote.
    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir)
    remote = {"X-Forwarded-For": "203.0.113.9"}
    with running_server(make_settings(folder, trusted_proxy_hops=1)) as base:
        r = requests.post(f"{base}/api/generate", headers=remote, timeout=30,
                          json={"model": MODEL, "keep_alive": 0})
        assert r.status_code == 403, r.text
        healthy(base)
        r = requests.post(f"{base}/api/generate", timeout=30,
                          json={"model": MODEL, "keep_alive": 0})
        assert r.status_code == 200 and r.json()["done_reason"] == "unload", r.text


def test_a_plain_client_never_loads_a_model_in_the_place_of_the_start_up_one(
        models_dir: Path, tmp_path: Path):
    # MAX_LOADED_MODELS=1: the spare fits only by unloading the model everyone uses.
    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir, f"{SPARE}.gguf")
    with running_server(_settings(folder, max_loaded_models=1)) as base:
        r = chat(base, USER, model=SPARE)
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "admin_key_required" and error["param"] == "model"
        assert MODEL in error["message"] and "MAX_LOADED_MODELS" in error["message"]
        r = requests.post(f"{base}/api/generate", headers=USER, timeout=30,
                          json={"model": SPARE, "prompt": "Hi", "stream": False})
        assert r.status_code == 403 and "admin" in r.json()["error"], r.text
        assert set(running(base)) == {MODEL}
        healthy(base)
        assert chat(base, OTHER).status_code == 200
        # The admin may: the start-up model makes room, and comes back on the next request.
        r = chat(base, ADMIN, model=SPARE)
        assert r.status_code == 200, r.text
        assert set(running(base)) == {SPARE}
        assert chat(base, USER).status_code == 200


def test_a_generations_keep_alive_never_unloads_the_start_up_model(models_dir: Path,
                                                                   tmp_path: Path):
    # Open WebUI sends keep_alive with every chat; even a loopback client with admin rights
    # ends the start-up model only by an explicit unload (ollama stop, DELETE /v1/models).
    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir)
    with running_server(make_settings(folder)) as base:
        for keep_alive in (0, "1s"):
            r = requests.post(f"{base}/api/chat", timeout=120, json={
                "model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                "stream": False, "keep_alive": keep_alive, "options": {"num_predict": 1}})
            assert r.status_code == 200, r.text
        time.sleep(2.5)
        assert MODEL in running(base)
        healthy(base)
