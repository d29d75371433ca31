"""Tool-call markups other than Hermes: detection from a template, whole and streamed parsing
(never leaking markup into content), and the grammar of a forced call in each markup."""

from __future__ import annotations

import json
import random
import re

import pytest

from slm_api.grammar.recognizer import Grammar
from slm_api.prompting.chat_format import formatter_for
from slm_api.prompting.tool_markup import (
    DEEPSEEK_R1,
    DEEPSEEK_V31,
    GRANITE,
    HERMES,
    LLAMA3,
    MARKUPS,
    MISTRAL,
    MISTRAL_V11,
    ToolMarkup,
    markup_for_template,
)
from slm_api.prompting.tool_stream import ToolCallDeltas, assemble

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

# Trimmed from the real templates: just the parts each family's detection keys on.
LLAMA31_TEMPLATE = (
    "{{- bos_token }}{%- if tools %}<|start_header_id|>system<|end_header_id|>\n\n"
    "Environment: ipython\nRespond with a JSON function call in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}.'
    "{%- for t in tools %}\n{{ t | tojson }}{%- endfor %}<|eot_id|>{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>\n\n"
    "{{ message.content }}<|eot_id|>"
    "{%- elif message.tool_calls %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "<|python_tag|>{{ message.tool_calls[0].function | tojson }}<|eom_id|>"
    "{%- else %}<|start_header_id|>{{ message.role }}<|end_header_id|>\n\n"
    "{{ message.content }}<|eot_id|>{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{%- endif %}"
)
MISTRAL_TEMPLATE = (
    "{%- for message in messages %}{%- if message.role == 'user' %}"
    "{%- if tools and loop.last %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]"
    "{%- endif %}[INST]{{ message.content }}[/INST]"
    "{%- elif message.tool_calls %}[TOOL_CALLS]{{ message.tool_calls | tojson }}{{ eos_token }}"
    "{%- else %}{{ message.content }}{{ eos_token }}{%- endif %}{%- endfor %}"
)
MISTRAL_V11_TEMPLATE = MISTRAL_TEMPLATE.replace(
    "[TOOL_CALLS]{{ message.tool_calls | tojson }}",
    "{%- for c in message.tool_calls %}[TOOL_CALLS]{{ c.function.name }}[ARGS]"
    "{{ c.function.arguments | tojson }}{%- endfor %}",
)
QWEN_TEMPLATE = "{%- if tools %}<tools>{{ tools | tojson }}</tools><tool_call>{%- endif %}"
# DeepSeek R1 (and its distills): the name after `function<｜tool▁sep｜>`, arguments in a fence.
DEEPSEEK_R1_TEMPLATE = (
    "{{ bos_token }}{%- if tools %}{{ tools | tojson }}{%- endif %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}"
    "<｜User｜>{{ message.content }}"
    "{%- elif message.role == 'assistant' and message.tool_calls %}"
    "<｜Assistant｜><｜tool▁calls▁begin｜>{%- for tool in message.tool_calls %}"
    "<｜tool▁call▁begin｜>{{ tool.type }}<｜tool▁sep｜>{{ tool.function.name }}\n```json\n"
    "{{ tool.function.arguments }}\n```<｜tool▁call▁end｜>{%- endfor %}<｜tool▁calls▁end｜>"
    "<｜end▁of▁sentence｜>{%- elif message.role == 'tool' %}"
    "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{{ message.content }}"
    "<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"
    "{%- else %}<｜Assistant｜>{{ message.content }}<｜end▁of▁sentence｜>{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}<｜Assistant｜>{%- endif %}"
)
DEEPSEEK_V31_TEMPLATE = DEEPSEEK_R1_TEMPLATE.replace(
    "{{ tool.type }}<｜tool▁sep｜>{{ tool.function.name }}\n```json\n"
    "{{ tool.function.arguments }}\n```",
    "{{ tool.function.name }}<｜tool▁sep｜>{{ tool.function.arguments }}")
GRANITE_TEMPLATE = (
    "{%- if tools %}<|start_of_role|>available_tools<|end_of_role|>{{ tools | tojson }}"
    "<|end_of_text|>{%- endif %}{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}"
    "<|start_of_role|>assistant<|end_of_role|><|tool_call|>{{ message.tool_calls | tojson }}"
    "<|end_of_text|>{%- else %}<|start_of_role|>{{ message.role }}<|end_of_role|>"
    "{{ message.content }}<|end_of_text|>{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{%- endif %}"
)
R1_CALL = ("<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{args}\n```"
           "<｜tool▁call▁end｜>")


