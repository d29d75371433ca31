"""Issue 36, class 1: a client's regular expression or repeat count cannot freeze the server.

Each route that takes a JSON Schema gets the attack of the issue: a `pattern` with nested
quantifiers and `enum` / `const` values that almost match. With Python's `re` the check of one
value of 30 characters held the GIL for about a minute (each character doubles it), so /health
stalled too; the server under test runs in this process, so a poll of /health from a thread here
stalls just the same. Every attack must get a fast 400 in the route's own error shape while
/health keeps answering within 1 s. Nested repeat counts (minItems x minLength, a pattern's {n})
are refused with a 400 naming the limit, before any text of that size is built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from support.http_server import MODEL

from slm_api.grammar.limits import MAX_REPEATS, MAX_SHORTEST_OUTPUT

EVIL = "^(a+)+$"
ALMOST = "a" * 30 + "!"  # about a minute of backtracking for `re`; RE2 answers in microseconds
ASK = [{"role": "user", "content": "Say a word."}]


@contextmanager
def health_stays_up(url: str) -> Iterator[list[float]]:
    """Poll GET /health every 50 ms while the block runs; every answer must come within 1 s."""
    took: list[float] = []
    statuses: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            started = time.monotonic()
            statuses.add(requests.get(f"{url}/health", timeout=120).status_code)
            took.append(time.monotonic() - started)
            done.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(0.1)  # a first answer before the attack
    try:
        yield took
    finally:
        time.sleep(0.1)  # and one after it
        done.set()
        thread.join(60)
    assert len(took) >= 2 and statuses == {200}, (took, statuses)
    assert max(took) < 1.0, f"/health stalled for {max(took):.1f} s during the attack"


def _string(**extra: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": EVIL, **extra}


# Each attack: a field whose pattern backtracks and whose enum/const values almost match it.
ATTACKS = {
    "enum": {"type": "object", "properties": {"v": _string(enum=[ALMOST, ALMOST + "!"])},
             "required": ["v"]},
    "const": {"type": "object", "properties": {"v": _string(const=ALMOST)}, "required": ["v"]},
    # An enum's values are checked against the whole schema beneath it: patternProperties and
    # additionalProperties (which jsonschema matched with `re` too) included.
    "patternProperties": {"type": "object", "properties": {"v": {
        "enum": [{"x": {ALMOST: 1}}],
        "properties": {"x": {"patternProperties": {EVIL: {}}, "additionalProperties": False}}}},
        "required": ["v"]},
}


def _route_bodies(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(path, body, family) for every route that takes a client's schema."""
    fn = {"name": "f", "description": "f", "parameters": schema}
    return [
        ("/v1/extract", {"text": "x", "schema": schema, "max_tokens": 16}, "openai"),
        ("/v1/chat/completions", {
            "messages": ASK, "max_tokens": 16, "response_format": {
                "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}},
         "openai"),
        ("/v1/chat/completions", {
            "messages": ASK, "max_tokens": 16, "tools": [{"type": "function", "function": fn}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}}, "openai"),
        ("/v1/responses", {
            "model": MODEL, "input": "Say a word.", "max_output_tokens": 16,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": schema}}},
         "openai"),
        ("/api/chat", {"model": MODEL, "messages": ASK, "stream": False, "format": schema,
                       "options": {"num_predict": 16}}, "ollama"),
        ("/v1/messages", {
            "model": MODEL, "max_tokens": 16, "messages": ASK,
            "tools": [{"name": "f", "description": "f", "input_schema": schema}],
            "tool_choice": {"type": "tool", "name": "f"}}, "anthropic"),
        ("/v1/messages", {
            "model": MODEL, "max_tokens": 16, "messages": ASK,
            "output_config": {"format": {"type": "json_schema", "schema": schema}}},
         "anthropic"),
    ]


def _error_message(r: requests.Response, family: str) -> str:
    """The 400's message, checking the family's own error shape."""
    assert r.status_code == 400, r.text
    body = r.json()
    if family == "ollama":
        assert isinstance(body["error"], str)
        return body["error"]
    if family == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        return body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error", body
    return body["error"]["message"]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_backtracking_pattern_with_an_almost_matching_value_is_a_fast_400_everywhere(
        server, attack):
    for path, body, family in _route_bodies(ATTACKS[attack]):
        with health_stays_up(server):
            r = requests.post(f"{server}{path}", json=body, timeout=120)
        # No value fits the pattern (the `!`), so no answer can be built: the client's 400.
        assert "no value of enum/const fits" in _error_message(r, family), (path, r.text)


def test_a_value_that_fits_the_pattern_is_still_the_answer(server):
    # The bound changes how a pattern is matched, not what it means: "aa" fits ^(a+)+$ and
    # is the only value left, so the reply is exactly it.
    schema = {"type": "object", "properties": {"v": _string(enum=[ALMOST, "aa"])},
              "required": ["v"]}
    with health_stays_up(server):
        r = requests.post(f"{server}/v1/extract", timeout=120,
                          json={"text": "x", "schema": schema, "max_tokens": 16})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"v": "aa"}


def test_a_backtracking_pattern_still_constrains_generation(server):
    # The pattern itself becomes the grammar and the reply is checked against it: a run of a's.
    schema = {"type": "object", "properties": {"v": _string(maxLength=12)}, "required": ["v"]}
    with health_stays_up(server):
        r = requests.post(f"{server}/v1/extract", timeout=120,
                          json={"text": "aaaa", "schema": schema, "max_tokens": 24})
    assert r.status_code == 200, r.text
    value = r.json()["data"]["v"]
    assert value and set(value) == {"a"} and len(value) <= 12, value


@pytest.mark.parametrize("pattern, words", [
    ("^(?=a)a+$", "(?="),  # lookahead: RE2 (and the grammar) cannot honour it
    (r"^(a)\1$", r"\1"),  # a backreference
    ("^a{1001}$", "{1001}"),  # one repetition past RE2's 1,000
])
def test_a_pattern_that_cannot_be_matched_in_linear_time_is_refused_by_name(server, pattern,
                                                                            words):
    schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}}
    for path, body, family in _route_bodies(schema)[:1] + _route_bodies(schema)[4:6]:
        r = requests.post(f"{server}{path}", json=body, timeout=120)
        message = _error_message(r, family)
        assert "linear time" in message and words in message, (path, message)


