"""Ollama's wire format on the raw HTTP: NDJSON framing, durations, errors in {"error": ...},
and the keep-alive that unloads idle models whichever API loaded them."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from conftest import embedded_model
from support.http_server import MODEL, make_settings, running_server

from slm_api.config import MINILM_MODEL_FILE

ASK = [{"role": "user", "content": "What is the capital of France?"}]
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def _lines(response: requests.Response) -> list[dict]:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    text = response.text
    assert text.endswith("\n") and "\n\n" not in text
    return [json.loads(line) for line in text.splitlines()]


def test_chat_streams_ndjson_by_default_and_ends_with_the_timings(server):
    r = requests.post(f"{server}/api/chat", timeout=120, json={
        "model": MODEL, "messages": ASK, "options": {"temperature": 0, "num_predict": 6}})
    objs = _lines(r)
    assert [o["done"] for o in objs] == [False] * (len(objs) - 1) + [True]
    for o in objs:
        assert o["model"] == MODEL and o["message"]["role"] == "assistant"
        datetime.fromisoformat(o["created_at"].replace("Z", "+00:00"))
    final = objs[-1]
    assert final["message"]["content"] == "" and final["done_reason"] == "length"
    assert final["eval_count"] == 6 and final["prompt_eval_count"] > 10
    assert all(isinstance(final[k], int) for k in DURATIONS)
    # Nanoseconds: 6 tokens on two shared cores take more than a millisecond, less than 2 min.
    assert 1e6 < final["eval_duration"] < 120e9
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]
    assert "done_reason" not in objs[0] and "eval_count" not in objs[0]


def test_generate_stream_false_is_one_object(server):
    r = requests.post(f"{server}/api/generate", timeout=120, json={
        "model": f"{MODEL}:latest", "prompt": "Hi", "stream": False,
        "options": {"num_predict": 4}})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["done"] is True and body["response"] and body["eval_count"] <= 4
    assert body["model"] == f"{MODEL}:latest"  # the name as the client gave it


@pytest.mark.parametrize("path, body, status, words", [
    ("/api/chat", {"model": "nope", "messages": ASK}, 404, "model 'nope' not found"),
    ("/api/generate", {"model": "nope:3b", "prompt": "x"}, 404, "model 'nope:3b' not found"),
    ("/api/embed", {"model": "nope", "input": "x"}, 404, "model 'nope' not found"),
    ("/api/chat", {"messages": ASK}, 400, "model"),
    ("/api/chat", {"model": MODEL, "messages": ASK, "options": {"temperature": "hot"}}, 400,
     "options.temperature"),
    ("/api/chat", {"model": MODEL, "messages": ASK, "keep_alive": "soon"}, 400, "keep_alive"),
    ("/api/chat", {"model": MODEL, "messages": ASK, "format": {"type": "nonsense"}}, 400,
     "schema"),
    ("/api/chat", {"model": MODEL, "messages": ASK, "options": {"num_predict": 10**7}}, 400,
     "num_predict"),
    ("/api/create", {"model": "mine", "from": MODEL}, 400, "not supported"),
    ("/api/copy", {"source": MODEL, "destination": "../x"}, 400, "invalid model name"),
    ("/api/copy", {"source": "nope", "destination": "x"}, 404, "model 'nope' not found"),
    ("/api/pull", {"model": "llama3.2"}, 400, "hf.co/{owner}/{repo}"),
])
def test_errors_are_ollamas_shape(server, path, body, status, words):
    r = requests.post(f"{server}{path}", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert list(r.json()) == ["error"] and words in r.json()["error"]


def test_malformed_bodies_and_unknown_routes(server):
    r = requests.post(f"{server}/api/chat", data="{not json", timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and list(r.json()) == ["error"]
    r = requests.get(f"{server}/api/nothing-here", timeout=30)
    assert r.status_code == 404 and list(r.json()) == ["error"]


def test_version_and_a_model_that_never_expires(server):
    version = requests.get(f"{server}/api/version", timeout=30).json()["version"]
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)  # Copilot Chat's floor
    ps = requests.get(f"{server}/api/ps", timeout=30).json()["models"]
    default = next(m for m in ps if m["model"] == f"{MODEL}:latest")
    # The model loaded at start stays (no unload under the operator's feet): -1, as Ollama.
    assert datetime.fromisoformat(default["expires_at"]).year > 2100


@pytest.fixture(scope="module")
def short_keep_alive(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("keep-alive")
    for path in (model_path, embedded_model(MINILM_MODEL_FILE)):
        os.link(path, folder / path.name)
    with running_server(make_settings(folder, model_path=folder / model_path.name,
                                      keep_alive="2s")) as url:
        yield url


def test_idle_models_unload_after_keep_alive_whichever_api_loaded_them(short_keep_alive):
    url, minilm = short_keep_alive, Path(MINILM_MODEL_FILE).stem
    r = requests.post(f"{url}/v1/embeddings", json={"model": minilm, "input": "hi"}, timeout=60)
    assert r.status_code == 200
    running = {m["model"]: m for m in requests.get(f"{url}/api/ps", timeout=30).json()["models"]}
    expires = datetime.fromisoformat(running[f"{minilm}:latest"]["expires_at"])
    assert 0 < expires.timestamp() - time.time() < 5
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        names = {m["model"] for m in requests.get(f"{url}/api/ps", timeout=30).json()["models"]}
        if f"{minilm}:latest" not in names:
            break
        time.sleep(0.5)
    assert names == {f"{MODEL}:latest"}  # MiniLM went; the model loaded at start stayed
    # A request's keep_alive wins over the setting, and the model comes back on demand.
    r = requests.post(f"{url}/api/embed", json={"model": minilm, "input": "hi",
                                                "keep_alive": -1}, timeout=60)
    assert r.status_code == 200 and len(r.json()["embeddings"]) == 1
    time.sleep(3)
    names = {m["model"] for m in requests.get(f"{url}/api/ps", timeout=30).json()["models"]}
    assert f"{minilm}:latest" in names


def test_a_keep_alive_longer_than_the_clock_can_wait_still_lets_models_unload(short_keep_alive):
    url, minilm = short_keep_alive, Path(MINILM_MODEL_FILE).stem
    for keep_alive in (1e300, "1s"):
        r = requests.post(f"{url}/api/embed", json={"model": minilm, "input": "hi",
                                                    "keep_alive": keep_alive}, timeout=60)
        assert r.status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        names = {m["model"] for m in requests.get(f"{url}/api/ps", timeout=30).json()["models"]}
        if f"{minilm}:latest" not in names:
            break
        time.sleep(0.5)
    assert names == {f"{MODEL}:latest"}


def test_keys_guard_the_ollama_routes_too(models_dir: Path):
    import ollama

    with running_server(make_settings(models_dir, openai_api_keys=("sk-test",)),
                        load_model=False) as url:
        r = requests.get(f"{url}/api/tags", timeout=30)
        assert r.status_code == 401 and list(r.json()) == ["error"]
        with pytest.raises(ollama.ResponseError) as err:
            ollama.Client(host=url).list()
        assert err.value.status_code == 401
        keyed = ollama.Client(host=url, headers={"Authorization": "Bearer sk-test"})
        assert [m.model for m in keyed.list().models] == [f"{MODEL}:latest"]