@pytest.mark.parametrize(("template", "markup"), [
    (LLAMA31_TEMPLATE, LLAMA3),
    (MISTRAL_TEMPLATE, MISTRAL),
    (MISTRAL_V11_TEMPLATE, MISTRAL_V11),
    (QWEN_TEMPLATE, HERMES),
    (DEEPSEEK_R1_TEMPLATE, DEEPSEEK_R1),
    (DEEPSEEK_V31_TEMPLATE, DEEPSEEK_V31),
    (GRANITE_TEMPLATE, GRANITE),
])
def test_markup_comes_from_the_template(template: str, markup: ToolMarkup):
    assert markup_for_template(template) is markup
    fmt = formatter_for({"tokenizer.chat_template": template})
    assert fmt.tool_markup is markup and fmt.tool_stream().markup is markup


def test_template_that_cannot_render_tools_gets_hermes():
    # We inject the Hermes block into such prompts, so the model is taught Hermes markup.
    fmt = formatter_for({"tokenizer.chat_template": "{{ messages[0].content }}[TOOL_CALLS]"})
    assert fmt.tool_markup is HERMES


# (markup, reply, content, [(name, arguments)])
CASES = [
    (LLAMA3, '{"name": "get_weather", "parameters": {"city": "Paris"}}', None,
     [("get_weather", '{"city":"Paris"}')]),
    (LLAMA3, '<|python_tag|>{"name": "a", "parameters": {"x": [1, 2]}}', None,
     [("a", '{"x":[1,2]}')]),
    (LLAMA3, '  {"type": "function", "name": "a", "parameters": {}}; {"name": "b", '
             '"parameters": {"k": "v"}}', None, [("a", "{}"), ("b", '{"k":"v"}')]),
    (LLAMA3, 'Let me look.<|python_tag|>{"name": "a", "arguments": {"q": 1}}', "Let me look.",
     [("a", '{"q":1}')]),
    (LLAMA3, '{"parameters": {"q": 1}, "name": "a"}', None, [("a", '{"q":1}')]),
    (LLAMA3, 'The object is {"a": 1}.', 'The object is {"a": 1}.', []),
    (LLAMA3, '{"answer": 42}', '{"answer": 42}', []),
    (MISTRAL, '[TOOL_CALLS][{"name": "a", "arguments": {"q": "x"}, "id": "abc123def"}]', None,
     [("a", '{"q":"x"}')]),
    (MISTRAL, 'Sure. [TOOL_CALLS] [{"name": "a", "arguments": {}}, {"name": "b", "arguments": '
              '{"n": 2}}]', "Sure.", [("a", "{}"), ("b", '{"n":2}')]),
    (MISTRAL, '[TOOL_CALLS][{"arguments": {"n": 2}, "name": "b"}]', None, [("b", '{"n":2}')]),
    (MISTRAL, "[TOOL_CALLS] not json", "[TOOL_CALLS] not json", []),
    (MISTRAL_V11, '[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}', None,
     [("get_weather", '{"city":"Oslo"}')]),
    (MISTRAL_V11, 'Two.[TOOL_CALLS]a[ARGS]{}[TOOL_CALLS]b[ARGS]{"s": "[ARGS]"}', "Two.",
     [("a", "{}"), ("b", '{"s":"[ARGS]"}')]),
    (HERMES, '<tool_call>{"name": "a", "arguments": {"q": 1}}</tool_call>', None,
     [("a", '{"q":1}')]),
    (DEEPSEEK_R1, "<｜tool▁calls▁begin｜>" + R1_CALL.format(name="get_weather",
                                                              args='{"city": "Paris"}')
     + "<｜tool▁calls▁end｜>", None, [("get_weather", '{"city":"Paris"}')]),
    (DEEPSEEK_R1, "Checking both.<｜tool▁calls▁begin｜>" + R1_CALL.format(name="a", args="{}")
     + R1_CALL.format(name="b", args='{"s": "```"}') + "<｜tool▁calls▁end｜>", "Checking both.",
     [("a", "{}"), ("b", '{"s":"```"}')]),
    (DEEPSEEK_R1, R1_CALL.format(name="a", args='{"n": 1}'), None, [("a", '{"n":1}')]),
    (DEEPSEEK_R1, "<｜tool▁calls▁begin｜>not a call", "<｜tool▁calls▁begin｜>not a call", []),
    (DEEPSEEK_V31, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>"
                   '{"tz": "UTC"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>', None,
     [("get_time", '{"tz":"UTC"}')]),
    (GRANITE, '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]', None,
     [("get_weather", '{"city":"Paris"}')]),
    (GRANITE, 'Sure.<|tool_call|>[{"name": "a", "arguments": {}}, {"name": "b", "parameters": '
              '{"n": 2}}]<|/tool_call|>', "Sure.", [("a", "{}"), ("b", '{"n":2}')]),
]


