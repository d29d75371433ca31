"""Qwen3-Coder's XML calls and GPT-OSS's harmony calls over real HTTP, in the OpenAI chat,
Anthropic Messages and Ollama shapes; `parallel_tool_calls: false` through each family.

The models are copies of the default model with the real chat templates written in
(tests/support/templates/): the weights know neither markup, but a forced call is constrained
by the grammar of the template's markup, so what the server owes is to hand that markup back
as tool calls in each API's own shape, its values typed by the tool's schema.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openai import OpenAI
from support.ggufs import with_chat_template
from support.http_server import MODEL, make_settings, running_server

from slm_api.engine import masks

TEMPLATES = Path(__file__).parent.parent / "support" / "templates"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 30},
        "days": {"type": "integer", "minimum": 1, "maximum": 9},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "days", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 30}},
                   "required": ["tz"]}}}
TOOLS = [WEATHER, TIME]
ASK = [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}]
FORCE = {"type": "function", "function": {"name": "get_weather"}}
DIALECTS = ["qwen3-coder", "gpt-oss"]


@pytest.fixture(scope="module")
def url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("dialect-models")
    os.link(model_path, folder / model_path.name)
    for name in DIALECTS:
        with_chat_template(model_path, folder / f"tools-{name}.gguf",
                           (TEMPLATES / f"{name}.jinja").read_text())
    # One sequence, no prompt cache, and llguidance for every grammar: the streamed and the
    # whole reply decode the same tokens (see test_tool_markup_http.py).
    settings = make_settings(folder, prompt_cache="off", n_parallel=1)
    ready_matcher = masks.MaskTokenizer.matcher
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(masks.MaskTokenizer, "matcher",
                      lambda self, gbnf: ready_matcher(self, gbnf) if self.wait(300) else None)
        with running_server(settings) as base:
            yield base


@pytest.fixture(scope="module")
def client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)


def check_weather_args(args: dict) -> None:
    # Typed by the schema: days is a number in the arguments, whatever the markup wrote.
    assert set(args) == {"city", "days", "unit"}, args
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    assert 1 <= args["days"] <= 9 and args["unit"] in ("celsius", "fahrenheit")


# What each template teaches (its own tools block), so the model is served with that markup.
TAUGHT = {"qwen3-coder": "<function=example_function_name>", "gpt-oss": "namespace functions {"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_forced_call_in_openai_chat_whole_and_streamed(client, url, dialect):
    prompt = requests.post(f"{url}/extras/apply-template", timeout=60, json={
        "model": f"tools-{dialect}", "messages": ASK, "tools": TOOLS}).json()["prompt"]
    assert TAUGHT[dialect] in prompt and '"name": "get_weather"' not in prompt
    body = dict(model=f"tools-{dialect}", messages=ASK, tools=TOOLS, tool_choice=FORCE,
                temperature=0, max_tokens=200)
    choice = client.chat.completions.create(**body).choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert not choice.message.content  # no markup leaks into the content
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    check_weather_args(json.loads(call.function.arguments))
    content, calls = "", {}
    for chunk in client.chat.completions.create(stream=True, **body):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            got = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            got["name"] += tc.function.name or ""
            got["arguments"] += tc.function.arguments or ""
    assert content == ""
    assert calls == {0: {"name": "get_weather", "arguments": call.function.arguments}}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_forced_call_in_anthropic_messages(url, dialect):
    reply = requests.post(f"{url}/v1/messages", timeout=600, json={
        "model": f"tools-{dialect}", "max_tokens": 200, "temperature": 0, "messages": ASK,
        "tools": [{"name": t["function"]["name"], "description": t["function"]["description"],
                   "input_schema": t["function"]["parameters"]} for t in TOOLS],
        "tool_choice": {"type": "tool", "name": "get_weather"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["stop_reason"] == "tool_use"
    uses = [b for b in body["content"] if b["type"] == "tool_use"]
    assert [u["name"] for u in uses] == ["get_weather"]
    check_weather_args(uses[0]["input"])
    text = "".join(b.get("text", "") for b in body["content"] if b["type"] == "text")
    assert "<" not in text


@pytest.mark.parametrize("dialect", DIALECTS)
def test_forced_call_in_ollama_chat(url, dialect):
    reply = requests.post(f"{url}/api/chat", timeout=600, json={
        "model": f"tools-{dialect}", "messages": ASK, "tools": TOOLS, "tool_choice": FORCE,
        "stream": False, "options": {"temperature": 0, "num_predict": 200}})
    assert reply.status_code == 200, reply.text
    message = reply.json()["message"]
    [call] = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    check_weather_args(call["function"]["arguments"])
    assert "<" not in message.get("content", "")


@pytest.mark.parametrize("model", [MODEL, "tools-qwen3-coder", "tools-gpt-oss"])
def test_parallel_tool_calls_false_with_required_yields_one_call(client, url, model):
    chat = client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
        max_tokens=200, parallel_tool_calls=False)
    assert len(chat.choices[0].message.tool_calls) == 1
    responses = requests.post(f"{url}/v1/responses", timeout=600, json={
        "model": model, "input": ASK[0]["content"], "tool_choice": "required",
        "parallel_tool_calls": False, "temperature": 0, "max_output_tokens": 200,
        "tools": [{"type": "function", **t["function"]} for t in TOOLS]})
    assert responses.status_code == 200, responses.text
    assert [o["type"] for o in responses.json()["output"]].count("function_call") == 1
    messages = requests.post(f"{url}/v1/messages", timeout=600, json={
        "model": model, "max_tokens": 200, "temperature": 0, "messages": ASK,
        "tools": [{"name": t["function"]["name"], "input_schema": t["function"]["parameters"]}
                  for t in TOOLS],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True}})
    assert messages.status_code == 200, messages.text
    assert [b["type"] for b in messages.json()["content"]].count("tool_use") == 1
