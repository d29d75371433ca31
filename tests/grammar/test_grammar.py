"""The converter's grammars, run through both grammar backends the server samples with (no model
weights): llguidance's masks (the default) and llama.cpp's grammar sampler (its fallback)."""

from __future__ import annotations

import json

import pytest
from support.grammar_cases import CASES, OVERAPPROX, REFUSED
from support.grammar_engine import GrammarEngine, MaskEngine

from slm_api.grammar import SchemaError, check_schema, schema_to_gbnf, validation_errors


@pytest.fixture(scope="session")
def engine(model_path):
    eng = GrammarEngine(model_path)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def masks(engine):
    eng = MaskEngine(engine)
    yield eng
    eng.close()


@pytest.fixture(params=["llguidance", "llama.cpp"])
def backend(request, engine):
    return request.getfixturevalue("masks") if request.param == "llguidance" else engine


def test_enough_cases():
    assert len(CASES) >= 100
    assert all(c.ok and c.bad for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(backend, case):
    gbnf = schema_to_gbnf(case.schema)
    backend.check(gbnf)
    for text in case.ok:
        # The test data itself must be right: every "ok" text fits the schema.
        assert validation_errors(json.loads(text), case.schema) == [], text
        assert backend.accepts(gbnf, text), f"rejected {text!r}\n{gbnf}"
    for text in case.bad:
        assert not backend.accepts(gbnf, text), f"accepted {text!r}\n{gbnf}"


@pytest.mark.parametrize("id,schema,param", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(id, schema, param):
    with pytest.raises(SchemaError) as info:
        schema_to_gbnf(schema)
    assert info.value.status == 400
    assert info.value.param == param, info.value.message


@pytest.mark.parametrize("id,schema,text", OVERAPPROX, ids=[r[0] for r in OVERAPPROX])
def test_overapprox_caught_by_check(engine, id, schema, text):
    gbnf = schema_to_gbnf(schema)
    assert engine.accepts(gbnf, text)
    assert validation_errors(json.loads(text), schema)


def test_prefix_suffix(engine):
    gbnf = schema_to_gbnf({"type": "integer"}, prefix="<tool_call>", suffix="</tool_call>")
    assert engine.accepts(gbnf, "<tool_call>42</tool_call>")
    assert engine.accepts(gbnf, "<tool_call>\n42\n</tool_call>")
    assert not engine.accepts(gbnf, "42")
    assert not engine.accepts(gbnf, "<tool_call>42")


def test_check_schema_draft7_spellings():
    check_schema(
        {"definitions": {"a": {"type": "integer"}}, "items": [{"$ref": "#/definitions/a"}]}
    )
    check_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"})
    with pytest.raises(SchemaError):
        check_schema({"type": "object", "properties": {"a": {"minLength": -1}}})


def test_validation_errors_formats():
    for fmt, bad in [
        ("date", "2024-13-01"),
        ("time", "25:00:00Z"),
        ("uuid", "xyz"),
        ("date-time", "yesterday"),
        ("email", "nobody"),
    ]:
        errs = validation_errors(bad, {"type": "string", "format": fmt})
        assert errs and fmt in errs[0] or "format" in errs[0], (fmt, errs)
    assert validation_errors({"a": 1}, {"type": "object", "required": ["b"]}) == [
        "(root): 'b' is a required property"
    ]


def _deep(n: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(n):
        schema = {"type": "array", "items": schema}
    return schema


ODD = [
    _deep(40),
    {"enum": [f"v{i}" for i in range(300)]},
    {
        "type": "object",
        "properties": {"\x01\n\t": {"type": "null"}, "a\u2028b": {}},
        "required": ["\x01\n\t"],
        "additionalProperties": {"type": "integer"},
    },  # fmt: skip
    {"type": "string", "minLength": 5000},
    {"type": "string", "maxLength": 100000},
    {"type": "array", "minItems": 3000},
    {"type": "integer", "minimum": -(10**30), "maximum": 10**30},
    {"type": "number", "minimum": 1e-9, "maximum": 1e300},
    {"type": "string", "pattern": "(a|)+"},
    {"type": "string", "pattern": r"[\]\[\\^-]"},
    {"const": "\u0000\u001f\u007f\ud7ff\U0010ffff"},
    {"type": "string", "format": "binary"},  # unknown formats are annotations
]


@pytest.mark.parametrize("schema", ODD, ids=[str(i) for i in range(len(ODD))])
def test_odd_schemas_parse(engine, schema):
    engine.check(schema_to_gbnf(schema))


def test_too_deep_is_400():
    with pytest.raises(SchemaError):
        schema_to_gbnf(_deep(5000))


def test_wide_escapes_reach_llguidance_as_characters():
    # llguidance's gbnf_to_lark strips the zeros of \u00E9 into an escape nothing reads; the
    # server writes such escapes as characters first. An escaped backslash before "u" is text.
    from slm_api.engine.masks import lark_safe

    gbnf = r'root ::= "\u00E9\\u00E9" [\x5D-\U0010FFFF] "\u0022" [\uD800]'
    assert lark_safe(gbnf) == ('root ::= "é' + r'\\u00E9" [\x5D-' + chr(0x10FFFF) +
                               r'] "\x22" [\uD800]')