def stream(markup: ToolMarkup, pieces: list[str], cut: bool = False) -> tuple:
    deltas = ToolCallDeltas(markup)
    out = [d for p in pieces for d in deltas.feed(p)] + deltas.finish(cut)
    return out, assemble(out)


def pieces_of(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 15))))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize(("markup", "reply", "content", "calls"), CASES)
def test_whole_and_streamed_replies_split_alike(markup, reply, content, calls):
    got_content, got = markup.parse(reply)
    assert got_content == content and [(c.name, c.arguments) for c in got] == calls
    _, (whole_content, whole) = stream(markup, [reply])
    assert whole_content == content and [(c.name, c.arguments) for c in whole] == calls
    rng = random.Random(reply)
    for _ in range(30):
        deltas, (c, got) = stream(markup, pieces_of(reply, rng))
        assert (c, [(x.name, x.arguments) for x in got]) == (content, calls)
        if calls:  # markup never reaches the content, whatever the split
            text = "".join(d.get("content", "") for d in deltas)
            assert not any(t in text for t in markup.triggers) and "{" not in text


def test_arguments_stream_in_fragments_for_every_markup():
    for reply in ('{"name": "a", "parameters": {"text": "one two three"}}',
                  '[TOOL_CALLS][{"name": "a", "arguments": {"text": "one two three"}}]',
                  '[TOOL_CALLS]a[ARGS]{"text": "one two three"}',
                  R1_CALL.format(name="a", args='{"text": "one two three"}')):
        markup = LLAMA3 if reply[0] == "{" else MISTRAL_V11 if "[ARGS]" in reply else \
            DEEPSEEK_R1 if "```" in reply else MISTRAL
        deltas, (_, calls) = stream(markup, [reply[i:i + 4] for i in range(0, len(reply), 4)])
        fragments = [d for d in deltas if "tool_call" in d and "id" not in d["tool_call"]]
        assert len(fragments) > 3, reply
        assert json.loads(calls[0].arguments) == {"text": "one two three"}


@pytest.mark.parametrize("markup", [LLAMA3, MISTRAL, MISTRAL_V11, DEEPSEEK_R1, DEEPSEEK_V31,
                                    GRANITE])
def test_cut_before_the_name_leaves_no_markup(markup):
    start = {"llama3": '{"name": "get_w', "mistral": '[TOOL_CALLS][{"name": "get_w',
             "granite": '<|tool_call|>[{"name": "get_w',
             "mistral-v11": "[TOOL_CALLS]get_w",
             "deepseek-r1": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
                            "<｜tool▁sep｜>get_w",
             "deepseek-v3.1": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_w"}[markup.name]
    _, (content, calls) = stream(markup, ["Well. " if markup is not LLAMA3 else "", start],
                                 cut=True)
    assert calls == [] and content in ("Well.", "")


@pytest.mark.parametrize("markup", [LLAMA3, MISTRAL, MISTRAL_V11, DEEPSEEK_R1, DEEPSEEK_V31,
                                    GRANITE])
def test_cut_inside_arguments_keeps_them(markup):
    reply = {"llama3": '{"name": "a", "parameters": {"city": "Pa',
             "granite": '<|tool_call|>[{"name": "a", "arguments": {"city": "Pa',
             "mistral": '[TOOL_CALLS][{"name": "a", "arguments": {"city": "Pa',
             "mistral-v11": '[TOOL_CALLS]a[ARGS]{"city": "Pa',
             "deepseek-r1": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>a\n"
                            '```json\n{"city": "Pa',
             "deepseek-v3.1": "<｜tool▁call▁begin｜>a<｜tool▁sep｜>{\"city\": \"Pa"}[markup.name]
    _, (content, calls) = stream(markup, [reply], cut=True)
    assert content is None and [(c.name, c.arguments) for c in calls] == [("a", '{"city":"Pa')]


WEATHER = {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"unit": {"enum": ["c", "f"]}}, "required": ["unit"],
    "additionalProperties": False}}
