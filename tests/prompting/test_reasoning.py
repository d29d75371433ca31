"""The reasoning splitter and template detection, without a model: every reply cut at every
boundary (markers included) streams to exactly what the whole reply splits into."""

from __future__ import annotations

import itertools

import pytest

from slm_api.prompting.chat_format import JinjaFormatter, formatter_for
from slm_api.prompting.reasoning import (
    THINK,
    ReasoningDeltas,
    canonical_reasoning_format,
    reasoning_for_template,
    split_reasoning,
    thinking_kwargs,
)

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

# Templates in the shape of the real ones (trimmed to what detection and rendering read).
QWEN3_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.role == 'assistant' and '</think>' in message.content %}"
    "{{- message.content.split('</think>')[-1].lstrip('\\n') }}"
    "{%- else %}{{- message.content }}{%- endif %}{{- '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}")
R1_TEMPLATE = (
    "{{ bos_token }}{%- for message in messages %}"
    "{%- if message.role == 'user' %}{{ '<｜User｜>' + message.content }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content.split('</think>')[-1] %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- else %}{{ message.content }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{%- endif %}")
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content"
    " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}")
ASK = [{"role": "user", "content": "hi"}]

REPLIES = {
    # reply text: (inside the prompt-opened block, reasoning, content)
    "<think>\nLet me see.\n</think>\n\nThe answer is 4.": (False, "Let me see.", "The answer is 4"
                                                         "."),
    "<think>a</think>b": (False, "a", "b"),
    "\n<think>\n\n</think>\n\nNo thinking.": (False, "", "No thinking."),
    "Plain answer, no <think> here.": (False, "", "Plain answer, no <think> here."),
    "  spaced answer": (False, "", "  spaced answer"),
    "<thin is not a marker": (False, "", "<thin is not a marker"),
    "x < y </think": (True, "x < y", ""),
    "I think 2+2 is 4 <\n</think>\n4": (True, "I think 2+2 is 4 <", "4"),
    "<think>still thinking when cut": (False, "still thinking when cut", ""),
    "<think>cut at the close </thi": (False, "cut at the close", ""),
    "<think>one\n\ntwo  \n</think>  \n three <think>x</think>": (
        False, "one\n\ntwo", "three <think>x</think>"),
    "reasoning only, opened by the prompt": (True, "reasoning only, opened by the prompt", ""),
    "</think>answer right away": (True, "", "answer right away"),
}


def _stream(text: str, cuts: tuple[int, ...], inside: bool) -> tuple[str, str]:
    splitter = ReasoningDeltas(THINK, inside)
    bounds = [0, *cuts, len(text)]
    deltas = []
    for a, b in itertools.pairwise(bounds):
        deltas += splitter.feed(text[a:b])
    deltas += splitter.finish()
    assert all(len(d) == 1 and next(iter(d.values())) for d in deltas), deltas
    reasoning = "".join(d.get("reasoning", "") for d in deltas)
    assert reasoning == splitter.reasoning
    return reasoning, "".join(d.get("content", "") for d in deltas)


@pytest.mark.parametrize("reply", list(REPLIES))
def test_whole_reply_splits_into_reasoning_and_content(reply):
    inside, reasoning, content = REPLIES[reply]
    assert split_reasoning(THINK, reply, inside) == (reasoning, content)


@pytest.mark.parametrize("reply", list(REPLIES))
def test_a_stream_cut_at_any_one_or_two_boundaries_sends_the_same(reply):
    inside, reasoning, content = REPLIES[reply]
    n = len(reply)
    for cuts in itertools.chain(((i,) for i in range(1, n)),
                                itertools.combinations(range(1, n), 2)):
        assert _stream(reply, cuts, inside) == (reasoning, content), cuts


@pytest.mark.parametrize("reply", list(REPLIES))
def test_a_stream_of_single_characters_sends_the_same(reply):
    inside, reasoning, content = REPLIES[reply]
    assert _stream(reply, tuple(range(1, len(reply))), inside) == (reasoning, content)


