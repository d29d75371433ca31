"""Structured output always finishes: with max_tokens as low as 32, every constrained reply is
complete valid JSON (or, where even the shortest valid reply cannot fit, a clean "length"
without markup). Through the official openai SDK, against the real model."""

from __future__ import annotations

import json

import jsonschema
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from support.grammar_cases import CASES
from support.http_server import MODEL
from support.oracle import schema_problems, shortest_tokens

LONG = [{"role": "user", "content": "Invent a person. Write a very long biography with many "
                                    "hobbies, friends and places."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "The current time",
    "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris for the next days?"}]


class Person(BaseModel):
    # No bounds at all: nothing in the schema ends the strings or the list; the budget does.
    name: str
    biography: str
    hobbies: list[str]


def test_sdk_parse_with_unbounded_fields_completes_in_32_tokens(client):
    reply = client.chat.completions.parse(
        model=MODEL, messages=LONG, response_format=Person, temperature=0, max_tokens=32)
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(reply.choices[0].message.parsed, Person)
    assert reply.usage.completion_tokens <= 32


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_object_completes_in_32_tokens(client, seed):
    reply = client.chat.completions.create(
        model=MODEL, messages=LONG, response_format={"type": "json_object"}, max_tokens=32,
        temperature=1.0, seed=seed)
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    assert reply.usage.completion_tokens <= 32


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "get_weather"}}])
def test_forced_tool_call_completes_in_32_tokens(client, choice):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice=choice, max_tokens=32,
        temperature=0)
    choice0 = reply.choices[0]
    assert choice0.finish_reason == "tool_calls" and choice0.message.content is None
    [call] = choice0.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments),
                        WEATHER["function"]["parameters"])


def test_call_that_cannot_fit_ends_length_without_markup(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=12,
        temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert "<tool_call>" not in (choice.message.content or "")
    for call in choice.message.tool_calls or []:
        assert call.function.name == "get_weather"


def test_call_that_cannot_fit_streams_length_without_markup(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=12,
        temperature=0, stream=True)
    content, reasons = "", []
    for chunk in stream:
        content += chunk.choices[0].delta.content or ""
        reasons += [chunk.choices[0].finish_reason] if chunk.choices[0].finish_reason else []
    assert reasons == ["length"] and "<tool_call>" not in content


def test_streamed_call_arrives_as_incremental_deltas(client):
    # That a stream reassembles to exactly the non-streamed call for the same text is
    # test_tool_calls.py's (same code, random splits); two generations on CPU may differ at a
    # near-tie, so here: the shape of the stream, and a call as valid as the non-streamed one.
    kwargs = dict(model=MODEL, messages=ASK, tools=[WEATHER, CLOCK], tool_choice="required",
                  max_tokens=40, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls[0]
    calls: dict[int, dict] = {}
    firsts = []
    for chunk in client.chat.completions.create(**kwargs, stream=True):
        assert not chunk.choices or not chunk.choices[0].delta.content
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if tc.index not in calls:
                firsts.append(tc)
                calls[tc.index] = {"name": tc.function.name, "arguments": ""}
            else:
                assert tc.id is None and tc.function.name is None
            calls[tc.index]["arguments"] += tc.function.arguments or ""
    [first] = firsts
    assert first.id.startswith("call_") and first.function.arguments == ""
    [streamed] = calls.values()
    assert streamed["name"] == whole.function.name
    schema = {"get_weather": WEATHER, "get_time": CLOCK}[whole.function.name]
    for arguments in (streamed["arguments"], whole.function.arguments):
        jsonschema.validate(json.loads(arguments), schema["function"]["parameters"])


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "get_time"}}])
def test_tool_without_parameters_gets_empty_arguments(client, choice):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What time is it?"}],
        tools=[CLOCK], tool_choice=choice, max_tokens=32, temperature=0)
    [call] = reply.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_time", "{}")


def test_mask_engines_agree_on_greedy_output(client, monkeypatch):
    # llguidance's masks and llama.cpp's grammar sampler (the fallback while llguidance's
    # tokenizer is built) must make the same greedy picks.
    from slm_api.engine import constraint, masks

    kwargs = dict(model=MODEL, messages=LONG, response_format=Person, temperature=0,
                  max_tokens=16)
    built = []
    backend = constraint.GrammarBackend.constraint

    def recorded(self, gbnf):
        self.masks.wait(300)
        built.append(backend(self, gbnf))
        return built[-1]

    monkeypatch.setattr(constraint.GrammarBackend, "constraint", recorded)
    llguidance = client.chat.completions.parse(**kwargs).choices[0].message.content
    monkeypatch.setattr(masks.MaskTokenizer, "matcher", lambda self, gbnf: None)
    fallback = client.chat.completions.parse(**kwargs).choices[0].message.content
    assert [type(c) for c in built] == [masks.Matcher, constraint.LlamaGrammar]
    assert llguidance == fallback


# Random schemas from the grammar cases (plain types, enums, patterns, formats, bounds, nesting,
# refs, open strings, arrays and objects), random budgets, temperatures and seeds. derandomize
# keeps the draw the same from run to run; the examples are few because each is a generation.
TEXT = "Alice Martin, 31, paid 12.50 EUR on 2024-03-05 at 10:20:00Z for order A-17."
# Above the longest shortest-instance of any case ("event": 43 tokens), so every reply can fit.
ROOMY = 48
draws = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
temperatures = st.sampled_from([0.0, 0.7, 1.0, 1.5])


@draws
@given(case=st.sampled_from(CASES), max_tokens=st.integers(4, 64), temperature=temperatures,
       seed=st.integers(0, 2**31 - 1))
def test_extract_is_valid_within_budget_or_names_the_budget(server, case, max_tokens,
                                                            temperature, seed):
    needed = shortest_tokens(server, case.schema)
    r = requests.post(f"{server}/v1/extract", json={
        "text": TEXT, "schema": case.schema, "max_tokens": max_tokens,
        "temperature": temperature, "seed": seed}, timeout=300)
    if needed > max_tokens:
        # Even the shortest valid JSON would not fit: a 400 that names the budget it needs.
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["code"], error["param"]) == ("max_tokens_too_small", "max_tokens"), r.text
        assert f"at least {needed}" in error["message"], (needed, r.text)
        return
    # It fits: never a refusal, always valid JSON within the budget.
    assert r.status_code == 200, (needed, r.text)
    assert schema_problems(r.json()["data"], case.schema) == [], case.id
    assert r.json()["usage"]["completion_tokens"] <= max_tokens


@draws
@given(case=st.sampled_from(CASES), max_tokens=st.integers(ROOMY, 96), temperature=temperatures,
       seed=st.integers(0, 2**31 - 1))
def test_response_format_is_valid_within_budget(server, case, max_tokens, temperature, seed):
    body = {"messages": [{"role": "user", "content": TEXT}], "max_tokens": max_tokens,
            "temperature": temperature, "seed": seed,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": case.schema}}}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop", (case.id, choice)
    assert schema_problems(json.loads(choice["message"]["content"]), case.schema) == [], case.id
    assert r.json()["usage"]["completion_tokens"] <= max_tokens
