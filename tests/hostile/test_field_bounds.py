"""Issue 36, class 5: every field a client sends is finite and bounded, as the API it copies.

Each hostile body gets a fast 400 in its API's own error shape (OpenAI, Anthropic, Ollama)
from a real server, which keeps serving (/health within 1 s after each). The Responses store
keeps what is prompted once per row, and each client's stored bytes are capped.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from support.http_server import MODEL, make_settings, model_folder, serving

from slm_api.api.responses.store import responses_store
from slm_api.app import create_app

NAN, INF = math.nan, math.inf
HI = [{"role": "user", "content": "Hi"}]
CHAT = {"messages": HI, "max_tokens": 1}
MESSAGES = {"model": MODEL, "messages": HI, "max_tokens": 1}
OLLAMA_CHAT = {"model": MODEL, "messages": HI, "stream": False}
OLLAMA_GEN = {"model": MODEL, "prompt": "Hi", "stream": False}
RESPONSES = {"input": "Hi", "max_output_tokens": 1}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def openai_error(r: requests.Response) -> str:
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["type"]
    return error["message"]


def anthropic_error(r: requests.Response) -> str:
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    return body["error"]["message"]


def ollama_error(r: requests.Response) -> str:
    error = r.json()["error"]
    assert isinstance(error, str)
    return error


Shape = Callable[[requests.Response], str]

CASES: list[tuple[str, str, dict[str, Any], Shape]] = [
    # OpenAI chat: logit_bias within +-100 and finite, stops 4 and short, numbers in range.
    ("bias-nan", "/v1/chat/completions", {**CHAT, "logit_bias": {"1": NAN}}, openai_error),
    ("bias-inf", "/v1/chat/completions", {**CHAT, "logit_bias": {"1": INF}}, openai_error),
    ("bias-1e39", "/v1/chat/completions", {**CHAT, "logit_bias": {"1": 1e39}}, openai_error),
    ("bias-101", "/v1/chat/completions", {**CHAT, "logit_bias": {"1": 101}}, openai_error),
    ("bias-keys", "/v1/chat/completions",
     {**CHAT, "logit_bias": {str(i): 1 for i in range(1025)}}, openai_error),
    ("bias-key-digits", "/v1/chat/completions",
     {**CHAT, "logit_bias": {"9" * 40: 1}}, openai_error),
    ("temp-1e400", "/v1/chat/completions", {**CHAT, "temperature": "1e400"}, openai_error),
    ("penalty-nan", "/v1/chat/completions", {**CHAT, "presence_penalty": NAN}, openai_error),
    ("repeat-inf", "/v1/chat/completions", {**CHAT, "repeat_penalty": INF}, openai_error),
    ("stop-5", "/v1/chat/completions", {**CHAT, "stop": list("abcde")}, openai_error),
    ("stop-long", "/v1/chat/completions", {**CHAT, "stop": "x" * 513}, openai_error),
    ("seed-2**64", "/v1/chat/completions", {**CHAT, "seed": 2**64}, openai_error),
    ("top-k-2**40", "/v1/chat/completions", {**CHAT, "top_k": 2**40}, openai_error),
    ("max-tokens-2**40", "/v1/chat/completions", {**CHAT, "max_tokens": 2**40}, openai_error),
    ("top-logprobs-21", "/v1/chat/completions",
     {**CHAT, "logprobs": True, "top_logprobs": 21}, openai_error),
    ("tools-129", "/v1/chat/completions", {**CHAT, "tools": [TOOL] * 129}, openai_error),
    ("messages-2049", "/v1/chat/completions",
     {"messages": HI * 2049, "max_tokens": 1}, openai_error),
    ("schema-nan", "/v1/chat/completions", {**CHAT, "response_format": {
        "type": "json_schema", "json_schema": {"schema": {"type": "number", "maximum": NAN}}}},
     openai_error),
    ("load-n-gpu-2**40", "/v1/chat/completions",
     {**CHAT, "load_model_configs": {"n_gpu_layers": 2**40}}, openai_error),
    ("completions-prompts", "/v1/completions",
     {"prompt": ["a"] * 2049, "max_tokens": 1}, openai_error),
    ("embeddings-inputs", "/v1/embeddings", {"input": ["a"] * 2049}, openai_error),
    # Responses: OpenAI's metadata (16 pairs, 64/512 characters), input and tools counts.
    ("metadata-17", "/v1/responses",
     {**RESPONSES, "metadata": {f"k{i}": "v" for i in range(17)}}, openai_error),
    ("metadata-key", "/v1/responses", {**RESPONSES, "metadata": {"k" * 65: "v"}}, openai_error),
    ("metadata-value", "/v1/responses",
     {**RESPONSES, "metadata": {"k": "v" * 513}}, openai_error),
    ("input-2049", "/v1/responses", {**RESPONSES, "input": HI * 2049}, openai_error),
    ("responses-temp-nan", "/v1/responses", {**RESPONSES, "temperature": NAN}, openai_error),
    ("responses-tools", "/v1/responses", {**RESPONSES, "tools": [
        {"type": "function", "name": "f"}] * 129}, openai_error),
    # Anthropic: temperature 0..1, finite; 16 stop sequences, each short.
    ("anthropic-temp-inf", "/v1/messages", {**MESSAGES, "temperature": INF}, anthropic_error),
    ("anthropic-top-p-nan", "/v1/messages", {**MESSAGES, "top_p": NAN}, anthropic_error),
    ("anthropic-stops-17", "/v1/messages",
     {**MESSAGES, "stop_sequences": [f"s{i}" for i in range(17)]}, anthropic_error),
    ("anthropic-stop-long", "/v1/messages",
     {**MESSAGES, "stop_sequences": ["x" * 513]}, anthropic_error),
    ("anthropic-top-k", "/v1/messages", {**MESSAGES, "top_k": 2**40}, anthropic_error),
    ("anthropic-metadata", "/v1/messages",
     {**MESSAGES, "metadata": {f"k{i}": "v" for i in range(17)}}, anthropic_error),
    # Ollama: finite options in the OpenAI routes' ranges, 16 stop strings.
    ("ollama-temp-inf", "/api/chat",
     {**OLLAMA_CHAT, "options": {"temperature": INF}}, ollama_error),
    ("ollama-presence-nan", "/api/chat",
     {**OLLAMA_CHAT, "options": {"presence_penalty": NAN}}, ollama_error),
    ("ollama-60000-stops", "/api/chat",
     {**OLLAMA_CHAT, "options": {"stop": [f"s{i}" for i in range(60000)]}}, ollama_error),
    ("ollama-stop-long", "/api/generate",
     {**OLLAMA_GEN, "options": {"stop": ["x" * 513]}}, ollama_error),
    ("ollama-seed", "/api/generate", {**OLLAMA_GEN, "options": {"seed": 2**64}}, ollama_error),
    ("ollama-num-predict", "/api/generate",
     {**OLLAMA_GEN, "options": {"num_predict": 2**40}}, ollama_error),
    ("ollama-num-ctx", "/api/generate",
     {**OLLAMA_GEN, "options": {"num_ctx": 10**6}}, ollama_error),
    ("ollama-mirostat-eta", "/api/generate",
     {**OLLAMA_GEN, "options": {"mirostat_eta": INF}}, ollama_error),
    ("ollama-keep-alive-inf", "/api/generate", {**OLLAMA_GEN, "keep_alive": INF}, ollama_error),
    ("ollama-context", "/api/generate", {**OLLAMA_GEN, "context": [-1]}, ollama_error),
    ("ollama-embed-inputs", "/api/embed", {"model": MODEL, "input": ["a"] * 2049},
     ollama_error),
]


# What each refusal must name: the field, or (for NaN, Infinity, 1e400) finiteness.
FINITE = {"bias-nan", "bias-inf", "temp-1e400", "penalty-nan", "repeat-inf", "schema-nan",
          "responses-temp-nan", "anthropic-temp-inf", "anthropic-top-p-nan", "ollama-temp-inf",
          "ollama-presence-nan", "ollama-mirostat-eta", "ollama-keep-alive-inf"}
FIELD = {"completions-prompts": "prompt", "embeddings-inputs": "input", "input-2049": "input",
         "ollama-embed-inputs": "input", "ollama-context": "context", "bias-keys": "logit_bias",
         "bias-key-digits": "logit_bias", "bias-1e39": "logit_bias", "bias-101": "logit_bias",
         "load-n-gpu-2**40": "n_gpu_layers", "messages-2049": "messages",
         "max-tokens-2**40": "max_tokens", "top-logprobs-21": "top_logprobs"}


def expected(name: str, body: dict[str, Any]) -> str:
    if name in FINITE:
        return "finite"
    if name in FIELD:
        return FIELD[name]
    # The one field the case sets beyond the route's ordinary body.
    (field,) = [k for k in body if k not in (*CHAT, *MESSAGES, *OLLAMA_GEN, *RESPONSES)]
    return field


def post_raw(url: str, body: dict[str, Any]) -> requests.Response:
    # json.dumps writes NaN and Infinity as Python's json reads them: what an attacker sends.
    text = json.dumps(body)
    if isinstance(body.get("temperature"), str):  # a literal 1e400, which json.dumps cannot
        text = text.replace(f'"{body["temperature"]}"', body["temperature"])
    return requests.post(url, data=text, headers={"Content-Type": "application/json"},
                         timeout=60)


@pytest.mark.parametrize(("name", "route", "body", "shape"), CASES, ids=[c[0] for c in CASES])
def test_hostile_field_is_a_400_in_the_api_shape(server: str, name: str, route: str,
                                                 body: dict[str, Any], shape: Shape):
    r = post_raw(server + route, body)
    assert r.status_code == 400, r.text[:500]
    assert expected(name, body) in shape(r)
    start = time.monotonic()
    assert requests.get(f"{server}/health", timeout=5).status_code == 200
    assert time.monotonic() - start < 1.0


def test_health_answers_within_a_second_throughout_a_flood(server: str):
    # Four clients send 60,000 stop strings (400 KB each) as fast as they get answers.
    body = {**OLLAMA_CHAT, "options": {"stop": [f"s{i}" for i in range(60000)]}}
    text = json.dumps(body)
    stop = threading.Event()
    statuses: list[int] = []

    def attack() -> None:
        while not stop.is_set():
            statuses.append(requests.post(f"{server}/api/chat", data=text, timeout=60, headers={
                "Content-Type": "application/json"}).status_code)

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(10):
            start = time.monotonic()
            assert requests.get(f"{server}/health", timeout=5).status_code == 200
            assert time.monotonic() - start < 1.0
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {400}


def test_bounds_leave_ordinary_requests_alone(server: str):
    # The edges themselves are accepted: 4 stops, bias +-100, 16 metadata pairs.
    r = post_raw(server + "/v1/chat/completions", {
        **CHAT, "stop": ["a", "b", "c", "d"], "logit_bias": {"1": 100, "2": -100},
        "seed": 2**63 - 1, "temperature": 0})
    assert r.status_code == 200, r.text
    r = post_raw(server + "/api/generate", {**OLLAMA_GEN, "options": {
        "stop": [f"s{i}" for i in range(16)], "num_predict": 1, "temperature": 0}})
    assert r.status_code == 200, r.text


# -- the Responses store ------------------------------------------------------------------


@pytest.fixture
def store_app(models_dir: Path, tmp_path: Path):
    folder = tmp_path / "models"
    folder.mkdir()
    model_folder(folder, models_dir)
    keys = ("sk-alice:alice", "sk-bob:bob")
    app = create_app(make_settings(folder, data_dir=tmp_path / "data", openai_api_keys=keys,
                                   responses_max_bytes_per_client=12_000,
                                   responses_max_stored=6))
    with serving(app) as url:
        yield app, url


def respond(url: str, key: str, **body: object) -> dict[str, Any]:
    r = requests.post(f"{url}/v1/responses", headers={"Authorization": f"Bearer {key}"},
                      timeout=120, json={"max_output_tokens": 1, "temperature": 0, **body})
    assert r.status_code == 200, r.text[:500]
    return r.json()


def test_a_reasoning_item_is_not_stored_again_along_the_chain(store_app):
    app, url = store_app
    big = {"type": "reasoning", "summary": [], "encrypted_content": "x" * 300_000}
    store = responses_store(app)
    store.max_bytes_per_owner = 10**9  # this test measures rows, not the cap
    previous = None
    for _ in range(4):
        turn = [big, {"role": "user", "content": "Hi"}]
        reply = respond(url, "sk-alice", input=turn, previous_response_id=previous)
        previous = reply["id"]
    rows, size = store.held("alice")
    # Before: row k held k copies of the 300 KB item, 3 MB in all.
    assert rows == 4 and size < 40_000, size


def test_one_clients_rows_do_not_evict_anothers(store_app):
    app, url = store_app
    bob = respond(url, "sk-bob", input="Hi")
    alice = [respond(url, "sk-alice", input="Tell me " + "more " * 300) for _ in range(8)]
    rows, size = responses_store(app).held("alice")
    assert size <= 12_000 and rows < 8
    first = requests.get(f"{url}/v1/responses/{alice[0]['id']}", timeout=10,
                         headers={"Authorization": "Bearer sk-alice"})
    assert first.status_code == 404
    r = requests.get(f"{url}/v1/responses/{bob['id']}", timeout=10,
                     headers={"Authorization": "Bearer sk-bob"})
    assert r.status_code == 200, r.text
