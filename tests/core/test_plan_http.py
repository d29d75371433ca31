"""One planner over real HTTP: /extras/apply-template shows the very prompt a chat request reads
(thinking and tools included), /restore_cache caches it, /api/generate plans as chat does.

The model is the real default one with Qwen3's thinking switch written into a copy of its
GGUF, so turning thinking off changes the prompt (the template writes the empty block)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.ggufs import THINK_TOGGLE_TEMPLATE as TOGGLE_TEMPLATE
from support.ggufs import with_chat_template
from support.http_server import make_settings, running_server

SYSTEM = "You answer questions about the harbour's tide tables, day by day. " * 12
ASK = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "High tide?"}]
OFF = {"model": "think-toggle", "messages": ASK, "reasoning_effort": "none"}
TOOLS = [{"type": "function", "function": {"name": "tide_times_lookup", "description": "Tide times",
                                            "parameters": {"type": "object", "properties": {
                                                "day": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("plan-models")
    os.link(model_path, folder / model_path.name)
    with_chat_template(model_path, folder / "think-toggle.gguf", TOGGLE_TEMPLATE)
    with running_server(make_settings(folder, n_parallel=1, max_loaded_models=2)) as url:
        yield url


def _template(server: str, **body: object) -> str:
    r = requests.post(f"{server}/extras/apply-template", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["prompt"]


def _count(server: str, text: str) -> int:
    r = requests.post(f"{server}/extras/tokenize/count", timeout=60,
                      json={"model": "think-toggle", "input": text})
    return r.json()["count"]


def _chat(server: str, **body: object) -> dict:
    r = requests.post(f"{server}/v1/chat/completions", timeout=120,
                      json={"max_tokens": 1, "temperature": 0, **body})
    assert r.status_code == 200, r.text
    return r.json()["usage"]


def test_apply_template_shows_the_thinking_switch_chat_applies(server):
    prompt = _template(server, **OFF)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert _count(server, prompt) == _chat(server, **OFF)["prompt_tokens"]
    budget = _template(server, model="think-toggle", messages=ASK, thinking_budget=8)
    assert budget.endswith("<|im_start|>assistant\n<think>\n")


def test_apply_template_shows_tools_only_where_chat_shows_them(server):
    shown = _template(server, model="think-toggle", messages=ASK, tools=TOOLS)
    assert "tide_times_lookup" in shown
    assert _count(server, shown) == _chat(server, model="think-toggle", messages=ASK,
                                          tools=TOOLS)["prompt_tokens"]
    hidden = _template(server, model="think-toggle", messages=ASK, tools=TOOLS,
                       tool_choice="none")
    assert "tide_times_lookup" not in hidden


def test_restore_cache_caches_the_prompt_chat_then_reads(server):
    r = requests.post(f"{server}/restore_cache", json=OFF, timeout=120)
    assert r.status_code == 200, r.text
    warmed = r.json()["prompt_tokens"]
    usage = _chat(server, **OFF)
    assert usage["prompt_tokens"] == warmed
    # All of it but at most the last token (evaluated again for its logits).
    assert usage["prompt_tokens_details"]["cached_tokens"] >= warmed - 1


def test_generate_plans_its_prompt_as_chat_does(server):
    # think: false is chat's thinking off: the same prompt, so the same prompt_eval_count.
    body = {"model": "think-toggle", "system": SYSTEM, "prompt": "High tide?", "think": False,
            "stream": False, "options": {"num_predict": 1, "temperature": 0}}
    r = requests.post(f"{server}/api/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["prompt_eval_count"] == _chat(server, **OFF)["prompt_tokens"]
