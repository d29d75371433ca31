"""Budget-aware constrained decoding, without a model: the GBNF recognizer agrees with the
schema cases, and the guide closes every output validly within max_tokens."""

from __future__ import annotations

import json
import string

import pytest
from support.grammar_cases import CASES
from support.oracle import schema_problems

from slm_api.grammar import schema_to_gbnf
from slm_api.grammar.budget import BudgetGuide, Decision, looping
from slm_api.grammar.recognizer import Grammar
from slm_api.grammar.unique import spec_of
from slm_api.grammar.unique_close import completion
from slm_api.grammar.unique_track import UniqueTracker

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

CONVERTIBLE = [c for c in CASES if c.ok]


def _grammar(schema, **kw) -> Grammar:
    return Grammar(schema_to_gbnf(schema, **kw))


@pytest.mark.parametrize("case", CONVERTIBLE, ids=lambda c: c.id)
def test_recognizer_agrees_with_the_cases(case):
    g = _grammar(case.schema)
    for text in case.ok:
        assert g.accepts(text), text
        # From every prefix of a valid text, the shortest completion is valid too.
        for k in range(len(text)):
            rest = g.completion(g.advance(g.start(), text[:k]))
            assert rest is not None and g.accepts(text[:k] + rest), (text[:k], rest)
    for text in case.bad:
        assert not g.accepts(text), text


@pytest.mark.parametrize("case", CONVERTIBLE, ids=lambda c: c.id)
def test_shortest_output_fits_the_schema(case):
    gbnf = schema_to_gbnf(case.schema)
    g = Grammar(gbnf)
    spec = spec_of(gbnf)  # uniqueItems: the shortest output whose items differ
    text = completion(g, g.start(), UniqueTracker(spec) if spec else None)
    assert schema_problems(json.loads(text), case.schema) == [], text


# A character-level "tokenizer" stands in for the model's: token id = code point.
def _tokenize(text: str) -> list[int]:
    return [ord(c) for c in text]


def _piece(token: int) -> bytes:
    return chr(token).encode("utf-8")


PREFERENCE = "x7[{,\": " + string.ascii_letters + string.digits + string.punctuation


def _stubborn_model(g: Grammar, stacks) -> int | None:
    """The allowed character that keeps the output going longest: it never ends by itself.
    None: only the end is allowed (the model would sample end-of-generation)."""
    allowed = [ch for ch in PREFERENCE if g.advance(stacks, ch)]
    going = [ch for ch in allowed if not g.is_complete(g.advance(stacks, ch))]
    if allowed:
        return ord((going or allowed)[0])
    rest = g.completion(stacks)
    return ord(rest[0]) if rest else None


def _generate(g: Grammar, max_tokens: int, model=_stubborn_model, *, steer: bool = False):
    guide = BudgetGuide(g, max_tokens, _tokenize, _piece, steer_loops=steer)
    out: list[int] = []
    while len(out) < max_tokens:
        token = model(g, g.advance(g.start(), "".join(map(chr, out))))
        if token is None:
            break
        decision = guide.on_sampled(token)
        out += ([token] if decision.keep else []) + list(decision.force)
        if decision.end:
            break
    return "".join(map(chr, out)), guide


@pytest.mark.parametrize("case", CONVERTIBLE[::3], ids=lambda c: c.id)
def test_guide_closes_within_every_budget(case):
    g = _grammar(case.schema)
    needed = BudgetGuide(g, 10_000, _tokenize, _piece).needed
    for max_tokens in range(needed, needed + 12):
        text, guide = _generate(g, max_tokens)
        assert len(text) <= max_tokens
        assert g.accepts(text), (max_tokens, text)
        json.loads(text)  # (the schema check is the grammar's job: see test_recognizer_*)


def test_tool_call_markup_is_closed_too():
    schema = {"type": "object", "properties": {"name": {"const": "get_weather"},
              "arguments": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}, "required": ["name", "arguments"]}
    g = _grammar(schema, prefix="<tool_call>", suffix="</tool_call>")
    text, guide = _generate(g, 80)
    assert text.startswith("<tool_call>") and text.endswith("</tool_call>")
    body = json.loads(text[len("<tool_call>"):-len("</tool_call>")])
    assert body["name"] == "get_weather" and isinstance(body["arguments"]["city"], str)
    assert len(text) <= 80 and guide.closings == 1


def test_budget_below_the_shortest_output_leaves_the_guide_passive():
    g = _grammar({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
    guide = BudgetGuide(g, 5, _tokenize, _piece)
    assert guide.needed == len('{"a":""}') and not guide.active
    text, _ = _generate(g, 5)
    assert text == '{"a":' or len(text) == 5


def test_a_loop_inside_a_string_is_steered_to_its_close():
    schema = {"type": "object", "properties": {"note": {"type": "string"},
              "n": {"type": "integer"}}, "required": ["note", "n"]}
    g = _grammar(schema)

    def parrot(g, stacks):  # says "la" forever once inside the string
        allowed = [ch for ch in 'l{"notea:,n1}' if g.advance(stacks, ch)]
        return ord(allowed[0]) if allowed else None

    text, guide = _generate(g, 200, parrot, steer=True)
    data = json.loads(text)
    assert guide.steers >= 1 and guide.closings == 0
    assert set(data["note"]) <= {"l", "a"} and len(data["note"]) < 40


def test_looping():
    assert looping([5] * 16) and not looping([5] * 15)
    assert looping([1, 2, 3, 4] * 4) and not looping([1, 2, 3, 4] * 3)
    assert looping(list(range(16)) * 3) and not looping(list(range(17)) * 3)
    assert not looping([1, 2, 3])


def test_trailing_whitespace_after_a_whole_value_ends_the_output():
    g = _grammar({"type": "object"})
    guide = BudgetGuide(g, 50, _tokenize, _piece)
    for ch in "{}":
        assert guide.on_sampled(ord(ch)).keep
    # The object is whole: a newline (only trailing whitespace may follow) ends it.
    assert guide.on_sampled(ord("\n")) == Decision(keep=False, end=True)
