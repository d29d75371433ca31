"""uniqueItems without a model (issue 41): which arrays a schema marks, the tracker that refuses
a duplicate item at the byte that completes it, the up-front refusal of arrays that can never be
unique, and the budget guide's closings that keep items distinct."""

from __future__ import annotations

import json

import pytest
from support.grammar_cases import UNIQUE_CASES
from support.oracle import schema_problems

from slm_api.grammar import SchemaError, schema_to_gbnf
from slm_api.grammar.budget import BudgetGuide
from slm_api.grammar.recognizer import Grammar
from slm_api.grammar.unique import DIRECTIVE, spec_of, split
from slm_api.grammar.unique_close import completion
from slm_api.grammar.unique_track import UniqueTracker
from slm_api.prompting.reasoning import THINK
from slm_api.prompting.tool_markup import HERMES

pytestmark = pytest.mark.fast

STRINGS = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}


def tracker(schema, **kw) -> UniqueTracker:
    spec = spec_of(schema_to_gbnf(schema, **kw))
    assert spec is not None
    return UniqueTracker(spec)


def refused_at(schema, text: str, **kw) -> int | None:
    """The index of the byte of `text` at which the tracker sees a duplicate, or None."""
    t = tracker(schema, **kw)
    for i, b in enumerate(text.encode()):
        if not t.probe(bytes([b])):
            return i
        t.feed(bytes([b]))
    return None


def test_a_duplicate_string_is_refused_at_its_closing_quote():
    text = '["a", "b", "a"]'
    assert refused_at(STRINGS, text) == text.rindex('"')
    assert refused_at(STRINGS, '["a", "b", "ab", "ba"]') is None


@pytest.mark.parametrize("text,at", [
    ("[1, 2, 1]", 8),  # a number is whole at the byte after it
    ("[1, 1.0]", 7),  # equal as JSON Schema compares: 1 == 1.0
    ("[10, 1e1 ]", 8),
    ("[1, 12, 123]", None),
    ("[true, 1, false, 0, null]", None),  # true is not 1
    ("[true, false, true]", 17),  # at the last letter
    ('[{"a": 1, "b": 2}, {"b": 2, "a": 1}]', 34),  # key order ignored
    ('[{"a": [1, 2]}, {"a": [2, 1]}]', None),
    ("[[1, 2], [1, 2]]", 14),
    ("[[], {}, [[]], \"\"]", None),
    (r'["\u0061", "a"]', 13),  # the same string, escaped or not
])
def test_items_compare_as_json_schema_does(text, at):
    assert refused_at({"type": "array", "uniqueItems": True}, text) == at


def test_arrays_without_the_keyword_are_left_alone():
    schema = {"type": "object", "properties": {"plain": {"type": "array"}, "tags": STRINGS}}
    assert refused_at(schema, '{"plain": [1, 1, "x", "x"], "tags": ["x", "y"]}') is None
    assert refused_at(schema, '{"plain": [1], "tags": ["x", "x"]}') is not None
    # Inner arrays of a unique array's items are not unique themselves.
    nested = {"type": "array", "uniqueItems": True, "items": {"type": "array"}}
    assert refused_at(nested, "[[1, 1], [2, 2]]") is None


def test_a_schema_without_the_keyword_gets_the_grammar_it_always_had():
    gbnf = schema_to_gbnf({"type": "array", "items": {"type": "string"}})
    assert DIRECTIVE not in gbnf and spec_of(gbnf) is None
    with_keyword = schema_to_gbnf(STRINGS)
    assert split(with_keyword)[0] == schema_to_gbnf({"type": "array", "items": {"type": "string"}})


def test_keyword_found_through_ref_anyof_allof_and_prefix_items():
    schema = {
        "$defs": {"kw": STRINGS},
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/kw"},
            "b": {"anyOf": [{"type": "null"}, STRINGS]},
            "c": {"allOf": [{"type": "array"}, {"uniqueItems": True}]},
            "d": {"type": "array", "prefixItems": [{"type": "integer"}, STRINGS]},
            "e": {"type": "object", "additionalProperties": STRINGS},
        },
    }
    for key, text in [("a", '["x", "x"]'), ("b", '["x", "x"]'), ("c", "[1, 1]"),
                      ("d", '[1, ["x", "x"]]'), ("e", '{"any": ["x", "x"]}')]:
        assert refused_at(schema, f'{{"{key}": {text}}}') is not None, key


