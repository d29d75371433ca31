"""Settings the README documents, each set on a real server and seen to take effect: one server
for the module (N_BATCH, N_GPU_LAYERS, CHAT_FORMAT, MAX_N, N_PARALLEL with MAX_QUEUE,
RESPONSES_MAX_STORED, MAX_LOADED_MODELS over two model files), /reload's options last."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.http_server import MODEL, make_settings, metric, model_folder, running_server

OTHER = "other-model"  # the default model's weights under a second name: a second model id
QUESTION = [{"role": "user", "content": "What is 2+2?"}]
STORY = [{"role": "user", "content": "Tell me a long story about a fox."}]


@pytest.fixture(scope="module")
def url(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = model_folder(tmp_path_factory.mktemp("settings-models"), models_dir,
                          f"{OTHER}.gguf")
    settings = make_settings(folder, model_path=folder / f"{MODEL}.gguf", n_batch=16,
                             n_gpu_layers=-1, chat_format="chatml", max_n=2, n_parallel=1,
                             max_queue=1, responses_max_stored=2, max_loaded_models=1)
    with running_server(settings) as base:
        yield base


def _chat(url: str, **body: object) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", timeout=120,
                         json={"messages": QUESTION, "temperature": 0, "max_tokens": 8, **body})


def test_n_batch_16_evaluates_a_longer_prompt_in_steps(url):
    # The prompt takes two decode steps of 16, and the name is only in the first: the
    # reply that repeats it read both.
    r = _chat(url, max_tokens=8, messages=[
        {"role": "user", "content": "My name is Zorblax."}, {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "Repeat my name."}])
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] > 16
    assert "Zorblax" in r.json()["choices"][0]["message"]["content"], r.text


def test_chat_format_chatml_replaces_the_gguf_template(url):
    health = requests.get(f"{url}/health", timeout=10).json()
    assert health["chat_format"] == "chatml"
    r = requests.post(f"{url}/extras/apply-template", json={"messages": QUESTION}, timeout=30)
    assert r.json()["chat_format"] == "chatml"
    # Plain ChatML: the GGUF's Jinja template would add its default system prompt ("SmolLM").
    assert r.json()["prompt"] == ("<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                                  "<|im_start|>assistant\n"), r.json()["prompt"]


def test_max_n_caps_choices(url):
    assert len(_chat(url, n=2, temperature=1.0, max_tokens=2).json()["choices"]) == 2
    r = _chat(url, n=3, max_tokens=2)
    assert r.status_code == 400 and r.json()["error"]["param"] == "n", r.text
    assert "cap of 2" in r.json()["error"]["message"]


def test_responses_max_stored_forgets_the_oldest(url):
    ids = [requests.post(f"{url}/v1/responses", timeout=120, json={
        "input": f"Say {i}.", "max_output_tokens": 1}).json()["id"] for i in range(3)]
    status = [requests.get(f"{url}/v1/responses/{i}", timeout=10).status_code for i in ids]
    assert status == [404, 200, 200]


def _stream(url: str, model: str, max_tokens: int) -> tuple[requests.Response, Iterator[str]]:
    r = requests.post(f"{url}/v1/chat/completions", stream=True, timeout=120, json={
        "model": model, "messages": STORY, "max_tokens": max_tokens, "temperature": 0,
        "stream": True})
    lines = (line for line in r.iter_lines(decode_unicode=True) if line.startswith("data: "))
    assert next(lines)  # generating: it holds the one sequence
    return r, lines


def test_ready_says_queue_full_when_max_queue_wait(url):
    # N_PARALLEL=1, MAX_QUEUE=1: one stream runs, one request waits; /ready turns 503
    # queue_full, and a third request is refused at once.
    running, lines = _stream(url, MODEL, 200)
    waiting = threading.Thread(target=_chat, args=(url,), kwargs={"max_tokens": 1})
    waiting.start()
    try:
        for _ in range(100):
            ready = requests.get(f"{url}/ready", timeout=10)
            if ready.status_code == 503:
                break
            threading.Event().wait(0.05)
        assert (ready.status_code, ready.json()["status"]) == (503, "queue_full"), ready.text
        refused = _chat(url, max_tokens=1)
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "queue_full")
        assert refused.headers["Retry-After"] == "1"
    finally:
        running.close()
        waiting.join(120)
    assert requests.get(f"{url}/ready", timeout=10).status_code == 200


def test_max_loaded_models_never_unloads_a_model_in_use(url):
    # MAX_LOADED_MODELS=1: asking for a second model while a stream runs on the first must
    # not unload it under the stream; the stream ends normally, with all its tokens.
    running, lines = _stream(url, MODEL, 12)
    try:
        other = _chat(url, model=OTHER, max_tokens=2)
        assert other.status_code == 200 and other.json()["model"] == OTHER, other.text
        frames = list(lines)
    finally:
        running.close()
    assert frames[-1] == "data: [DONE]" and not any('"error"' in f for f in frames), frames
    import json

    chunks = [json.loads(f[len("data: "):]) for f in frames[:-1]]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]
               and c["choices"][0]["finish_reason"]]
    assert reasons == ["length"]
    # Both were in memory side by side while the stream ran; once idle, back to one.
    assert len(requests.get(f"{url}/health", timeout=10).json()["loaded_models"]) == 1


def test_reload_options_and_n_gpu_layers_on_a_cpu_build(url, caplog):
    # Last: it changes the module's server. /reload's options take effect; N_GPU_LAYERS on a
    # build without GPU offload says so in the log and runs on the CPU.
    with caplog.at_level(logging.WARNING, logger="slm_api"):
        r = requests.post(f"{url}/reload", timeout=300, json={
            "model_path": f"{MODEL}.gguf", "n_threads": 1, "n_batch": 8, "n_parallel": 2,
            "chat_format": "gemma", "n_gpu_layers": -1})
    assert r.status_code == 200, r.text
    health = requests.get(f"{url}/health", timeout=10).json()
    assert health["gpu_offload"] is False and health["chat_format"] == "gemma"
    assert any("cannot offload to a GPU: running on the CPU" in m for m in caplog.messages), \
        caplog.messages
    assert metric(url, "slm_parallel_slots", model=MODEL) == 2
    prompt = requests.post(f"{url}/extras/apply-template", json={"messages": QUESTION},
                           timeout=30).json()["prompt"]
    assert prompt.endswith("<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
                           "<start_of_turn>model\n"), prompt
    assert _chat(url, max_tokens=2).status_code == 200


def test_responses_ttl_s_forgets_a_stored_response(models_dir: Path, tmp_path: Path):
    import time

    with running_server(make_settings(models_dir, data_dir=tmp_path / "data",
                                      responses_ttl_s=2.0)) as base:
        made = requests.post(f"{base}/v1/responses", timeout=120, json={
            "input": "Say hi.", "max_output_tokens": 1}).json()["id"]
        assert requests.get(f"{base}/v1/responses/{made}", timeout=10).status_code == 200
        time.sleep(2.5)
        gone = requests.get(f"{base}/v1/responses/{made}", timeout=10)
        assert gone.status_code == 404, gone.text
        assert gone.json()["error"]["code"] == "response_not_found"