NESTED = {
    # 1,000 strings of at least 1,000 characters: the shortest reply is a megabyte.
    "minItems x minLength": {"type": "array", "minItems": 1000,
                             "items": {"type": "string", "minLength": 1000}},
    "three levels": {"type": "array", "minItems": 100, "items": {
        "type": "array", "minItems": 100, "items": {"type": "string", "minLength": 100}}},
    # The count beside an anyOf applies to each branch's items.
    "anyOf sibling": {"type": "array", "minItems": 1000,
                      "anyOf": [{"items": {"type": "string", "minLength": 1000}}]},
    # The same $def reached through another: its counts multiply too.
    "repeated $ref": {"$defs": {"row": {"type": "array", "minItems": 300,
                                        "items": {"$ref": "#/$defs/cell"}},
                                "cell": {"type": "string", "minLength": 300}},
                      "type": "array", "minItems": 1, "items": {"$ref": "#/$defs/row"}},
    "pattern {n} in minItems": {"type": "array", "minItems": 1000,
                                "items": {"type": "string", "pattern": "^(ab{99}){10}$"}},
    "prefixItems": {"type": "array", "minItems": 100,
                    "prefixItems": [{"type": "string", "minLength": 1000}] * 100},
}


@pytest.mark.parametrize("name", list(NESTED))
def test_nested_repeat_counts_are_refused_naming_the_limit(server, name):
    field = dict(NESTED[name])
    defs = field.pop("$defs", {})  # local refs resolve from the root
    for path, body, family in _route_bodies({"type": "object", "properties": {"v": field},
                                             "required": ["v"], "$defs": defs}):
        if defs and "tools" in body:
            continue  # a tool's parameters are nested in the call's schema: #/$defs is not theirs
        with health_stays_up(server):
            r = requests.post(f"{server}{path}", json=body, timeout=120)
        message = _error_message(r, family)
        assert f"the limit is {MAX_SHORTEST_OUTPUT}" in message, (path, message)


def test_many_distinct_repeat_bounds_are_refused_naming_the_limit(server):
    # 600 arrays whose maxItems differ cannot share a rule: the recognizer expanded them into
    # 425,000 elements in 6 s. The sum is bounded as well as the product.
    schema = {"type": "object",
              "properties": {f"p{i}": {"type": "array", "maxItems": 1000 - i} for i in range(600)}}
    with health_stays_up(server):
        r = requests.post(f"{server}/v1/extract", timeout=120,
                          json={"text": "x", "schema": schema, "max_tokens": 16})
    assert f"the limit is {MAX_REPEATS}" in _error_message(r, "openai")


# -- the same bounds, pure (no model, no server) ---------------------------------------------

LONG = "a" * 100 + "!"  # 2**100 steps for a backtracking engine: only a linear one finishes


@pytest.mark.fast
def test_every_keyword_that_matches_a_pattern_runs_in_linear_time():
    from slm_api.grammar import validation_errors

    assert validation_errors(LONG, {"type": "string", "pattern": EVIL}) == [
        f"(root): {LONG!r} does not match {EVIL!r}"]
    assert validation_errors("a" * 100, {"type": "string", "pattern": EVIL}) == []
    strict = {"type": "object", "patternProperties": {EVIL: {"type": "integer"}},
              "additionalProperties": False}
    assert validation_errors({"aaa": 1}, strict) == []
    assert validation_errors({"aaa": "x"}, strict) == ["/aaa: 'x' is not of type 'integer'"]
    assert "do not match any of the regexes" in validation_errors({LONG: 1}, strict)[0]
    # Older drafts name the same keywords; they get the same bounded matcher.
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "pattern": EVIL}
    assert validation_errors(LONG, draft4) and not validation_errors("aa", draft4)


