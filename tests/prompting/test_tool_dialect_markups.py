"""Qwen3-Coder's XML calls and GPT-OSS's harmony channels, with the models' own chat templates
(tests/support/templates/, whose sources their files cite): detected from the template,
parsed whole and streamed in pieces of any size into the same calls, reasoning split out of
harmony replies, and the grammar of a forced call writing what the parser reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_api.grammar.recognizer import Grammar
from slm_api.prompting.chat_format import formatter_for
from slm_api.prompting.reasoning import split_reasoning
from slm_api.prompting.tool_limits import one_call_limit, one_call_stops
from slm_api.prompting.tool_markup import HARMONY, QWEN3_CODER
from slm_api.prompting.tool_stream import assemble
from slm_api.prompting.tool_xml import XmlCallDeltas, typed_value

pytestmark = pytest.mark.fast  # needs no model

TEMPLATES = Path(__file__).parent.parent / "support" / "templates"
QWEN3_CODER_TEMPLATE = (TEMPLATES / "qwen3-coder.jinja").read_text()
GPT_OSS_TEMPLATE = (TEMPLATES / "gpt-oss.jinja").read_text()

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "detail": {"type": "object"},
        "hourly": {"type": "boolean"}},
        "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                   "required": ["tz"]}}}
TOOLS = [WEATHER, TIME]


def xml_call(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def formatter(template: str):
    return formatter_for({"tokenizer.chat_template": template}, bos="", eos="")


def in_pieces(stream, text: str, size: int) -> list[dict]:
    deltas = []
    for i in range(0, len(text), size):
        deltas += stream.feed(text[i:i + size])
    return deltas + stream.finish(False)


def calls_of(reply: tuple) -> list[tuple[str, dict]]:
    return [(c.name, json.loads(c.arguments)) for c in reply[1]]


# -- Qwen3-Coder ---------------------------------------------------------------------------


def test_qwen3_coder_template_is_detected_and_renders_past_calls_in_its_markup():
    chat = formatter(QWEN3_CODER_TEMPLATE)
    assert chat.tool_markup is QWEN3_CODER
    prompt = chat.render([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}], tools=TOOLS)
    assert "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n" in prompt
    assert "<parameter=days>\n2\n</parameter>" in prompt
    assert "<tools>" in prompt and '"name": "get_weather"' not in prompt  # its own tools block


def test_values_are_typed_by_the_tools_schema():
    reply = "Checking.\n" + xml_call("get_weather", city="Paris", unit="celsius", days="3",
                                     detail="{'wind': True, 'uv': [1, 2]}", hourly="True")
    content, calls = formatter(QWEN3_CODER_TEMPLATE).split_reply(reply, False, TOOLS)
    assert content == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {
        "city": "Paris", "unit": "celsius", "days": 3,
        "detail": {"wind": True, "uv": [1, 2]}, "hourly": True})]


@pytest.mark.parametrize(("raw", "schema", "value"), [
    ("42", {"type": "string"}, "42"),  # a string stays a string, digits or not
    ("42", {}, "42"),  # untyped: as written
    ("4x", {"type": "integer"}, "4x"),  # not its type: the text, not a guess
    ("2.50", {"type": "number"}, 2.5),
    ("1e3", {"type": "number"}, 1000.0),
    ("null", {"type": ["integer", "null"]}, None),
    ("[1, 2]", {"type": "array"}, [1, 2]),
    ("NaN", {"type": "number"}, "NaN"),  # JSON has no NaN
    ("  multi\nline  ", {"type": "string"}, "  multi\nline  "),
])
def test_typed_value(raw, schema, value):
    assert typed_value(raw, schema) == value


@pytest.mark.parametrize("size", [1, 2, 5, 13, 10_000])
def test_xml_stream_in_any_pieces_reassembles_to_the_whole_reply(size):
    reply = ("I'll look both up.\n" + xml_call("get_weather", city="Sao\nPaulo", unit="celsius")
             + "\n" + xml_call("get_time", tz="America/Sao_Paulo"))
    deltas = in_pieces(XmlCallDeltas(TOOLS), reply, size)
    assert calls_of(assemble(deltas)) == [
        ("get_weather", {"city": "Sao\nPaulo", "unit": "celsius"}),
        ("get_time", {"tz": "America/Sao_Paulo"})]
    assert assemble(deltas)[0] == "I'll look both up."
    # Markup never reaches the content, and every fragment is a piece of the arguments.
    assert not any("<" in d.get("content", "") for d in deltas)
    starts = [d["tool_call"] for d in deltas if "id" in d.get("tool_call", {})]
    assert [s["function"]["arguments"] for s in starts] == ["", ""]


def test_text_that_only_looks_like_a_call_stays_content():
    reply = "Write <function= name> in your code, or <tool_call> alone."
    content, calls = assemble(in_pieces(XmlCallDeltas(TOOLS), reply, 3))
    assert (content, calls) == (reply, [])


def test_a_call_cut_by_max_tokens_keeps_the_parameters_written():
    reply = xml_call("get_weather", city="Paris", unit="celsius")
    cut = reply[:reply.index("celsius") + 3]
    stream = XmlCallDeltas(TOOLS)
    content, calls = assemble(stream.feed(cut) + stream.finish(True))
    assert content is None and json.loads(calls[0].arguments) == {"city": "Paris", "unit": "cel"}


QWEN_GOOD = xml_call("get_weather", city="Paris", unit="fahrenheit", days="3")
QWEN_BAD = [
    xml_call("get_weather", city="Paris"),  # a required parameter missing
    xml_call("get_weather", city="Paris", unit="kelvin"),  # not in the enum
    xml_call("get_weather", city="Paris", unit="celsius", days="three"),  # not an integer
    xml_call("get_weather", city="x" * 41, unit="celsius"),  # past maxLength
    xml_call("get_weather", city="a</parameter>", unit="celsius"),  # markup in a value
    xml_call("get_weather", unit="celsius", city="Paris"),  # parameters out of order
    xml_call("get_lunch", city="Paris", unit="celsius"),  # not a tool
]


def test_forced_xml_call_grammar_writes_only_what_the_parser_reads():
    grammar = QWEN3_CODER.grammar([WEATHER["function"], TIME["function"]])
    assert Grammar(grammar).accepts(QWEN_GOOD)
    assert Grammar(grammar).accepts(xml_call("get_time", tz="UTC"))
    for bad in QWEN_BAD:
        assert not Grammar(grammar).accepts(bad), bad
    content, calls = formatter(QWEN3_CODER_TEMPLATE).split_reply(QWEN_GOOD, False, TOOLS)
    assert content is None
    assert calls_of((content, calls)) == [
        ("get_weather", {"city": "Paris", "unit": "fahrenheit", "days": 3})]


# -- GPT-OSS harmony -----------------------------------------------------------------------

HARMONY_CALL = ("<|start|>assistant<|channel|>commentary to=functions.get_weather "
                '<|constrain|>json<|message|>{"city": "Paris", "unit": "celsius"}')


def harmony_parts(text: str, size: int = 10_000, tools=TOOLS):
    """reasoning, content and calls of a harmony reply streamed in `size` pieces, through
    the same two splitters the conversation core chains."""
    chat = formatter(GPT_OSS_TEMPLATE)
    thinking, calls = chat.reasoning.splitter(), chat.tool_stream(tools)
    deltas = []
    for i in range(0, len(text), size):
        for d in thinking.feed(text[i:i + size]):
            deltas += calls.feed(d["content"]) if "content" in d else [d]
    for d in thinking.finish():
        deltas += calls.feed(d["content"]) if "content" in d else [d]
    deltas += calls.finish(False)
    reasoning = "".join(d.get("reasoning", "") for d in deltas)
    content, found = assemble([d for d in deltas if "reasoning" not in d])
    return reasoning, content, [(c.name, json.loads(c.arguments)) for c in found]


def test_gpt_oss_template_is_detected_with_its_stops():
    chat = formatter(GPT_OSS_TEMPLATE)
    assert chat.tool_markup is HARMONY and chat.reasoning.name == "harmony"
    # <|end|> closes the analysis message, not the turn: generation must go on past it.
    assert "<|end|>" not in chat.stop and {"<|return|>", "<|call|>"} <= set(chat.stop)
    prompt = chat.render([{"role": "user", "content": "Weather?"}], tools=TOOLS,
                         template_kwargs={"reasoning_effort": "low"})
    assert "Reasoning: low" in prompt and "type get_weather = " in prompt
    assert prompt.endswith("<|start|>assistant")


@pytest.mark.parametrize("size", [1, 3, 7, 10_000])
def test_harmony_analysis_is_reasoning_and_commentary_a_call(size):
    reply = "<|channel|>analysis<|message|>User wants weather. Call it.<|end|>" + HARMONY_CALL
    assert harmony_parts(reply, size) == (
        "User wants weather. Call it.", None,
        [("get_weather", {"city": "Paris", "unit": "celsius"})])


@pytest.mark.parametrize("size", [1, 4, 10_000])
def test_harmony_final_channel_is_the_content_without_its_header(size):
    reply = ("<|channel|>analysis<|message|>Simple.<|end|>"
             "<|start|>assistant<|channel|>final<|message|>Hello <b>there</b>")
    assert harmony_parts(reply, size) == ("Simple.", "Hello <b>there</b>", [])
    assert harmony_parts("<|channel|>final<|message|>Hi", size) == ("", "Hi", [])


def test_harmony_call_written_as_the_template_writes_past_calls():
    reply = ('<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>'
             '{"tz": "UTC"}<|call|>')
    assert harmony_parts(reply)[2] == [("get_time", {"tz": "UTC"})]


def test_harmony_forced_grammar_after_free_thinking():
    chat = formatter(GPT_OSS_TEMPLATE)
    answer = HARMONY.grammar([WEATHER["function"], TIME["function"]])
    grammar = chat.reasoning.think_first(answer, inside=False)
    call = HARMONY_CALL.removeprefix("<|start|>assistant")
    thought = "<|channel|>analysis<|message|>Let me call it.<|end|><|start|>assistant"
    assert Grammar(grammar).accepts(call)
    assert Grammar(grammar).accepts(thought + call)
    assert not Grammar(grammar).accepts(thought + "<|channel|>final<|message|>Hi")
    assert not Grammar(grammar).accepts(call.replace("get_weather", "get_lunch"))
    reasoning, rest = split_reasoning(chat.reasoning, thought + call)
    assert reasoning == "Let me call it."
    assert chat.split_reply(rest, False)[1][0].name == "get_weather"


def test_thinking_off_closes_an_empty_analysis_message():
    markup = formatter(GPT_OSS_TEMPLATE).reasoning
    prompt = "<|start|>user<|message|>hi<|end|><|start|>assistant"
    assert markup.closing(prompt) == "<|channel|>analysis<|message|><|end|><|start|>assistant"


# -- parallel_tool_calls false -------------------------------------------------------------


@pytest.mark.parametrize(("template", "reply"), [
    (QWEN3_CODER_TEMPLATE, xml_call("get_time", tz="UTC") + "\n" + xml_call("get_time",
                                                                           tz="CET")),
    ("{{ tools }}<tool_call>", '<tool_call>{"name": "get_time", "arguments": {"tz": "UTC"}}'
     '</tool_call>\n<tool_call>{"name": "get_time", "arguments": {"tz": "CET"}}</tool_call>'),
])
def test_one_call_at_most_when_parallel_calls_are_off(template, reply):
    chat = formatter(template)
    assert len(chat.split_reply(reply, False, TOOLS)[1]) == 2
    for size in (1, 10_000):
        stream = chat.tool_stream(TOOLS, max_calls=1)
        content, calls = assemble(in_pieces(stream, reply, size))
        assert [json.loads(c.arguments) for c in calls] == [{"tz": "UTC"}]
        assert content is None  # the second call is not turned into text either


@pytest.mark.parametrize(("template", "stop"), [
    (QWEN3_CODER_TEMPLATE, "</tool_call>"),
    (GPT_OSS_TEMPLATE, "<|call|>"),
    ("{{ tools }}<tool_call>", "</tool_call>"),
])
def test_a_free_reply_stops_after_its_first_call_when_parallel_calls_are_off(template, stop):
    markup = formatter(template).tool_markup
    assert one_call_limit(TOOLS, False) == 1
    assert one_call_stops(markup, one_call_limit(TOOLS, False)) == [stop]
    # Parallel calls on, unset, or no tools: no limit and no extra stop.
    for parallel, tools in ((True, TOOLS), (None, TOOLS), (False, None)):
        assert one_call_limit(tools, parallel) is None
        assert one_call_stops(markup, one_call_limit(tools, parallel)) == []
