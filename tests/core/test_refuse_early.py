"""What a request may cost is bounded before the expensive part: a schema before its grammar is
built, a prompt's characters before it is tokenized; each 400 names the limit."""

from __future__ import annotations

import time

import requests

from slm_api.grammar.limits import MAX_BRANCHES, MAX_ENUM_VALUES, MAX_SCHEMA_BYTES


def _timed_post(url: str, body: dict) -> tuple[requests.Response, float]:
    started = time.monotonic()
    r = requests.post(url, json=body, timeout=60)
    return r, time.monotonic() - started


def test_a_20000_value_enum_is_refused_at_once(server):
    # It used to build a grammar for 53 s (issue 13); the limit is checked on the JSON first.
    schema = {"type": "object", "properties": {"v": {"enum": [f"value-{i}" for i in range(20000)]}}}
    r, took = _timed_post(f"{server}/v1/extract", {"text": "x", "schema": schema})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("schema_too_large", "schema")
    assert f"the limit is {MAX_SCHEMA_BYTES}" in error["message"]
    assert took < 5  # loose: the refusal itself takes milliseconds


def test_enum_and_union_counts_are_limited_in_response_format(server):
    too_many = list(range(MAX_ENUM_VALUES + 1))
    for schema, param in (
        ({"enum": too_many}, "enum"),
        ({"anyOf": [{"const": i} for i in range(MAX_BRANCHES + 1)]}, "anyOf"),
    ):
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "x", "schema": schema}}}
        r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["code"], error["param"]) == ("schema_too_large", param)
        assert "the limit is" in error["message"]


def test_a_prompt_longer_than_any_tokenization_fits_is_refused_before_tokenizing(server):
    # 2048-token context in the test server: 400,000 characters cannot fit, whatever the tokens.
    body = {"messages": [{"role": "user", "content": "word " * 80_000}], "max_tokens": 4}
    r = requests.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "characters" in error["message"] and "2048 tokens" in error["message"]
