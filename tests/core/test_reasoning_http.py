"""A reasoning model's thinking over real HTTP: kept out of the answer in Chat Completions,
Responses and Anthropic Messages, streamed and not.

The reasoning models are the real default model with a thinking template written into a copy
of its GGUF. The weights know nothing of `<think>`, so the tests make the model think on real
decoding: the template opens the block in the generation prompt (the reply starts inside it),
and either max_tokens cuts the thinking (its end-of-turn token banned with logit_bias) or a
response format's grammar makes the model close the block and answer in JSON (the budget guide
closes the thinking in time). The parser then runs on what the model wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from openai import OpenAI
from pydantic import BaseModel, Field
from support.ggufs import THINK_TOGGLE_TEMPLATE as TOGGLE_TEMPLATE
from support.ggufs import with_chat_template
from support.http_server import MODEL, make_settings, running_server

from slm_api.engine import masks

# ChatML, the generation prompt opening the thinking (as DeepSeek-R1's later templates do), and
# earlier assistant turns with their thinking stripped.
OPEN_TEMPLATE = (
    "{% for message in messages %}{% set content = message.content %}"
    "{% if message.role == 'assistant' and '</think>' in content %}"
    "{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}"
    "{{ '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}")
ASK = [{"role": "user", "content": "What is 2 + 2? Think it through."}]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}},
          "required": ["answer"], "additionalProperties": False}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "sum", "schema": SCHEMA,
                                                       "strict": True}}
MARKERS = ("<think>", "</think>")


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("reasoning-models")
    os.link(model_path, folder / model_path.name)
    with_chat_template(model_path, folder / "think-open.gguf", OPEN_TEMPLATE)
    with_chat_template(model_path, folder / "think-toggle.gguf", TOGGLE_TEMPLATE)
    # One sequence, no prompt cache: a streamed and a whole reply decode the same numerics
    # (see test_tool_markup_http.py), and every grammar waits for llguidance.
    settings = make_settings(folder, prompt_cache="off", n_parallel=1, max_loaded_models=3)
    ready_matcher = masks.MaskTokenizer.matcher
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(masks.MaskTokenizer, "matcher",
                      lambda self, gbnf: ready_matcher(self, gbnf) if self.wait(300) else None)
        with running_server(settings) as url:
            yield url


@pytest.fixture(scope="module")
def client(server: str) -> OpenAI:
    return OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def no_end(server: str) -> dict[str, float]:
    """logit_bias that bans the end of the turn: the thinking runs until max_tokens."""
    ids = requests.post(f"{server}/extras/tokenize", timeout=30, json={
        "model": "think-open", "input": "<|im_end|>", "add_special": False}).json()["tokens"]
    assert len(ids) == 1
    return {str(ids[0]): -100.0}


def streamed(client: OpenAI, **body: Any) -> tuple[str, str, str, str | None, Any]:
    """A streamed reply joined: reasoning_content, reasoning, content, finish_reason, usage."""
    rc, rs, content, reason, usage = "", "", "", None, None
    for chunk in client.chat.completions.create(stream=True,
                                                stream_options={"include_usage": True}, **body):
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        rc += extra.get("reasoning_content") or ""
        rs += extra.get("reasoning") or ""
        content += delta.content or ""
        reason = chunk.choices[0].finish_reason or reason
    return rc, rs, content, reason, usage


def _reasoning_of(message: Any) -> tuple[str | None, str | None]:
    extra = message.model_extra or {}
    return extra.get("reasoning_content"), extra.get("reasoning")


# -- Chat Completions ----------------------------------------------------------------------


def test_a_reply_cut_inside_the_thinking_is_all_reasoning(client, no_end):
    body = dict(model="think-open", messages=ASK, temperature=0, max_tokens=24,
                logit_bias=no_end)
    reply = client.chat.completions.create(**body)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == ""
    reasoning, also = _reasoning_of(choice.message)
    assert reasoning and reasoning == also
    assert not any(m in reasoning for m in MARKERS)
    details = reply.usage.completion_tokens_details
    assert details is not None and 0 < details.reasoning_tokens <= reply.usage.completion_tokens
    rc, rs, content, reason, usage = streamed(client, **body)
    assert (rc, rs, content, reason) == (reasoning, reasoning, "", "length")
    assert usage.completion_tokens_details.reasoning_tokens == details.reasoning_tokens


def test_each_of_n_choices_splits_its_own_thinking(client, no_end):
    body = dict(model="think-open", messages=ASK, temperature=0, max_tokens=12, n=2,
                logit_bias=no_end)
    reply = client.chat.completions.create(**body)
    assert [c.finish_reason for c in reply.choices] == ["length", "length"]
    reasonings = [_reasoning_of(c.message)[0] for c in reply.choices]
    assert all(reasonings) and all(c.message.content == "" for c in reply.choices)
    assert 0 < reply.usage.completion_tokens_details.reasoning_tokens <= 24
    joined: dict[int, str] = {}
    for chunk in client.chat.completions.create(stream=True, **body):
        for choice in chunk.choices:
            assert not choice.delta.content
            extra = choice.delta.model_extra or {}
            joined[choice.index] = joined.get(choice.index, "") + (
                extra.get("reasoning_content") or "")
    assert [joined[0], joined[1]] == reasonings


def test_structured_answer_follows_free_thinking(client):
    body = dict(model="think-open", messages=ASK, temperature=0, max_tokens=48,
                response_format=JSON_FORMAT)
    reply = client.chat.completions.create(**body)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice
    # The grammar applied only once the model closed its thinking: the answer is the JSON.
    assert set(json.loads(choice.message.content)) == {"answer"}
    reasoning, also = _reasoning_of(choice.message)
    assert reasoning and reasoning == also
    assert not any(m in reasoning or m in choice.message.content for m in MARKERS)
    rc, rs, content, reason, usage = streamed(client, **body)
    assert (rc, rs, content, reason) == (reasoning, reasoning, choice.message.content, "stop")
    assert 0 < usage.completion_tokens_details.reasoning_tokens < usage.completion_tokens


@pytest.mark.parametrize("model", ["think-open", "think-toggle"])
@pytest.mark.parametrize("switch", [{"extra_body": {"chat_template_kwargs": {
    "enable_thinking": False}}}, {"reasoning_effort": "none"}], ids=["kwargs", "effort"])
def test_thinking_switched_off_closes_the_block_in_the_prompt(client, no_end, model, switch):
    body = dict(model=model, messages=ASK, temperature=0, max_tokens=12, logit_bias=no_end)
    on = client.chat.completions.create(**body)
    off = client.chat.completions.create(**body, **switch)
    # The empty block `<think>\n\n</think>\n\n` (or its close, where the prompt opened it).
    assert off.usage.prompt_tokens > on.usage.prompt_tokens
    message = off.choices[0].message
    assert message.content and _reasoning_of(message) == (None, None)
    assert off.usage.completion_tokens_details.reasoning_tokens == 0
    rc, rs, content, _, _ = streamed(client, **body, **switch)
    assert (rc, rs, content) == ("", "", message.content)


def test_a_model_without_reasoning_markup_answers_as_before(client):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0,
                                           max_tokens=8)
    assert _reasoning_of(reply.choices[0].message) == (None, None)
    assert reply.usage.completion_tokens_details is None


# -- Responses -----------------------------------------------------------------------------


RESPONSE_BODY = dict(model="think-open", input=ASK[0]["content"], temperature=0,
                     max_output_tokens=48, store=False,
                     text={"format": {"type": "json_schema", "name": "sum", "schema": SCHEMA,
                                      "strict": True}})


def test_responses_put_the_thinking_in_a_reasoning_item_before_the_message(client):
    whole = client.responses.create(**RESPONSE_BODY)
    assert whole.status == "completed"
    thought, message = whole.output
    assert thought.type == "reasoning" and message.type == "message"
    [text] = thought.content
    assert text.type == "reasoning_text" and text.text
    assert not any(m in text.text for m in MARKERS)
    assert set(json.loads(whole.output_text)) == {"answer"}
    details = whole.usage.output_tokens_details
    assert 0 < details.reasoning_tokens < whole.usage.output_tokens
    events = list(client.responses.create(**RESPONSE_BODY, stream=True))
    kinds = [e.type for e in events]
    first_text = kinds.index("response.output_text.delta")
    assert kinds.index("response.reasoning_text.delta") < first_text
    assert kinds.index("response.reasoning_text.done") < first_text
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert deltas == text.text
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == text.text
    assert final.output_text == whole.output_text
    assert final.usage.output_tokens_details.reasoning_tokens == details.reasoning_tokens


def test_responses_take_a_reasoning_item_back_and_effort_none_turns_thinking_off(client):
    first = client.responses.create(**RESPONSE_BODY)
    # The Agents SDK sends a reply's items back as the next input, reasoning included.
    follow = [*[item.model_dump(exclude_none=True) for item in first.output],
              {"role": "user", "content": "And 3 + 3?"}]
    again = client.responses.create(**{**RESPONSE_BODY, "input": follow},
                                    reasoning={"effort": "none"})
    assert [item.type for item in again.output] == ["message"]
    assert again.usage.output_tokens_details.reasoning_tokens == 0
    assert again.reasoning.effort == "none"


# -- Anthropic Messages --------------------------------------------------------------------


@pytest.fixture(scope="module")
def claude(server: str) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0, timeout=600)


CLAUDE_BODY = dict(model="think-open", max_tokens=48, messages=ASK,
                   extra_body={"temperature": 0, "output_config": {
                       "format": {"type": "json_schema", "schema": SCHEMA}}})


def test_messages_show_thinking_blocks_only_when_thinking_is_enabled(claude):
    shown = claude.messages.create(**CLAUDE_BODY, thinking={"type": "enabled",
                                                            "budget_tokens": 1024})
    thought, text = shown.content
    assert thought.type == "thinking" and thought.thinking
    assert not any(m in thought.thinking for m in MARKERS)
    assert text.type == "text" and set(json.loads(text.text)) == {"answer"}
    hidden = claude.messages.create(**CLAUDE_BODY)
    assert [b.type for b in hidden.content] == ["text"]
    assert hidden.content[0].text == text.text
    with claude.messages.stream(**CLAUDE_BODY, thinking={"type": "enabled",
                                                         "budget_tokens": 1024}) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert "".join(d.thinking for d in deltas if d.type == "thinking_delta") == thought.thinking
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[1].text == text.text
    with claude.messages.stream(**CLAUDE_BODY) as stream:
        assert [b.type for b in stream.get_final_message().content] == ["text"]


def test_messages_take_thinking_blocks_back_and_disabled_thinking_closes_the_block(claude):
    shown = claude.messages.create(**CLAUDE_BODY, thinking={"type": "enabled",
                                                            "budget_tokens": 1024})
    history = [*ASK, {"role": "assistant", "content": [b.model_dump() for b in shown.content]},
               {"role": "user", "content": "And 3 + 3?"}]
    on = claude.messages.count_tokens(model="think-open", messages=history)
    off = claude.messages.count_tokens(model="think-open", messages=history,
                                       thinking={"type": "disabled"})
    assert off.input_tokens > on.input_tokens
    reply = claude.messages.create(**{**CLAUDE_BODY, "messages": history},
                                   thinking={"type": "disabled"})
    assert [b.type for b in reply.content] == ["text"]


# -- tools ---------------------------------------------------------------------------------


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"], "additionalProperties": False}}}


def test_a_forced_tool_call_follows_the_thinking(client):
    body = dict(model="think-open", temperature=0, max_tokens=64, tools=[WEATHER],
                messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = client.chat.completions.create(**body).choices[0]
    assert choice.finish_reason == "tool_calls", choice
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and set(json.loads(call.function.arguments)) == {
        "city"}
    reasoning, _ = _reasoning_of(choice.message)
    assert reasoning and not any(m in reasoning for m in MARKERS)
    assert not choice.message.content
    calls, rc = {}, ""
    for chunk in client.chat.completions.create(stream=True, **body):
        delta = chunk.choices[0].delta
        rc += (delta.model_extra or {}).get("reasoning_content") or ""
        assert not delta.content
        for tc in delta.tool_calls or []:
            calls[tc.index] = calls.get(tc.index, "") + (tc.function.arguments or "")
    assert rc == reasoning and calls == {0: call.function.arguments}


class Report(BaseModel):
    city: str = Field(max_length=20)


def test_an_agent_runs_a_reasoning_model_through_the_responses_api(server):
    from agents import (
        Agent,
        ModelSettings,
        Runner,
        function_tool,
        set_default_openai_client,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        cities.append(city)
        return f"It is 18 degrees and sunny in {city}."

    set_tracing_disabled(True)
    set_default_openai_client(AsyncOpenAI(base_url=f"{server}/v1", api_key="unused",
                                          max_retries=0, timeout=600), use_for_tracing=False)
    agent = Agent(name="Weather", instructions="Answer weather questions with the tool.",
                  model="think-open", tools=[get_weather], output_type=Report,
                  model_settings=ModelSettings(tool_choice="required", temperature=0,
                                               max_tokens=64))
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    kinds = [item.type for item in result.new_items]
    # Each turn thinks first; the second turn got the first's reasoning item back as input.
    assert kinds[:3] == ["reasoning_item", "tool_call_item", "tool_call_output_item"], kinds
    assert kinds[-1] == "message_output_item" and cities
    assert isinstance(result.final_output, Report)
    assert all(r.usage.output_tokens_details.reasoning_tokens > 0 for r in result.raw_responses)


# -- thinking budget -----------------------------------------------------------------------


def test_a_thinking_budget_closes_the_block_and_the_answer_follows(client, no_end):
    body = dict(model="think-open", messages=ASK, temperature=0, max_tokens=30,
                logit_bias=no_end, extra_body={"thinking_budget": 8})
    reply = client.chat.completions.create(**body)
    choice = reply.choices[0]
    reasoning, _ = _reasoning_of(choice.message)
    # Without the budget these 30 tokens are all thinking (the first test); with it, 8 are.
    assert reasoning and choice.message.content
    assert not any(m in reasoning or m in choice.message.content for m in MARKERS)
    assert choice.finish_reason == "length" and reply.usage.completion_tokens == 30
    assert 8 <= reply.usage.completion_tokens_details.reasoning_tokens <= 12
    rc, _, content, reason, usage = streamed(client, **body)
    assert (rc, content, reason) == (reasoning, choice.message.content, "length")
    assert usage.completion_tokens == 30


def test_a_thinking_budget_with_structured_output_still_answers_valid_json(client):
    body = dict(model="think-open", messages=ASK, temperature=0, max_tokens=48,
                response_format=JSON_FORMAT, extra_body={"thinking_budget": 6})
    reply = client.chat.completions.create(**body)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice
    assert set(json.loads(choice.message.content)) == {"answer"}
    reasoning, _ = _reasoning_of(choice.message)
    assert reasoning and reply.usage.completion_tokens_details.reasoning_tokens <= 10
    rc, _, content, reason, _ = streamed(client, **body)
    assert (rc, content, reason) == (reasoning, choice.message.content, "stop")


def test_a_thinking_budget_of_zero_means_no_thinking(client):
    reply = client.chat.completions.create(model="think-open", messages=ASK, temperature=0,
                                           max_tokens=8, extra_body={"thinking_budget": 0})
    assert _reasoning_of(reply.choices[0].message) == (None, None)
    assert reply.choices[0].message.content


def test_a_thinking_budget_needs_one_choice(client):
    with pytest.raises(Exception) as info:
        client.chat.completions.create(model="think-open", messages=ASK, max_tokens=8, n=2,
                                       extra_body={"thinking_budget": 4})
    assert getattr(info.value, "status_code", None) == 400


# -- Ollama's API: `think` and message.thinking ---------------------------------------------


def test_ollama_chat_gives_the_thinking_as_message_thinking(server: str) -> None:
    import ollama

    client = ollama.Client(host=server, timeout=600)
    body = dict(model="think-open", messages=ASK, format=SCHEMA,
                options={"num_predict": 48, "temperature": 0})
    whole = client.chat(**body)
    assert whole.message.thinking and not any(m in whole.message.thinking for m in MARKERS)
    assert json.loads(whole.message.content)["answer"] is not None  # the answer after it
    assert not any(m in whole.message.content for m in MARKERS)
    thinking, content = "", ""
    for part in client.chat(stream=True, **body):
        thinking += part.message.thinking or ""
        content += part.message.content or ""
    assert (thinking, content) == (whole.message.thinking, whole.message.content)
    shown = client.show("think-open")
    assert "thinking" in shown.capabilities
    assert "thinking" not in client.show(MODEL).capabilities


def test_ollama_think_false_and_a_model_that_cannot_think(server: str) -> None:
    import ollama

    client = ollama.Client(host=server, timeout=600)
    off = client.chat(model="think-toggle", messages=ASK, think=False,
                      options={"num_predict": 12, "temperature": 0})
    assert not off.message.thinking and off.message.content
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=ASK, think=True, options={"num_predict": 4})
    assert err.value.status_code == 400 and "does not support thinking" in str(err.value)


def test_ollama_generate_splits_the_thinking(server: str) -> None:
    r = requests.post(f"{server}/api/generate", timeout=600, json={
        "model": "think-open", "prompt": ASK[0]["content"], "stream": False, "format": SCHEMA,
        "options": {"num_predict": 48, "temperature": 0}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["thinking"] and json.loads(body["response"])["answer"] is not None
    assert not any(m in body["response"] + body["thinking"] for m in MARKERS)