@pytest.mark.fast
def test_patterns_keep_their_json_schema_meaning():
    from slm_api.grammar import validation_errors

    # ECMA-262: \d is an ASCII digit, \uXXXX a code point, $ the very end of the text.
    assert not validation_errors("café", {"pattern": r"^caf\u00e9$"})
    assert validation_errors("\u0661", {"pattern": r"^\d$"})  # ARABIC-INDIC DIGIT ONE
    assert validation_errors("ab\n", {"pattern": "^ab$"})
    assert not validation_errors("xaby", {"pattern": "ab"})  # a search, not a full match
    # `{,5}` is literal text in ECMA-262 and RE2; the grammar agrees, so no reply it allows
    # fails the check afterwards.
    from slm_api.grammar import schema_to_gbnf
    from slm_api.grammar.recognizer import Grammar

    grammar = Grammar(schema_to_gbnf({"type": "string", "pattern": "^a{,5}$"}))
    assert grammar.accepts('"a{,5}"') and not validation_errors("a{,5}", {"pattern": "^a{,5}$"})
    assert not grammar.accepts('"aa"') and validation_errors("aa", {"pattern": "^a{,5}$"})
    # JSON may carry lone surrogates ("\ud800"), which UTF-8 (RE2's input) cannot: still one
    # character each, and never an exception (a 500).
    assert not validation_errors("\ud800", {"pattern": "^.$"})
    assert not validation_errors({"\udc00": 1}, {"patternProperties": {"^.$": {"type": "integer"}},
                                                 "additionalProperties": False})
    assert validation_errors("http://\ud800/", {"format": "iri"})


@pytest.mark.fast
@pytest.mark.parametrize("pattern", ["(?=a)", "(?<!a)b", r"(a)\1", "a{1001}", "(a{100}){100}"])
def test_check_schema_refuses_what_re2_cannot_run(pattern):
    from slm_api.grammar import SchemaError, check_schema

    for schema in ({"pattern": pattern}, {"patternProperties": {pattern: {}}}):
        with pytest.raises(SchemaError, match="linear time"):
            check_schema(schema)


@pytest.mark.fast
def test_super_linear_format_checks_are_replaced():
    from slm_api.grammar import validation_errors

    iri = {"type": "string", "format": "iri"}
    assert not validation_errors("https://例え.jp/パス?q=1#frag", iri)
    assert validation_errors("https://exa mple.com/", iri)  # a space is no IRI
    assert not validation_errors("https://" + "a" * 30_000, iri)  # rfc3987-syntax: minutes
    template = {"type": "string", "format": "uri-template"}
    assert not validation_errors("https://x/{user}/{+path}", template)
    assert validation_errors("{" * 60_000, template)


@pytest.mark.fast
def test_the_shortest_output_is_counted_not_built():
    from slm_api.grammar import SchemaError, schema_to_gbnf

    # Four levels: the shortest reply would be 10**12 bytes; refused from the rule costs.
    schema: dict[str, Any] = {"type": "string", "minLength": 1000}
    for _ in range(3):
        schema = {"type": "array", "minItems": 1000, "items": schema}
    with pytest.raises(SchemaError, match=f"the limit is {MAX_SHORTEST_OUTPUT}") as refused:
        schema_to_gbnf(schema)
    assert refused.value.code == "schema_too_large"
    # Wide is fine where deep is not: 3,000 items of any value fit.
    schema_to_gbnf({"type": "array", "minItems": 3000})


@pytest.mark.fast
def test_number_ranges_expand_to_few_elements():
    from slm_api.grammar import schema_to_gbnf
    from slm_api.grammar.recognizer import Grammar

    # Bounds of +-1e308 wrote one alternative per digit count and per digit: 150,000 elements,
    # which MAX_REPEATS would refuse; the grammar stops at 18 digits as unbounded ones do.
    gbnf = schema_to_gbnf({"type": "number", "minimum": -1.7e308, "maximum": 1.7e308})
    grammar = Grammar(gbnf, max_repeats=1_000)
    assert grammar.accepts("-123456789012345678.5") and not grammar.accepts("1" * 19)


@pytest.mark.fast
def test_character_classes_cost_their_length():
    from slm_api.grammar import schema_to_gbnf
    from slm_api.grammar.gbnf import subtract_ranges
    from slm_api.grammar.recognizer import Grammar

    assert subtract_ranges([(0, 100)], [(10, 20), (15, 30), (50, 50), (99, 200)]) == [
        (0, 9), (31, 49), (51, 98)]
    # 9,000 characters in a negated class took 8.6 s (quadratic); now it is one sweep.
    many = "".join(chr(0x100 + 2 * i) for i in range(9000))
    grammar = Grammar(schema_to_gbnf({"type": "string", "pattern": f"^[^{many}]$"}))
    assert grammar.accepts('"a"') and grammar.accepts('"\u0101"')
    assert not grammar.accepts('"\u0100"') and not grammar.accepts('"\u4660"')
