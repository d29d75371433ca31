"""GGUF chat templates rendered in the Jinja2 sandbox."""

from __future__ import annotations

import json

import pytest

from slm_api.errors import InvalidRequest
from slm_api.prompting.chat_format import formatter_for

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

# A ChatML template in the Hugging Face style that knows about tools, written for this test.
CHATML_TOOLS = """{{ bos_token }}
{%- if tools %}
<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}Functions:
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}<|im_end|>
{% elif messages[0].role == 'system' %}
<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{% for message in messages %}
{% if message.role == 'system' %}{% continue %}{% endif %}
{% if message.role == 'tool' %}
<|im_start|>tool
{{ message.content }}<|im_end|>
{% else %}
<|im_start|>{{ message.role }}
{{ message.content }}
{%- for call in message.tool_calls or [] %}
CALL {{ call.function.name }} {{ call.function.arguments | tojson }}
{%- endfor %}<|im_end|>
{% endif %}
{% endfor %}
{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# The same without any tools support.
CHATML_PLAIN = """{% for message in messages %}<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather <now> & later",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "18C"},
]


def jinja(template: str, **md: str):
    metadata = {"general.architecture": "qwen2", "tokenizer.chat_template": template, **md}
    return formatter_for(metadata, bos="<s>", eos="<|im_end|>")


def test_template_with_tools_gets_them_natively():
    fmt = jinja(CHATML_TOOLS, **{"tokenizer.ggml.add_bos_token": "false"})
    assert fmt.name == "jinja"
    assert fmt.template.uses_tools
    prompt = fmt.render(HISTORY, tools=TOOLS)
    assert prompt == (
        "<s><|im_start|>system\nBe brief.\n\nFunctions:\n"
        + json.dumps(TOOLS[0], ensure_ascii=False)
        + "\n<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\nCALL get_weather {"city": "Paris"}<|im_end|>\n'
        "<|im_start|>tool\n18C<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # tojson must not HTML-escape: the model should read < > & as written.
    assert "Weather <now> & later" in prompt


def test_template_without_tools_gets_injected_block_and_text_calls():
    fmt = jinja(CHATML_PLAIN)
    assert not fmt.template.uses_tools
    prompt = fmt.render(HISTORY, tools=TOOLS)
    system = prompt.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert "<tools>\n" + json.dumps(TOOLS[0], ensure_ascii=False) + "\n</tools>" in system
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather"' in prompt
    assert "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>" in prompt
    assert "<|im_start|>tool" not in prompt


def test_template_without_tools_and_no_tools_renders_messages_as_given():
    prompt = jinja(CHATML_PLAIN).render(HISTORY[:2], tools=None)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_tools_variable_is_undefined_when_no_tools():
    fmt = jinja("{% if tools is defined %}TOOLS{% endif %}{{ messages[0].content }}")
    assert fmt.render([{"role": "user", "content": "x"}]) == "x"
    assert fmt.render([{"role": "user", "content": "x"}], tools=TOOLS).startswith("TOOLS")
    assert fmt.render([{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="none") == "x"


def test_leading_bos_is_stripped_when_tokenizer_adds_it():
    template = "{{ bos_token }}{{ messages[0].content }}"
    added = jinja(template, **{"tokenizer.ggml.add_bos_token": "true"})
    not_added = jinja(template, **{"tokenizer.ggml.add_bos_token": "false"})
    assert added.render([{"role": "user", "content": "hi"}]) == "hi"
    assert not_added.render([{"role": "user", "content": "hi"}]) == "<s>hi"


def test_stop_strings_come_from_template_and_eos():
    assert jinja(CHATML_PLAIN).stop == ("<|im_end|>",)
    fmt = formatter_for({"tokenizer.chat_template": "{{ 'x' }}"}, eos="</s>")
    assert fmt.stop == ("</s>",)


def test_raise_exception_becomes_invalid_request():
    fmt = jinja(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}"
        "{% endif %}ok"
    )
    assert fmt.render([{"role": "user", "content": "a"}]) == "ok"
    with pytest.raises(InvalidRequest, match="first message must be user") as err:
        fmt.render([{"role": "assistant", "content": "a"}])
    assert err.value.status == 400 and err.value.param == "messages"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__ }}",
        "{{ raise_exception.__globals__ }}",
        "{% set _ = messages.append({'role': 'user', 'content': 'x'}) %}ok",
        "{{ messages[0].update({'role': 'x'}) }}",
    ],
)
def test_sandbox_blocks_attribute_abuse(template: str):
    with pytest.raises(InvalidRequest, match="not allowed|unsafe|template"):
        jinja(template).render([{"role": "user", "content": "a"}])


def test_runtime_template_error_is_invalid_request_not_crash():
    fmt = jinja("{{ messages[5].content }}{{ 1 / 0 }}")
    with pytest.raises(InvalidRequest, match="chat template"):
        fmt.render([{"role": "user", "content": "a"}])


def test_syntax_error_in_template_is_a_load_error():
    with pytest.raises(ValueError, match="does not compile"):
        jinja("{% for m in messages %}{{ m.content }")


def test_template_helpers():
    fmt = jinja("{{ strftime_now('%Y') }}|{{ {'a': '<b>'} | tojson }}|{% for m in messages %}"
                "{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}")
    year, js, first = fmt.render([{"role": "user", "content": "1"},
                                  {"role": "user", "content": "2"}]).split("|")
    assert len(year) == 4 and year.isdigit()
    assert js == '{"a": "<b>"}'
    assert first == "1"


def test_trim_and_lstrip_blocks_like_hf():
    fmt = jinja("{% for m in messages %}\n    {% if true %}\n{{ m.content }}\n    {% endif %}\n"
                "{% endfor %}")
    assert fmt.render([{"role": "user", "content": "a"}]) == "a\n"


def test_hf_template_features_namespace_generation_and_str_methods():
    fmt = jinja(
        "{% set ns = namespace(users=0) %}{% for m in messages %}"
        "{% if m.role == 'user' %}{% set ns.users = ns.users + 1 %}{% endif %}"
        "{% generation %}[{{ m.content.strip().split(' ')[0] | upper }}]{% endgeneration %}"
        "{% endfor %}{{ ns.users }}|{{ (messages | last).content[::-1] }}"
    )
    prompt = fmt.render([{"role": "user", "content": " hello world"},
                         {"role": "assistant", "content": "ok"}])
    assert prompt == "[HELLO][OK]1|ko"