def test_recursive_schema():
    schema = {"$defs": {"node": {"type": "object", "properties": {
        "tags": STRINGS, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"}
    assert refused_at(schema, '{"kids": [{"kids": [{"tags": ["q", "q"]}]}]}') is not None
    assert refused_at(schema, '{"kids": [{"tags": ["q"]}, {"tags": ["q"]}]}') is None


def test_tool_call_markup_and_thinking_come_before_the_json():
    call = {"type": "object", "properties": {"name": {"const": "f"},
            "arguments": {"type": "object", "properties": {"tags": STRINGS}}}}
    gbnf = HERMES.grammar([{"name": "f", "parameters": call["properties"]["arguments"]}])
    assert spec_of(gbnf) is not None
    for inside, head in [(True, 'no ["x", "x"] here\n</think>\n\n'),
                         (False, '<think>["x","x"]</think>'), (False, "")]:
        t = UniqueTracker(spec_of(THINK.think_first(gbnf, inside)))
        t.feed(f'{head}<tool_call>{{"name": "f", "arguments": {{"tags": ["x"'.encode())
        assert t.probe(b', "y"]') and not t.probe(b', "x"'), (inside, head)


@pytest.mark.parametrize("items,need", [
    ({"enum": ["a", "b", "c"]}, 4),
    ({"type": "string", "enum": ["a", "b", "a"]}, 3),
    ({"const": 1}, 2),
    ({"type": "boolean"}, 3),
    ({"type": ["boolean", "null"]}, 4),
    ({"type": "integer", "minimum": 1, "maximum": 5}, 6),
    ({"anyOf": [{"const": "x"}, {"type": "boolean"}]}, 4),
    ({"type": "object", "additionalProperties": False, "required": ["on"],
      "properties": {"on": {"type": "boolean"}, "n": {"enum": [1, 2]}}}, 7),
    ({"$ref": "#/$defs/color"}, 3),
])
def test_arrays_that_can_never_be_unique_are_refused(items, need):
    schema = {"$defs": {"color": {"enum": ["red", "green"]}},
              "type": "array", "items": items, "uniqueItems": True, "minItems": need}
    with pytest.raises(SchemaError) as err:
        schema_to_gbnf(schema)
    assert err.value.param == "uniqueItems" and "uniqueItems" in str(err.value)
    schema_to_gbnf({**schema, "minItems": need - 1})  # one fewer fits


@pytest.mark.parametrize("case", UNIQUE_CASES, ids=lambda c: c.id)
def test_shortest_and_closing_completions_keep_items_distinct(case):
    gbnf = schema_to_gbnf(case.schema)
    g, spec = Grammar(gbnf), spec_of(gbnf)
    for text in ["", *case.ok]:
        # From every prefix of a valid text (and from nothing), the completion fits the
        # schema, duplicates included: the recognizer alone would repeat the cheapest item.
        for k in range(len(text) + 1):
            t = UniqueTracker(spec)
            t.feed(text[:k].encode())
            rest = completion(g, g.advance(g.start(), text[:k]), t)
            assert rest is not None, text[:k]
            assert schema_problems(json.loads(text[:k] + rest), case.schema) == [], rest


def test_budget_guide_closes_a_unique_array_without_repeating():
    gbnf = schema_to_gbnf({**STRINGS, "minItems": 4})
    g = Grammar(gbnf)
    out = ""
    guide = BudgetGuide(g, 24, lambda s: [ord(c) for c in s], lambda t: chr(t).encode(),
                        unique=spec_of(gbnf))
    # The model's first items are the cheapest fillers; then it talks on in the third.
    for ch in '["", "a", "' + "b" * 30:
        decision = guide.on_sampled(ord(ch))
        out += (ch if decision.keep else "") + "".join(map(chr, decision.force))
        if decision.end:
            break
    data = json.loads(out)
    assert guide.closings == 1 and len(out) <= 24
    assert len(data) >= 4 and len(set(data)) == len(data), out


@pytest.mark.parametrize("items,text,at", [
    # An enum value half written that only a taken value can finish: refused at its first
    # byte that rules out every free value, while the model can still pick another.
    ({"enum": ["python", "rust"]}, '["python", "p', 12),
    ({"enum": ["python", "rust"]}, '["python", "rust",', 17),  # nothing left for a third
    ({"type": "integer", "minimum": 1, "maximum": 12}, "[1, 12, 1", None),  # 10, 11 remain
    ({"type": "integer", "minimum": 1, "maximum": 12}, "[1, 10, 11, 12, 1", 16),
    ({"type": "integer", "minimum": 1, "maximum": 2}, "[1, 2, 1", 5),
    ({"type": "object", "required": ["lang", "stars"], "additionalProperties": False,
      "properties": {"lang": {"enum": ["py", "rs"]}, "stars": {"type": "integer",
                                                              "minimum": 1, "maximum": 2}}},
     '[{"lang": "py", "stars": 2}, {"lang": "py", "stars": 2', 53),
    ({"type": "string"}, '["a", "a', None),  # a string can always go on
])
def test_an_item_that_can_only_end_as_a_repeat_is_refused_early(items, text, at):
    assert refused_at({"type": "array", "uniqueItems": True, "items": items}, text) == at


class _AnyToken:
    """A grammar that takes every token: what is left out is the uniqueness check's doing."""

    def __init__(self, n: int) -> None:
        self.n = n

    def allows(self, token: int) -> bool:
        return True

    def allowed(self):
        import numpy as np

        return np.ones(self.n, dtype=bool)

    def accept(self, token: int) -> bool:
        return True

    def valid_prefix(self, tokens: list[int]) -> int:
        return len(tokens)

    def forced(self) -> list[int]:
        return []

    def close(self) -> None:
        pass


PIECES = [b'"', b'a"', b"bc", b"bd", b"bcd", b'bc"', b'a",', b'a", ', b'b"', b'ab"', b'"]',
          b'a"]', b",", b" ", b"a", b"b",
          b'\\u0061"', b'\\"', b"[", b"]", b"1", b"1,", b"{", b"}", b'":', b'"x', b'a"x',
          "é\"".encode(), b"\xc3", b'\xa9"', b"true", b"e", b"tru"]


@pytest.mark.parametrize("schema,written,refuses", [
    (STRINGS, '["a", "ab", "é", "', True),
    (STRINGS, '["a", "', True),
    (STRINGS, '["a", "\\u00', False),  # an escape begun: every token walked
    (STRINGS, '["", "x', False),
    ({**STRINGS, "items": {"type": "string", "maxLength": 3}}, '["abc", "abd", "a', True),
    ({"type": "array", "uniqueItems": True}, '[1, true, "a", tru', True),
    ({"type": "array", "uniqueItems": True}, "[1, 2, 1", True),
    ({"type": "array", "items": {"enum": ["a", "ab", "b"]}, "uniqueItems": True}, '["a", "',
     True),
])
def test_the_mask_refuses_exactly_the_tokens_a_walk_refuses(schema, written, refuses):
    from slm_api.engine.constraint import UniqueConstraint, VocabBytes

    pieces = [*PIECES, *(p.encode() for p in ["ab", "é", "b"])]
    vocab = VocabBytes(len(pieces), pieces.__getitem__)
    c = UniqueConstraint(_AnyToken(len(pieces)), spec_of(schema_to_gbnf(schema)), vocab)
    c.tracker.feed(written.encode())
    mask = c.allowed()
    # After a number only what JSON lets follow one is asked (the grammar allows no other).
    asked = [not written[-1].isdigit() or p[:1] in b"0123456789 ,]}.eE" for p in pieces]
    walked = [c.tracker.probe(p) for p in pieces]
    assert [bool(m) for m, a in zip(mask, asked, strict=True) if a] == \
        [w for w, a in zip(walked, asked, strict=True) if a]
    assert [c.allows(t) for t in range(len(pieces))] == walked
    assert (not all(walked)) == refuses


@pytest.mark.parametrize("text,at", [
    # The last member of an object item ends with a space: only `}` could follow, a repeat.
    ('[{"k": "a", "v": 1}, {"k": "a", "v": 1 ', 38),
    ('[{"k": "a", "v": 1}, {"k": "a", "v": 12 ', None),
    ('[{"k": "a", "v": 1}, {"k": "a", "v": 1, ', None),  # another member may follow
    ("[[1, 2], [1, 2 ", 14),
])
def test_a_member_that_leaves_only_a_repeating_close_is_refused(text, at):
    schema = {"type": "array", "uniqueItems": True}
    assert refused_at(schema, text) == at


def test_a_string_item_at_its_max_length_may_not_become_a_repeat():
    schema = {"type": "array", "uniqueItems": True, "items": {"type": "string", "maxLength": 3}}
    text = '["abc", "ab'
    assert refused_at(schema, text + 'c') == len(text)  # "abc" could only close
    assert refused_at(schema, text + 'd"') is None
    assert refused_at({**schema, "items": {"type": "string"}}, text + 'c') is None


def test_a_number_item_at_the_grammars_digit_cap_may_not_become_a_repeat():
    schema = {"type": "array", "uniqueItems": True, "items": {"type": "integer"}}
    text = "[123456789012345678, 12345678901234567"
    assert refused_at(schema, text + "8") == len(text)  # 18 digits: only an end may follow
    assert refused_at(schema, text + "9,") is None
    assert refused_at(schema, "[12, 1") is None  # short: it may still grow
