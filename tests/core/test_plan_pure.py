"""The planner (api/core/planner.py) without a model or HTTP: a turn and a chat format in, the
prompt, grammar, budget and reply start out, the same every time."""

from __future__ import annotations

import pytest

from slm_api.api.core.planner import RawTurn, Turn, plan
from slm_api.api.core.protocol import ResponseFormat
from slm_api.errors import APIError
from slm_api.prompting.chat_format import JinjaFormatter

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

# Qwen3's switch (enable_thinking false writes the empty block), trimmed.
TOGGLE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}")
# The generation prompt opens the block (DeepSeek-R1's later templates).
OPEN = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}")
PLAIN = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
ASK = [{"role": "user", "content": "What is 2 + 2?"}]
JSON = ResponseFormat(type="json_object")
TOOLS = [{"type": "function", "function": {
    "name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]


def tokenize(text: str, param: str | None = "messages") -> list[int]:
    return [ord(c) for c in text]  # one token a character: enough to see what was tokenized


def test_the_same_turn_gives_the_same_plan():
    chat = JinjaFormatter(TOGGLE)
    turn = Turn(None, ASK, tools=TOOLS, response_format=JSON, reasoning_effort="none")
    assert plan(chat, turn, tokenize) == plan(chat, turn, tokenize)


def test_the_plan_tokens_are_the_plan_prompt():
    planned = plan(JinjaFormatter(PLAIN), Turn(None, ASK), tokenize)
    assert planned.prompt.endswith("<|im_start|>assistant\n")
    assert planned.tokens == tokenize(planned.prompt)
    assert planned.stop == ("<|im_end|>",)
    assert planned.grammar is None and planned.budget is None and not planned.thinks_from_start


def test_thinking_off_writes_the_empty_block_and_no_think_first_grammar():
    chat = JinjaFormatter(TOGGLE)
    off = plan(chat, Turn(None, ASK, response_format=JSON, thinking=False), tokenize)
    assert off.prompt.endswith("<think>\n\n</think>\n\n")
    assert off.grammar == off.answer_grammar is not None
    on = plan(chat, Turn(None, ASK, response_format=JSON), tokenize)
    assert "</think>" not in on.prompt
    assert on.grammar != on.answer_grammar  # free thinking first, then the JSON


def test_a_budget_starts_the_reply_inside_the_thinking():
    planned = plan(JinjaFormatter(TOGGLE), Turn(None, ASK, thinking_budget=32), tokenize)
    assert planned.prompt.endswith("<|im_start|>assistant\n<think>\n")
    assert planned.budget == 32 and planned.thinks_from_start


def test_a_prompt_that_opens_the_block_starts_inside_it():
    planned = plan(JinjaFormatter(OPEN), Turn(None, ASK, response_format=JSON), tokenize)
    assert planned.thinks_from_start and planned.grammar != planned.answer_grammar
    closed = plan(JinjaFormatter(OPEN), Turn(None, ASK, thinking=False), tokenize)
    assert closed.prompt.endswith("</think>\n\n") and not closed.thinks_from_start


def test_tools_are_shown_only_when_the_reply_may_call_them():
    chat = JinjaFormatter(PLAIN)
    assert plan(chat, Turn(None, ASK, tools=TOOLS), tokenize).tools == TOOLS
    hidden = plan(chat, Turn(None, ASK, tools=TOOLS, tool_choice="none"), tokenize)
    assert hidden.tools is None
    forced = plan(chat, Turn(None, ASK, tools=TOOLS, tool_choice="required"), tokenize)
    assert forced.grammar is not None and "add" in forced.grammar


def test_a_turn_the_model_cannot_take_is_refused_by_the_planner():
    with pytest.raises(APIError) as err:
        plan(JinjaFormatter(PLAIN), Turn(None, ASK, tool_choice="required"), tokenize)
    assert err.value.status == 400 and err.value.param == "tool_choice"


def test_a_raw_prompt_gets_no_template_and_no_end_of_turn_stops():
    chat = JinjaFormatter(TOGGLE)
    raw = plan(chat, RawTurn("Once upon a time", stop=["\n"]), tokenize)
    assert raw.prompt == "Once upon a time" and raw.stop == ("\n",)
    assert not raw.reasoning and raw.grammar is None
    ids = plan(chat, RawTurn([5, 6, 7]), tokenize)
    assert ids.tokens == [5, 6, 7]
    thinking = plan(chat, RawTurn("Q:", JSON, reasoning=True), tokenize)
    assert thinking.reasoning and thinking.grammar != thinking.answer_grammar
    quiet = plan(chat, RawTurn("Q:", JSON, reasoning=True, thinking=False), tokenize)
    assert quiet.grammar == quiet.answer_grammar
