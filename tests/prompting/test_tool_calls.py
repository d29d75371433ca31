"""Parsing tool calls out of replies (whole and streamed) and the schema of a forced call."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest

from slm_api.errors import InvalidRequest
from slm_api.prompting.tool_calls import call_schema, forced_functions
from slm_api.prompting.tool_markup import HERMES
from slm_api.prompting.tool_stream import ToolCallDeltas, assemble

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

parse_tool_calls = HERMES.parse

ID = re.compile(r"^call_[0-9a-f]{24}$")


def tool(name: str, parameters: dict | None = None) -> dict:
    fn: dict = {"name": name, "description": f"{name} tool"}
    if parameters is not None:
        fn["parameters"] = parameters
    return {"type": "function", "function": fn}


WEATHER = tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False})
TIME = tool("get_time")


# -- parse_tool_calls ----------------------------------------------------------------------


def test_single_call():
    content, calls = parse_tool_calls(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    assert content is None
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].arguments == '{"city":"Paris"}'
    assert ID.match(calls[0].id)
    assert calls[0].to_openai()["function"] == {"name": "get_weather",
                                                 "arguments": '{"city":"Paris"}'}


def test_several_calls_with_text_around_them():
    text = (
        "Let me check.\n<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n"
        "<tool_call>  {\"name\": \"b\", \"arguments\": {\"x\": [1, 2]}}  </tool_call> done"
    )
    content, calls = parse_tool_calls(text)
    assert [c.name for c in calls] == ["a", "b"]
    assert calls[1].arguments == '{"x":[1,2]}'
    assert calls[0].id != calls[1].id
    assert content == "Let me check.\n\n done"


def test_missing_closing_tag_at_end():
    content, calls = parse_tool_calls('<tool_call>{"name": "a", "arguments": {"q": "é"}}\n')
    assert content is None
    assert calls[0].arguments == '{"q":"é"}'


def test_arguments_as_json_string_and_missing():
    _, calls = parse_tool_calls(
        '<tool_call>{"name": "a", "arguments": "{\\"k\\": 1}"}</tool_call>'
        '<tool_call>{"name": "b"}</tool_call>'
    )
    assert [(c.name, c.arguments) for c in calls] == [("a", '{"k":1}'), ("b", "{}")]


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "a", "arguments": {"k": 1}',  # truncated JSON
        "not json",
        '["a"]',
        '{"arguments": {}}',  # no name
        '{"name": "a", "arguments": "not json"}',
        '{"name": "a", "arguments": [1]}',
    ],
)
def test_invalid_call_stays_content(body: str):
    text = f"Hi <tool_call>{body}</tool_call>"
    assert parse_tool_calls(text) == (text, [])


def test_invalid_call_kept_next_to_valid_one():
    text = '<tool_call>oops</tool_call><tool_call>{"name": "a"}</tool_call>'
    content, calls = parse_tool_calls(text)
    assert [c.name for c in calls] == ["a"]
    assert content == "<tool_call>oops</tool_call>"


def test_closing_tag_inside_an_argument_does_not_cut_the_call():
    text = '<tool_call>{"name": "echo", "arguments": {"s": "a </tool_call> b"}}</tool_call> ok'
    content, calls = parse_tool_calls(text)
    assert json.loads(calls[0].arguments) == {"s": "a </tool_call> b"}
    assert content == "ok"


def test_text_between_json_and_closing_tag_makes_block_invalid():
    text = '<tool_call>{"name": "a"} and more</tool_call>'
    assert parse_tool_calls(text) == (text, [])


def test_plain_text_is_unchanged():
    assert parse_tool_calls("  just text\n") == ("  just text\n", [])
    assert parse_tool_calls("") == ("", [])


# -- ToolCallDeltas ------------------------------------------------------------------------


def run_stream(pieces: list[str], cut: bool = False) -> tuple[list[dict], tuple]:
    stream = ToolCallDeltas()
    deltas = [d for p in pieces for d in stream.feed(p)] + stream.finish(cut)
    return deltas, assemble(deltas)


def split_randomly(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def test_stream_plain_text_flows_through():
    deltas, _ = run_stream(["Hello", " wor", "ld."])
    assert deltas == [{"content": "Hello"}, {"content": " wor"}, {"content": "ld."}]


def test_stream_holds_possible_tag_start_then_releases_it():
    stream = ToolCallDeltas()
    assert stream.feed("a <tool") == [{"content": "a"}]
    assert stream.feed("s are fun") == [{"content": " <tools are fun"}]
    assert stream.finish(cut=False) == []


def test_call_streams_name_first_then_argument_fragments():
    stream = ToolCallDeltas()
    assert stream.feed("Checking.\n<tool_") == [{"content": "Checking."}]
    assert stream.feed('call>\n{"name": "get_weather", "argu') == []
    start, first = stream.feed('ments": {"city"')
    entry = start["tool_call"]
    assert entry["index"] == 0 and ID.match(entry["id"]) and entry["type"] == "function"
    assert entry["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [first] + [d for p in [': "Pa', 'ris", ', '"days": 2}', "}\n</tool_call>"]
                           for d in stream.feed(p)]
    assert [f["tool_call"] for f in fragments] == [
        {"index": 0, "function": {"arguments": text}}
        for text in ['{"city"', ':"Pa', 'ris",', '"days":2}']
    ]
    assert stream.finish(cut=False) == []
    assert stream.calls[0].arguments == '{"city":"Paris","days":2}'


def test_a_call_cut_by_max_tokens_keeps_its_arguments_and_no_markup():
    text = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'
    _, (content, calls) = run_stream([text], cut=True)
    assert content == "Sure." and [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city":"Pa')]
    # Cut before the name is complete: no call, and no markup in the content either.
    _, (content, calls) = run_stream(['<tool_call>\n{"name": "get_w'], cut=True)
    assert content == "" and calls == []


def test_stream_bad_call_is_released_as_content_at_end():
    _, (content, calls) = run_stream(["Hi ", "<tool_call>", "{oops", "</tool_call>"])
    assert calls == [] and content == "Hi <tool_call>{oops</tool_call>"


@pytest.mark.parametrize(
    "text",
    [
        "Just a plain answer with <b>tags</b> and < signs.",
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b"}',
        '<tool_call>{"arguments": {"k": [1, 2]}, "name": "c"}</tool_call> after',
        '<tool_call>{"name": "a", "arguments": {"s": "x </tool_call> y"}}</tool_call>',
        "Broken <tool_call>{not json</tool_call> tail",
        "ends with <tool_ca",
    ],
)
def test_stream_agrees_with_whole_text(text: str):
    rng = random.Random(text)
    want_content, want_calls = parse_tool_calls(text)
    _, whole = run_stream([text])
    assert [(c.name, json.loads(c.arguments)) for c in whole[1]] == [
        (c.name, json.loads(c.arguments)) for c in want_calls]
    assert (whole[0] or "").strip() == (want_content or "").strip()
    for _ in range(30):
        _, (content, calls) = run_stream(split_randomly(text, rng))
        assert (content, [(c.name, c.arguments) for c in calls]) == (
            whole[0], [(c.name, c.arguments) for c in whole[1]])


# -- call_schema --------------------------------------------------------------------------


def call(name: str, arguments: dict) -> dict:
    return {"name": name, "arguments": arguments}


def tool_call_schema(tools: list | None, choice: object) -> dict | None:
    """The schema a reply to (tools, tool_choice) must fit, as the Hermes grammar builds it."""
    fns = forced_functions(tools, choice)
    return None if fns is None else call_schema(fns)


def test_schema_required_allows_any_tool():
    schema = tool_call_schema([WEATHER, TIME], "required")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert len(schema["anyOf"]) == 2
    jsonschema.validate(call("get_weather", {"city": "Paris"}), schema)
    jsonschema.validate(call("get_time", {}), schema)
    for bad in (
        call("get_weather", {}),  # required city missing
        call("get_weather", {"city": 3}),
        call("nope", {}),
        {"name": "get_time"},
        call("get_time", []),  # arguments are always an object
        call("get_time", {"tz": "UTC"}),  # a tool without parameters takes none
        {**call("get_time", {}), "extra": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_schema_named_function_only():
    schema = tool_call_schema([WEATHER, TIME], {"type": "function",
                                                "function": {"name": "get_weather"}})
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["name"] == {"const": "get_weather"}
    assert schema["properties"]["arguments"] == WEATHER["function"]["parameters"]
    jsonschema.validate(call("get_weather", {"city": "Oslo"}), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call("get_time", {}), schema)
    # The schema a constrained reply follows parses back into the same call.
    reply = "<tool_call>" + json.dumps(call("get_weather", {"city": "Oslo"})) + "</tool_call>"
    assert parse_tool_calls(reply)[1][0].arguments == '{"city":"Oslo"}'


@pytest.mark.parametrize("choice", ["auto", "none", None])
def test_schema_none_when_model_may_choose(choice):
    assert tool_call_schema([WEATHER], choice) is None


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ([WEATHER], {"type": "function", "function": {"name": "missing"}}),
        ([], "required"),
        (None, "required"),
        ([WEATHER], "sometimes"),
        ([WEATHER], {"type": "function"}),
    ],
)
def test_schema_bad_tool_choice(tools, choice):
    with pytest.raises(InvalidRequest) as err:
        tool_call_schema(tools, choice)
    assert err.value.param == "tool_choice" and err.value.status == 400
