"""Models by name: OpenAI listings, load on demand, LRU unloading, load/unload routes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from support.http_server import MODEL, make_settings, model_folder, running_server


@pytest.fixture(scope="module")
def two_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("two-models")
    model_folder(folder, models_dir, "other.gguf")
    with running_server(make_settings(folder, max_loaded_models=1)) as url:
        yield url


def test_openai_model_list(two_models, client):
    body = requests.get(f"{two_models}/v1/models", timeout=10).json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids == sorted([MODEL, "other"])
    for item in body["data"]:
        assert item["object"] == "model" and item["owned_by"] and item["created"] > 0
    one = requests.get(f"{two_models}/v1/models/other", timeout=10).json()
    assert one["id"] == "other" and one["object"] == "model"
    r = requests.get(f"{two_models}/v1/models/absent", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert [m.id for m in client.models.list()] == [MODEL]
    chat = requests.get(f"{two_models}/v1/models/chat", timeout=10).json()["data"]
    assert [m["id"] for m in chat] == ids
    assert requests.get(f"{two_models}/v1/models/embeddings", timeout=10).json()["data"] == []


def test_request_model_loads_it_and_lru_unloads_the_other(two_models):
    def chat(model: str | None) -> dict:
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        if model:
            body["model"] = model
        r = requests.post(f"{two_models}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()

    assert chat("other")["model"] == "other"
    health = requests.get(f"{two_models}/health", timeout=10).json()
    assert health["loaded_models"] == ["other"]  # MAX_LOADED_MODELS=1
    assert chat(MODEL)["model"] == MODEL
    assert requests.get(f"{two_models}/health", timeout=10).json()["loaded_models"] == [MODEL]
    # No model field: the active model.
    assert chat(None)["model"] == MODEL


def test_load_with_configs_unload_and_set_model(two_models):
    r = requests.post(f"{two_models}/v1/models", json={"model": "other", "n_ctx": 512}, timeout=120)
    assert r.status_code == 200 and r.json()["model"]["n_ctx"] == 512
    r = requests.delete(f"{two_models}/v1/models/other", timeout=30)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert "other" not in requests.get(f"{two_models}/health", timeout=10).json()["loaded_models"]
    listed = requests.get(f"{two_models}/models", timeout=10).json()["models"]
    # Unloaded, but the file stays on disk and in the listing.
    assert {m["name"]: m["loaded"] for m in listed}["other.gguf"] is False
    r = requests.post(
        f"{two_models}/setModel",
        timeout=120,
        json={"model_name": "other", "load_model_configs": {"n_ctx": 768}},
    )
    assert r.status_code == 200 and r.json()["model"]["n_ctx"] == 768
    assert requests.get(f"{two_models}/health", timeout=10).json()["model"] == "other"
    r = requests.delete(f"{two_models}/v1/models/absent", timeout=30)
    assert r.status_code == 404


def test_tokenize_round_trip(server):
    r = requests.post(f"{server}/extras/tokenize", json={"input": "Hello world"}, timeout=30)
    tokens = r.json()["tokens"]
    assert len(tokens) >= 2
    count = requests.post(
        f"{server}/extras/tokenize/count", json={"input": "Hello world"}, timeout=30
    ).json()["count"]
    assert count == len(tokens)
    plain = requests.post(f"{server}/extras/tokenize",
                          json={"input": "Hello world", "add_special": False}, timeout=30)
    plain = plain.json()["tokens"]
    # Special tokens (a BOS, where the vocabulary adds one) only ever go in front.
    assert tokens[len(tokens) - len(plain):] == plain
    text = requests.post(
        f"{server}/extras/detokenize", json={"tokens": plain}, timeout=30
    ).json()["text"]
    assert text == "Hello world"
    r = requests.post(f"{server}/extras/detokenize", json={"tokens": [-1]}, timeout=30)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_value", "tokens.0")


def test_embedding_models_are_listed_by_their_metadata(tmp_path, models_dir):
    from support.ggufs import write_tiny_gguf

    os.link(next(models_dir.glob("*.gguf")), tmp_path / "chat-model.gguf")
    write_tiny_gguf(tmp_path / "tiny-embedder.gguf", bert__pooling_type=1)
    with running_server(make_settings(tmp_path), load_model=False) as url:
        chat = requests.get(f"{url}/v1/models/chat", timeout=10).json()["data"]
        embed = requests.get(f"{url}/v1/models/embeddings", timeout=10).json()["data"]
    assert [m["id"] for m in chat] == ["chat-model"]
    assert [m["id"] for m in embed] == ["tiny-embedder"]
    assert embed[0]["kind"] == "embedding"