def test_nothing_is_sent_while_a_marker_may_still_be_forming():
    s = ReasoningDeltas(THINK)
    assert s.feed("\n<th") == []
    assert s.feed("ink>\nhm") == [{"reasoning": "hm"}]
    assert s.thinking
    assert s.feed(" </") == []
    assert s.feed("think>") == []
    assert not s.thinking
    assert s.feed("\n\nOK") == [{"content": "OK"}]


def test_markup_is_detected_from_the_template():
    qwen = reasoning_for_template(QWEN3_TEMPLATE)
    assert qwen is not None and qwen.name == "think" and qwen.toggle
    r1 = reasoning_for_template(R1_TEMPLATE)
    assert r1 is not None and not r1.toggle
    assert reasoning_for_template(PLAIN_TEMPLATE) is None
    assert reasoning_for_template(None) is None
    # The setting overrides detection both ways.
    assert reasoning_for_template(QWEN3_TEMPLATE, "none") is None
    assert reasoning_for_template(PLAIN_TEMPLATE, "think") is not None
    assert reasoning_for_template(None, "think") is not None
    with pytest.raises(ValueError, match="unknown reasoning format"):
        canonical_reasoning_format("harmony-ish")


def test_a_prompt_that_opens_the_block_is_recognised():
    r1 = JinjaFormatter(R1_TEMPLATE)
    prompt = r1.render(ASK)
    assert prompt.endswith("<think>\n")
    assert r1.reasoning is not None and r1.reasoning.opened_by(prompt)
    qwen = JinjaFormatter(QWEN3_TEMPLATE)
    assert qwen.reasoning is not None
    assert not qwen.reasoning.opened_by(qwen.render(ASK))
    closed = qwen.render(ASK, template_kwargs={"enable_thinking": False})
    assert closed.endswith("<think>\n\n</think>\n\n") and not qwen.reasoning.opened_by(closed)
    # The server's own way to turn thinking off where the template has no switch.
    assert r1.reasoning.closing(prompt) == "\n</think>\n\n"
    assert qwen.reasoning.closing(qwen.render(ASK)) == "<think>\n\n</think>\n\n"


def test_thinking_switch_reaches_only_templates_that_read_it():
    qwen = reasoning_for_template(QWEN3_TEMPLATE)
    r1 = reasoning_for_template(R1_TEMPLATE)
    assert thinking_kwargs(qwen, False, None) == {"enable_thinking": False}
    assert thinking_kwargs(r1, False, None) == {}
    assert thinking_kwargs(None, None, "low") == {"reasoning_effort": "low"}


def test_formatter_carries_the_reasoning_setting():
    meta = {"tokenizer.chat_template": QWEN3_TEMPLATE, "general.architecture": "qwen3"}
    assert formatter_for(meta).reasoning is not None
    assert formatter_for(meta, reasoning_format="none").reasoning is None
    builtin = formatter_for({"general.architecture": "gemma3"})
    assert builtin.reasoning is None
    assert formatter_for({"general.architecture": "gemma3"},
                         reasoning_format="think").reasoning is not None


def test_the_setting_is_checked_at_start_up():
    from slm_api.config import Settings, SettingsError

    assert Settings.from_env({"REASONING_FORMAT": "none"}, dotenv_path=None
                             ).reasoning_format == "none"
    assert Settings.from_env({}, dotenv_path=None).reasoning_format == "auto"
    with pytest.raises(SettingsError, match="REASONING_FORMAT"):
        Settings.from_env({"REASONING_FORMAT": "harmony-ish"}, dotenv_path=None)


def test_think_first_grammar_frees_the_thinking_and_keeps_the_answer():
    from slm_api.grammar.recognizer import Grammar

    answer = 'root ::= "{" inner "}"\ninner ::= [0-9]+\n'
    inside = Grammar(THINK.think_first(answer, inside=True))
    assert inside.accepts("I add them.</think>\n\n{4}")
    assert not inside.accepts("<think>x</think>{4}")  # the prompt opened it already
    assert not inside.accepts("a < b</think>{4}")  # no `<` in the thinking
    assert not inside.accepts("{4}")  # the thinking must close first
    outside = Grammar(THINK.think_first(answer, inside=False))
    assert outside.accepts("{4}") and outside.accepts("<think>hm</think>{4}")
