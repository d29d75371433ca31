"""Reasoning ("thinking") markup: which one a chat template teaches, and a reply split into its
thinking and its answer, streamed or whole.

A reasoning model writes its thinking first, between markers its template knows, then the
answer. One markup is known today, as llama.cpp's `--reasoning-format deepseek` parses it:

- think: `<think>` ... `</think>` (Qwen3, QwQ, DeepSeek-R1 and its Qwen/Llama distills,
  SmolLM3, Phi-4-mini-reasoning). Some templates open the block in the generation prompt
  (DeepSeek-R1's later templates end with `<｜Assistant｜><think>\\n`): the reply then starts
  inside the thinking and only writes the closing marker.
- harmony: `<|channel|>analysis<|message|>` ... `<|end|>` (GPT-OSS). The answer that follows
  opens its own message, `<|start|>assistant<|channel|>final<|message|>`, a header that is
  markup, not content; a tool call opens `<|start|>assistant<|channel|>commentary to=...` and
  reaches the tool-call parser (tool_markup.py) as written.

Detection is by the template's source (a template that mentions `</think>` renders or strips
thinking, so its model writes it), as tool_markup.py detects call markups; the REASONING_FORMAT
setting overrides it (`none`: the markup stays in the content as written).

Thinking is only looked for at the start of a reply, as every one of these models writes it:
a `<think>` later in the answer is the answer's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from slm_api.grammar.gbnf import literal
from slm_api.grammar.unique import Stage, add_stage
from slm_api.prompting.stops import partial_suffix

REASONING_FORMATS = ("auto", "none", "think", "harmony")

Delta = dict[str, str]  # {"reasoning": str} or {"content": str}


@dataclass(frozen=True)
class ReasoningMarkup:
    name: str
    open: str
    close: str
    # Whether the template reads `enable_thinking` (Qwen3, SmolLM3): it closes the block itself
    # when thinking is off; for the others the server writes the empty block into the prompt.
    toggle: bool = False
    # What an empty block holds, and what follows a closed block before the answer (in the
    # prompt when the server closes it, and as the grammar's gap after the thinking).
    pad: str = "\n\n"
    after: str = "\n\n"
    # Message headers that open the answer (harmony's final channel): markup, dropped.
    answer_heads: tuple[str, ...] = ()

    def opened_by(self, prompt: str) -> bool:
        """Whether a rendered prompt ends inside an open block (the reply starts thinking)."""
        at = prompt.rfind(self.open)
        tail = prompt[at + len(self.open):]
        return at >= 0 and at > prompt.rfind(self.close) and not tail.strip()

    def closing(self, prompt: str) -> str:
        """What to append to `prompt` so that the reply starts after an empty, closed block (how
        Qwen3's own template turns thinking off)."""
        if self.opened_by(prompt):
            return f"{self.pad[:1]}{self.close}{self.after}"
        return f"{self.open}{self.pad}{self.close}{self.after}"

    def think_first(self, grammar: str, inside: bool) -> str:
        """`grammar` (GBNF, `root` its start) for the answer after free thinking: the reply
        may think (opening the block itself unless `inside`: then it must), closes the
        block, then the grammar
        applies. The thinking may not write `<` (no marker can be half-written in it), and
        the budget guide counts it against max_tokens, so the answer still closes validly."""
        answer = re.sub(r"(?m)^root(\s*::=)", r"think-answer\1", grammar, count=1)
        # uniqueItems is tracked from the answer on: after the block, when there is one.
        answer = add_stage(answer, Stage((self.close,), "" if inside else self.open))
        block = f"think-text {literal(self.close)} think-gap"
        head = block if inside else f"({literal(self.open)} {block})?"
        gap = 'think-gap ::= ("\\n" "\\n"?)?\n' if self.after == "\n\n" \
            else f"think-gap ::= {literal(self.after)}\n"
        return (f"root ::= {head} think-answer\n"
                "think-text ::= [^<]*\n" + gap + answer)

    def splitter(self, inside: bool = False) -> ReasoningDeltas:
        """A fresh streaming splitter; `inside`: the prompt opened the block."""
        return ReasoningDeltas(self, inside)


THINK = ReasoningMarkup("think", "<think>", "</think>")
HARMONY_START = "<|start|>assistant"
HARMONY = ReasoningMarkup(
    "harmony", "<|channel|>analysis<|message|>", "<|end|>", pad="", after=HARMONY_START,
    answer_heads=(f"{HARMONY_START}<|channel|>final<|message|>", "<|channel|>final<|message|>"))


def canonical_reasoning_format(name: str | None) -> str:
    """The REASONING_FORMAT a value names ("" and None: auto). ValueError when unknown."""
    key = (name or "auto").strip().lower()
    if key not in REASONING_FORMATS:
        raise ValueError(f"unknown reasoning format {name!r}; valid values: "
                         f"{', '.join(REASONING_FORMATS)}")
    return key


def reasoning_for_template(source: str | None, setting: str | None = "auto"
                           ) -> ReasoningMarkup | None:
    """The reasoning markup a chat template's model writes (None: it does not reason, or
    REASONING_FORMAT=none). `source` None: a built-in format, which never reasons unless the
    setting names a markup."""
    key = canonical_reasoning_format(setting)
    if key == "none":
        return None
    toggle = bool(source) and "enable_thinking" in source  # type: ignore[operator]
    if key == "think":
        return ReasoningMarkup(THINK.name, THINK.open, THINK.close, toggle)
    if key == "harmony" or (key == "auto" and source and HARMONY.open in source):
        return HARMONY
    if source and (THINK.close in source or THINK.open in source):
        return ReasoningMarkup(THINK.name, THINK.open, THINK.close, toggle)
    return None


def thinking_kwargs(markup: ReasoningMarkup | None, enabled: bool | None,
                    effort: str | None) -> dict[str, Any]:
    """Template variables for a request's thinking switch: `enable_thinking` where the template
    reads it, `reasoning_effort` as given (GPT-OSS's templates read it)."""
    out: dict[str, Any] = {}
    if markup is not None and markup.toggle and enabled is not None:
        out["enable_thinking"] = enabled
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


@dataclass
class ReasoningDeltas:
    """Generated text as reasoning and content deltas, whatever the pieces' boundaries.

    Reasoning is sent without the markers and without the whitespace next to them; so is the
    whitespace between the closing marker and the answer. Text that may be the start of a
    marker is held back until it is known. A whole reply fed at once gives the same text as its
    stream, joined."""

    markup: ReasoningMarkup
    inside: bool = False  # in the thinking
    _state: str = field(init=False, default="start")  # start | thinking | after | content
    _held: str = field(init=False, default="")
    reasoning: str = field(init=False, default="")  # all reasoning sent so far

    def __post_init__(self) -> None:
        if self.inside:
            self._state = "thinking"

    @property
    def thinking(self) -> bool:
        """Whether the reply so far ends inside the thinking (a cut here leaves no answer)."""
        return self._state == "thinking"

    def feed(self, text: str) -> list[Delta]:
        out: list[Delta] = []
        text = self._held + text
        self._held = ""
        while text:
            if self._state == "start":
                body = text.lstrip()
                head = self._answer_head(body)
                if body.startswith(self.markup.open):
                    self._state = "thinking"
                    text = body[len(self.markup.open):]
                elif head is None or (body and self.markup.open.startswith(body)):
                    self._held = text  # maybe a marker, not yet whole
                    return out
                elif head:
                    self._state, text = "content", body[len(head):]
                elif body:
                    self._state = "content"
                else:
                    self._held = text  # only whitespace so far: the marker may follow
                    return out
            elif self._state == "thinking":
                at = text.find(self.markup.close)
                if at < 0:
                    keep = partial_suffix(text, (self.markup.close,))
                    ready = text[: len(text) - keep]
                    # Trailing whitespace waits: it is dropped if the closing marker follows.
                    trail = len(ready) - len(ready.rstrip())
                    self._held = text[len(ready) - trail:]
                    self._think(out, ready[: len(ready) - trail])
                    return out
                self._think(out, text[:at].rstrip())
                self._state = "after"
                text = text[at + len(self.markup.close):]
            elif self._state == "after":
                text = text.lstrip()
                head = self._answer_head(text)
                if head is None:
                    self._held = text
                    return out
                text = text[len(head):]
                if text or head:
                    self._state = "content"
            else:
                out.append({"content": text})
                text = ""
        return out

    def _answer_head(self, text: str) -> str | None:
        """The answer's message header `text` starts with ("" when none), None while `text`
        may still grow into one."""
        for head in self.markup.answer_heads:
            if text.startswith(head):
                return head
        if any(h.startswith(text) and text != h for h in self.markup.answer_heads) and text:
            return None
        return ""

    def _think(self, out: list[Delta], text: str) -> None:
        if not self.reasoning:
            text = text.lstrip()  # the newline after the opening marker
        if text:
            self.reasoning += text
            out.append({"reasoning": text})

    def finish(self) -> list[Delta]:
        """What is still held once generation ended. Inside the thinking that is whitespace or
        a cut closing marker, neither of them thinking; before it, the reply's text."""
        held, self._held = self._held, ""
        if self._state in ("start", "after") and held.strip():
            return [{"content": held}]
        return []


def split_reasoning(markup: ReasoningMarkup | None, text: str, inside: bool = False
                    ) -> tuple[str, str]:
    """A whole reply as (reasoning, the rest), exactly as its stream would send them."""
    if markup is None:
        return "", text
    stream = markup.splitter(inside)
    deltas = stream.feed(text) + stream.finish()
    return (stream.reasoning,
            "".join(d["content"] for d in deltas if "content" in d))