TIME = {"name": "get_time"}


@pytest.mark.parametrize(("markup", "good", "bad"), [
    (HERMES, '<tool_call>{"name": "get_weather", "arguments": {"unit": "c"}}</tool_call>',
     '{"name": "get_weather", "arguments": {"unit": "c"}}'),
    (LLAMA3, '{"name": "get_weather", "parameters": {"unit": "f"}}',
     '{"name": "get_weather", "arguments": {"unit": "f"}}'),
    (MISTRAL, '[TOOL_CALLS][{"name": "get_time", "arguments": {}}]',
     '[TOOL_CALLS]{"name": "get_time", "arguments": {}}'),
    (MISTRAL_V11, '[TOOL_CALLS]get_time[ARGS]{}', '[TOOL_CALLS]get_weather[ARGS]{}'),
    (GRANITE, '<|tool_call|>[{"name": "get_time", "arguments": {}}]',
     '<|tool_call|>{"name": "get_time", "arguments": {}}'),
    (DEEPSEEK_R1, "<｜tool▁calls▁begin｜>" + R1_CALL.format(name="get_weather",
                                                              args='{"unit": "c"}')
     + "<｜tool▁calls▁end｜>", R1_CALL.format(name="get_weather", args='{"unit": "c"}')),
    (DEEPSEEK_V31, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{}"
                   "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
     "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"x\": 1}"
     "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
])
def test_forced_call_grammar_writes_the_markup_it_parses(markup, good, bad):
    grammar = markup.grammar([WEATHER, TIME])
    assert Grammar(grammar).accepts(good)
    assert not Grammar(grammar).accepts(bad)
    _, calls = markup.parse(good)
    assert len(calls) == 1


def test_every_markup_is_registered():
    assert set(MARKUPS) == {"hermes", "llama3", "mistral", "mistral-v11", "granite",
                            "deepseek-r1", "deepseek-v3.1", "harmony", "qwen3-coder"}


# Mistral v0.3 / Nemo refuse any tool call id that is not 9 characters.
MISTRAL_IDS_TEMPLATE = (
    "{%- if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{%- endif %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}[INST]{{ message.content }}"
    "[/INST]{%- elif message.tool_calls %}[TOOL_CALLS][{%- for c in message.tool_calls %}"
    "{%- if c.id is not defined or c.id | length != 9 %}"
    "{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}"
    "{%- endif %}{{ {'name': c.function.name, 'arguments': c.function.arguments, 'id': c.id}"
    " | tojson }}{%- endfor %}]{{ eos_token }}{%- elif message.role == 'tool' %}"
    "{%- if message.tool_call_id | length != 9 %}{{ raise_exception('bad id') }}{%- endif %}"
    '[TOOL_RESULTS]{"call_id": "{{ message.tool_call_id }}"}[/TOOL_RESULTS]'
    "{%- else %}{{ message.content }}{{ eos_token }}{%- endif %}{%- endfor %}"
)


def test_mistral_templates_get_nine_character_call_ids():
    fmt = formatter_for({"tokenizer.chat_template": MISTRAL_IDS_TEMPLATE})
    assert fmt.tool_markup is MISTRAL
    call_id = "call_0123456789abcdef01234567"
    prompt = fmt.render([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": "get_weather", "arguments": '{"unit": "c"}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "18"},
        {"role": "user", "content": "Thanks"},
    ], tools=[{"type": "function", "function": WEATHER}])
    ids = re.findall(r'"id": "(\w+)"', prompt) + re.findall(r'"call_id": "(\w+)"', prompt)
    assert len(ids) == 2 and ids[0] == ids[1] and len(ids[0]) == 9
