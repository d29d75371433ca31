"""uniqueItems through the server (issue 41): a schema whose arrays must keep their items
distinct comes back valid on every route that takes a schema, inside max_tokens, never as the
502 "does not fit the schema" a repeated item used to cause; an array that can never be unique
is refused up front with a 400 naming the keyword, in each API's own error shape.

Prompts ask for repeats on purpose ("python, python, python"): a small model copies them, and
only the engine's refusal of a duplicate item keeps the output valid."""

from __future__ import annotations

import json

import pytest
import requests
from support.grammar_cases import UNIQUE_CASES
from support.http_server import MODEL
from support.oracle import schema_problems

TAGS = {"type": "array", "items": {"type": "string", "maxLength": 20}, "uniqueItems": True,
        "minItems": 3, "maxItems": 5}
POST = {"type": "object", "required": ["title", "tags"], "additionalProperties": False,
        "properties": {"title": {"type": "string", "maxLength": 30}, "tags": TAGS}}
CATEGORIES = {"type": "object", "required": ["categories"], "properties": {
    "categories": {"type": "array", "uniqueItems": True, "minItems": 3, "maxItems": 4,
                   "items": {"enum": ["news", "sport", "tech", "music", "food"]}}}}
ROWS = {"type": "array", "uniqueItems": True, "minItems": 3, "maxItems": 3, "items": {
    "type": "object", "required": ["lang", "stars"], "additionalProperties": False,
    "properties": {"lang": {"enum": ["python", "rust"]}, "stars": {"type": "integer",
                                                                   "minimum": 1, "maximum": 5}}}}
KEYWORDS_ANYOF = {"type": "object", "required": ["keywords"], "properties": {"keywords": {
    "anyOf": [{"type": "null"},
              {"type": "array", "items": {"type": "integer"}, "uniqueItems": True,
               "minItems": 4}]}}}
REPEATS = ("Tags: python, python, python, python. Category: tech, tech, tech. "
           "Ratings: python 5 stars, python 5 stars, python 5 stars. Keywords: 7, 7, 7, 7.")
SCHEMAS = {"tags": POST, "categories": CATEGORIES, "rows": ROWS, "anyof": KEYWORDS_ANYOF}
TOO_FEW = {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True,
           "minItems": 4}


def unique_ok(data, schema) -> None:
    """The judge: jsonschema (uniqueItems included) alone, not the server's own check."""
    assert schema_problems(data, schema) == [], data


def extract(server, schema, max_tokens=96, **kw):
    return requests.post(f"{server}/v1/extract", json={
        "text": REPEATS, "schema": schema, "max_tokens": max_tokens, "temperature": 0, **kw},
        timeout=300)


@pytest.mark.parametrize("name", SCHEMAS)
def test_extract_keeps_items_unique_where_the_text_repeats(server, name):
    r = extract(server, SCHEMAS[name])
    assert r.status_code == 200, r.text
    unique_ok(r.json()["data"], SCHEMAS[name])
    assert r.json()["usage"]["completion_tokens"] <= 96


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampled_replies_keep_items_unique(server, seed):
    r = extract(server, POST, temperature=1.0, seed=seed)
    assert r.status_code == 200, r.text
    unique_ok(r.json()["data"], POST)


@pytest.mark.parametrize("case", UNIQUE_CASES, ids=lambda c: c.id)
def test_corpus_unique_cases_fit(server, case):
    r = extract(server, case.schema)
    assert r.status_code == 200, r.text
    unique_ok(r.json()["data"], case.schema)


def test_a_tight_budget_closes_with_distinct_items(server):
    # The budget guide closes the array with its shortest items: they must differ from the
    # model's and from each other (minItems 5 of strings: five distinct fillers at most).
    schema = {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 5}
    for max_tokens in (16, 20, 24):
        r = extract(server, schema, max_tokens=max_tokens)
        assert r.status_code == 200, (max_tokens, r.text)
        unique_ok(r.json()["data"], schema)
        assert r.json()["usage"]["completion_tokens"] <= max_tokens


def chat(server, **body):
    return requests.post(f"{server}/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": REPEATS}], "max_tokens": 96,
        "temperature": 0, **body}, timeout=300)


def test_response_format(server):
    r = chat(server, response_format={"type": "json_schema",
                                       "json_schema": {"name": "post", "schema": POST}})
    assert r.status_code == 200, r.text
    unique_ok(json.loads(r.json()["choices"][0]["message"]["content"]), POST)


def test_forced_tool_call_arguments(server):
    tool = {"type": "function", "function": {"name": "tag_post", "parameters": POST}}
    r = chat(server, tools=[tool], tool_choice="required")
    assert r.status_code == 200, r.text
    [call] = r.json()["choices"][0]["message"]["tool_calls"]
    unique_ok(json.loads(call["function"]["arguments"]), POST)


def test_responses_text_format(server):
    r = requests.post(f"{server}/v1/responses", json={
        "model": MODEL, "input": REPEATS, "max_output_tokens": 96, "temperature": 0,
        "text": {"format": {"type": "json_schema", "name": "cats", "schema": CATEGORIES}}},
        timeout=300)
    assert r.status_code == 200, r.text
    text = r.json()["output"][-1]["content"][0]["text"]
    unique_ok(json.loads(text), CATEGORIES)


def test_anthropic_forced_tool_input(server):
    r = requests.post(f"{server}/v1/messages", json={
        "model": MODEL, "max_tokens": 96, "temperature": 0,
        "messages": [{"role": "user", "content": REPEATS}],
        "tools": [{"name": "rate", "input_schema": {"type": "object", "required": ["rows"],
                                                   "properties": {"rows": ROWS}}}],
        "tool_choice": {"type": "tool", "name": "rate"}}, timeout=300)
    assert r.status_code == 200, r.text
    [block] = [b for b in r.json()["content"] if b["type"] == "tool_use"]
    unique_ok(block["input"], {"type": "object", "properties": {"rows": ROWS}})


def test_ollama_format(server):
    r = requests.post(f"{server}/api/chat", json={
        "model": MODEL, "stream": False, "format": KEYWORDS_ANYOF,
        "options": {"temperature": 0, "num_predict": 96},
        "messages": [{"role": "user", "content": REPEATS}]}, timeout=300)
    assert r.status_code == 200, r.text
    unique_ok(json.loads(r.json()["message"]["content"]), KEYWORDS_ANYOF)


@pytest.mark.parametrize("path,body,error", [
    ("/v1/extract", {"text": "x", "schema": TOO_FEW},
     lambda b: b["error"]),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "json_schema", "json_schema": {
                                  "name": "x", "schema": TOO_FEW}}},
     lambda b: b["error"]),
    ("/v1/messages", {"model": MODEL, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "x"}],
                      "tools": [{"name": "t", "input_schema": {
                          "type": "object", "properties": {"v": TOO_FEW}, "required": ["v"]}}],
                      "tool_choice": {"type": "tool", "name": "t"}},
     lambda b: b["type"] == "error" and b["error"]),
    ("/api/chat", {"model": MODEL, "stream": False, "format": TOO_FEW,
                   "messages": [{"role": "user", "content": "x"}]},
     lambda b: {"message": b["error"]}),
])
def test_an_array_that_can_never_be_unique_is_refused_up_front(server, path, body, error):
    r = requests.post(f"{server}{path}", json=body, timeout=60)
    assert r.status_code == 400, r.text
    err = error(r.json())
    assert err and "uniqueItems" in err["message"]
    assert err.get("param", "uniqueItems") == "uniqueItems"
