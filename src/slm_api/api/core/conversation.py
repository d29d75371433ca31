"""The chat request-to-engine path that every chat-shaped API shares (chat completions,
Anthropic Messages, OpenAI Responses, Ollama's chat): the turn planned (api/core/planner.py),
submitted, and a reply split into its thinking (for a reasoning model, prompting/reasoning.py),
its text and its tool calls (streamed as blocks: api/core/blocks.py).

Each API family only translates its own request into a `Turn` (OpenAI chat messages and tools,
the lingua franca of the chat formatter) and the engine's output back into its own shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from slm_api.api.core.media import plan_with_media
from slm_api.api.core.planner import Plan, Turn, plan_tools
from slm_api.api.core.run import Run, build_request
from slm_api.api.core.structured import check_structured_output
from slm_api.api.core.thinking import BudgetedGeneration, OneChoice
from slm_api.errors import APIError
from slm_api.prompting.chat_format import ToolCall
from slm_api.prompting.reasoning import ReasoningDeltas, split_reasoning

__all__ = ["ChatRun", "Plan", "ReplySplitter", "Turn", "plan_tools", "start_turn"]


@dataclass
class ReplyParts:
    """A finished reply: its thinking ("" when none), its content and its tool calls."""

    reasoning: str
    content: str | None
    calls: list[ToolCall]


class ChatRun(Run):
    """A Run for a Turn: the model pinned, the prompt rendered and (after `start`) submitted."""

    def __init__(self, turn: Turn):
        super().__init__(turn.model,
                         turn.load_configs.to_load_options() if turn.load_configs else None)
        try:
            self.turn = turn
            self.plan = plan_with_media(self.model, turn)
        except BaseException:
            self.close()
            raise

    @property
    def prompt_tokens(self) -> list[int]:
        return self.plan.tokens

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self.plan.tools

    @property
    def thinks_from_start(self) -> bool:
        return self.plan.thinks_from_start

    @property
    def tools_active(self) -> bool:
        return self.tools is not None

    def reasoning_splitter(self) -> ReasoningDeltas | None:
        markup = self.model.chat.reasoning
        return markup.splitter(self.thinks_from_start) if markup is not None else None

    def reasoning_tokens(self, reasoning: str) -> int:
        """The tokens a reply's thinking took, its markers included (as generated)."""
        markup = self.model.chat.reasoning
        if markup is None or not reasoning:
            return 0
        opened = "" if self.thinks_from_start else markup.open
        return len(self.model.tokenize(f"{opened}{reasoning}{markup.close}",
                                       add_special=False, param=None))

    def start(self, n: int = 1) -> ChatRun:
        """Submit the turn's `n` choices."""
        try:
            plan_ = self.plan
            params = replace(self.turn.sampling, grammar=plan_.grammar)
            req = build_request(self.model, plan_.tokens, self.turn.max_tokens, params,
                                plan_.stop, media=plan_.media)
            markup = self.model.chat.reasoning
            if plan_.budget is not None and n != 1:
                raise APIError(400, "a thinking budget needs n = 1", param="thinking_budget")
            if plan_.budget is not None and markup is not None:
                # Thinking, then (the block closed when the budget is spent) the answer.
                gen = BudgetedGeneration(self.model, req, plan_.budget, markup,
                                         plan_.answer_grammar)
                self.generation = OneChoice(gen)
            else:
                self.submit(req, n)
        except BaseException:
            self.close()
            raise
        return self

    def parts(self, text: str, cut: bool = False) -> ReplyParts:
        """A finished reply's thinking, content and tool calls, as its stream sends them;
        `cut`: it ended at max_tokens (a cut call keeps its partial arguments)."""
        reasoning, rest = split_reasoning(self.model.chat.reasoning, text, self.thinks_from_start)
        if self.tools_active:
            return ReplyParts(reasoning, *self.model.chat.split_reply(rest, cut, self.tools,
                                                                      self.plan.max_calls))
        return ReplyParts(reasoning, rest, [])

    def split(self, text: str, cut: bool = False) -> tuple[str | None, list[ToolCall]]:
        """A finished reply as (content, tool calls), its thinking left out; content is the
        answer's whole text without tools."""
        parts = self.parts(text, cut)
        return parts.content, parts.calls

    def check_output(self, text: str) -> None:
        """The structured-output guarantee for a reply that ended normally without a call
        (on its answer: the thinking before it is free text)."""
        _, answer = split_reasoning(self.model.chat.reasoning, text, self.thinks_from_start)
        check_structured_output(self.turn.response_format, answer,
                                client_stop=bool(self.turn.stop))


def start_turn(turn: Turn, n: int = 1) -> ChatRun:
    return ChatRun(turn).start(n)


class ReplySplitter:
    """One streamed reply as reasoning, content and tool-call deltas. A reasoning model's
    thinking markup never reaches the content, nor (with tools) the call markup. `reasoning`:
    send the thinking as {"reasoning": ...} deltas (else it is dropped)."""

    def __init__(self, run: ChatRun, reasoning: bool = False):
        self._calls = run.model.chat.tool_stream(run.tools, run.plan.max_calls) \
            if run.tools_active else None
        self._thinking = run.reasoning_splitter()
        self._send_reasoning = reasoning

    @property
    def reasoning(self) -> str:
        """The thinking so far (sent or not)."""
        return self._thinking.reasoning if self._thinking else ""

    def feed_deltas(self, text: str) -> list[dict[str, Any]]:
        """OpenAI-style deltas: {"content": ...} or {"tool_call": <delta.tool_calls[] entry>},
        and {"reasoning": ...} when asked for."""
        if self._thinking is None:
            return self._answer(text)
        return self._route(self._thinking.feed(text))

    def finish_deltas(self, cut: bool) -> list[dict[str, Any]]:
        held = self._route(self._thinking.finish()) if self._thinking else []
        return held + (self._calls.finish(cut) if self._calls else [])

    def _route(self, deltas: list[dict[str, str]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for delta in deltas:
            if "content" in delta:
                out.extend(self._answer(delta["content"]))
            elif self._send_reasoning:
                out.append(delta)
        return out

    def _answer(self, text: str) -> list[dict[str, Any]]:
        return self._calls.feed(text) if self._calls else ([{"content": text}] if text else [])

    @property
    def calls(self) -> list[ToolCall]:
        return self._calls.calls if self._calls else []
