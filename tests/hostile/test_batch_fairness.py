"""One client's big embedding batch does not stall the others (issue 36, class 6).

A request may send at most MAX_EMBEDDING_INPUTS inputs (OpenAI's 2048); past it, a 400 before
any is tokenized. Requests take turns at the model's one embedding context, one packed decode
each (EMBEDDING_DECODES_PER_TURN): a one-input request sent while a 800-input one is being
decoded is done before it, where with a whole request per turn (the old way, =0) it waited for
all of it. Told apart by the engine's decode counter, not by a clock;
bench/embeddings_fairness.py measures the latency.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import embedded_model
from support.http_server import make_settings, serving

from slm_api.app import create_app
from slm_api.config import MINILM_MODEL_FILE
from slm_api.engine.embedder import Embedder
from slm_api.plumbing import state

MINILM = Path(MINILM_MODEL_FILE).stem
# ~11 tokens each: ~45 to a packed decode of MiniLM's 512-token context, ~18 decodes in all.
BIG = [f"Sentence {i} is about topic {i % 13}." for i in range(800)]


@pytest.fixture(scope="module", params=[1, 0], ids=["turns", "whole-request"])
def embedding_server(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """MiniLM alone, loaded, with EMBEDDING_DECODES_PER_TURN=param; yields (url, embedder,
    decodes per turn)."""
    folder = tmp_path_factory.mktemp("fairness")
    os.link(embedded_model(MINILM_MODEL_FILE), folder / MINILM_MODEL_FILE)
    settings = make_settings(folder, embedding_decodes_per_turn=request.param,
                             max_embedding_inputs=2048)
    app = create_app(settings, load_model=False)
    with serving(app) as url:
        _embed(url, ["warm up"])
        with state.engine(app).use(MINILM) as model:
            embedder = model.embedder
        yield url, embedder, request.param


def _embed(url: str, inputs: list[str], route: str = "/v1/embeddings") -> requests.Response:
    body = {"model": MINILM, "input": inputs}
    r = requests.post(f"{url}{route}", json=body, timeout=300)
    assert r.status_code == 200, r.text[:300]
    return r


def test_over_the_input_cap_is_a_400_before_any_work(embedding_server: tuple):
    url, embedder, _ = embedding_server
    before = embedder.decodes
    too_many = ["x"] * 2049
    r = requests.post(f"{url}/v1/embeddings", json={"model": MINILM, "input": too_many},
                      timeout=30)
    assert r.status_code == 400, r.text[:300]
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("too_many_inputs", "input")
    assert "2049" in error["message"] and "2048" in error["message"]
    tokens = requests.post(f"{url}/v1/embeddings", timeout=30,
                           json={"model": MINILM, "input": [[101, 102]] * 2049})
    assert tokens.status_code == 400 and tokens.json()["error"]["code"] == "too_many_inputs"
    ollama = requests.post(f"{url}/api/embed", json={"model": MINILM, "input": too_many},
                           timeout=30)
    assert ollama.status_code == 400 and "2048" in ollama.json()["error"], ollama.text[:300]
    assert embedder.decodes == before  # refused before a single decode


def _race(url: str, embedder: Embedder) -> tuple[int, requests.Response, list[float]]:
    """Send BIG; once its first decode is done, one input. Returns how many decodes ran after
    the small request was answered, the big reply, and /health's latencies meanwhile."""
    big: dict[str, requests.Response] = {}
    start = embedder.decodes
    thread = threading.Thread(target=lambda: big.setdefault("r", _embed(url, BIG)))
    thread.start()
    deadline = time.monotonic() + 120
    while embedder.decodes < start + 1:
        assert thread.is_alive() and time.monotonic() < deadline, "the big batch never began"
        time.sleep(0.002)
    health = []
    for _ in range(3):
        began = time.perf_counter()
        assert requests.get(f"{url}/health", timeout=10).status_code in (200, 503)
        health.append(time.perf_counter() - began)
    _embed(url, ["a one-input request"])
    answered_at = embedder.decodes
    thread.join()
    return embedder.decodes - answered_at, big["r"], health


def test_a_small_request_is_not_stuck_behind_a_big_batch(embedding_server: tuple):
    url, embedder, per_turn = embedding_server
    decodes_after, big, health = _race(url, embedder)
    if per_turn:
        # It waited for the decode under way, then had its own: the big batch's rest came after.
        assert decodes_after >= 1, "the one-input request waited for the whole big batch"
    else:
        # The control: a whole request per turn is the old behaviour, which the test detects.
        assert decodes_after == 0, "the one-input request was answered during the big batch"
    assert max(health) < 1.0, health  # /health does not wait on embeddings
    # Nothing lost: every vector, in order, the same as each input embedded alone.
    data = big.json()["data"]
    assert [d["index"] for d in data] == list(range(len(BIG)))
    for i in (0, 1, len(BIG) // 2, len(BIG) - 1):
        alone = _embed(url, [BIG[i]]).json()["data"][0]["embedding"]
        assert float(np.dot(alone, data[i]["embedding"])) > 0.9999, i

