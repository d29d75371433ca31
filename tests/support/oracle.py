"""Judges of the server's answers that share no code with it: a test that asks the server's own
check whether the server's output is right cannot fail when that check is wrong."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import requests
from jsonschema import Draft7Validator, Draft202012Validator

from slm_api.grammar import schema_to_gbnf
from slm_api.grammar.recognizer import Grammar


def schema_problems(instance: Any, schema: Any) -> list[str]:
    """Empty when `instance` fits `schema` by `jsonschema` alone, formats checked (date, time,
    date-time, email, uuid, ipv4 ...); else one message per error. A schema spelled in draft 7
    (tuple `items`, `additionalItems`) is read as draft 7, any other as 2020-12 unless its
    `$schema` says otherwise."""
    if isinstance(schema, dict) and "$schema" in schema:
        cls = jsonschema.validators.validator_for(schema)
    elif "additionalItems" in json.dumps(schema) or _tuple_items(schema):
        cls = Draft7Validator
    else:
        cls = Draft202012Validator
    # The draft's own format checker: a bare FormatChecker() mixes in draft 3's `time`
    # (HH:MM:SS, no offset), which refuses the RFC 3339 times that later drafts require.
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _tuple_items(node: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(node.get("items"), list) or any(map(_tuple_items, node.values()))
    return isinstance(node, list) and any(map(_tuple_items, node))


def shortest_tokens(server: str, schema: object) -> int:
    """Tokens of the shortest JSON that fits `schema`: the recognizer's shortest text for the
    schema's grammar, counted by the model's tokenizer (never read from the server's 400)."""
    g = Grammar(schema_to_gbnf(schema))
    text = g.completion(g.start())
    assert text is not None and schema_problems(json.loads(text), schema) == [], text
    r = requests.post(f"{server}/extras/tokenize/count", json={"input": text,
                                                              "add_special": False}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["count"]
