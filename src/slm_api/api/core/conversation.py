"""The chat request-to-engine path that every chat-shaped API shares (chat completions,
Anthropic Messages, OpenAI Responses): which tools the prompt shows, the grammar that constrains
the reply, rendering and submitting the prompt, and splitting a reply into its thinking (for a
reasoning model, prompting/reasoning.py), its text and its tool calls.

Each API family only translates its own request into a `Turn` (OpenAI chat messages and tools,
the lingua franca of the chat formatter) and the engine's output back into its own shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from slm_api.api.core.media import take_media, tokenize_prompt
from slm_api.api.core.protocol import LoadModelConfigs, ResponseFormat
from slm_api.api.core.run import Run, build_request
from slm_api.api.core.structured import check_structured_output, response_format_grammar
from slm_api.api.core.thinking import BudgetedGeneration, OneChoice
from slm_api.engine import Chunk, SamplingParams
from slm_api.errors import APIError
from slm_api.prompting.chat_format import ToolCall, ToolMarkup, forced_functions
from slm_api.prompting.reasoning import ReasoningDeltas, split_reasoning, thinking_kwargs


def plan_tools(
    tools: list[dict[str, Any]] | None,
    tool_choice: Any,
    response_format: ResponseFormat | None,
    markup: ToolMarkup,
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Which tools the prompt shows, and the grammar (if any) that constrains the reply: a forced
    tool_choice becomes a grammar for one call in the model's own markup (the one its template
    taught it, so the prompt and the constraint agree), else a response format one for JSON."""
    choice = tool_choice if tool_choice is not None else ("auto" if tools else "none")
    if not tools:
        if choice not in ("auto", "none"):
            raise APIError(400, "a forced tool_choice needs a non-empty tools list",
                           param="tool_choice")
        choice = "none"  # nothing to choose from: "auto" is harmless
    grammar = response_format_grammar(response_format)
    if tools and choice != "none":
        fns = forced_functions(tools, choice)
        if fns is not None:
            # A forced call has no text for the format to shape: the call's grammar wins (as
            # OpenAI does; the Agents SDK sends both when an agent has an output_type).
            grammar = markup.grammar(fns)
        return tools, grammar
    return None, grammar


@dataclass
class Turn:
    """One chat-shaped request, in the chat formatter's terms."""

    model: str | None
    messages: list[dict[str, Any]]
    sampling: SamplingParams
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: ResponseFormat | None = None
    stop: list[str] = field(default_factory=list)
    load_configs: LoadModelConfigs | None = None
    # A reasoning model's thinking: None as its template does by default, False off, True on;
    # `reasoning_effort` reaches templates that read it; `template_kwargs` are the client's
    # chat_template_kwargs (an `enable_thinking` there decides).
    thinking: bool | None = None
    reasoning_effort: str | None = None
    template_kwargs: dict[str, Any] | None = None
    # At most this many tokens of thinking, then the server closes the block (api/core/
    # thinking.py); 0: no thinking.
    thinking_budget: int | None = None

    @property
    def thinking_enabled(self) -> bool | None:
        asked = (self.template_kwargs or {}).get("enable_thinking")
        if isinstance(asked, bool):
            return asked
        if self.thinking is not None and self.thinking_budget != 0:
            return self.thinking
        return False if self.reasoning_effort == "none" or self.thinking_budget == 0 else None


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
            self.tools, self.grammar = plan_tools(
                turn.tools, turn.tool_choice, turn.response_format, self.model.chat.tool_markup
            )
            # Images and audio (issue 38, api/core/media.py): parts become markers the
            # template renders as text; the prompt is tokenized with the media at the markers.
            messages, media = take_media(turn.messages, self.model)
            self.prompt_tokens, self.media = tokenize_prompt(
                self.model, self._prompt(replace(turn, messages=messages)), media)
        except BaseException:
            self.close()
            raise

    def _prompt(self, turn: Turn) -> str:
        chat, enabled = self.model.chat, turn.thinking_enabled
        markup = chat.reasoning
        kwargs = {**(turn.template_kwargs or {}),
                  **thinking_kwargs(markup, enabled, turn.reasoning_effort)}
        prompt = chat.render(turn.messages, tools=self.tools, add_generation_prompt=True,
                             template_kwargs=kwargs or None)
        if markup is not None and enabled is False and (
                not markup.toggle or markup.opened_by(prompt)):
            prompt += markup.closing(prompt)  # an empty block: how Qwen3 turns thinking off
        self.budget = turn.thinking_budget if markup is not None and enabled is not False \
            else None
        if self.budget is not None and markup is not None and not markup.opened_by(prompt):
            prompt += f"{markup.open}\n"  # a budget is for thinking: the reply starts in it
        # Whether the reply starts inside the thinking (the prompt opened the block).
        self.thinks_from_start = markup is not None and markup.opened_by(prompt)
        self.answer_grammar = self.grammar
        if markup is not None and self.grammar is not None and enabled is not False \
                and self.budget is None:
            # Free thinking first, then the constrained answer.
            self.grammar = markup.think_first(self.grammar, self.thinks_from_start)
        return prompt

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

    def start(self, n: int | None = None) -> ChatRun:
        """Submit one generation, or with `n` that many choices (a Choices stream)."""
        try:
            stops = [*self.turn.stop, *self.model.chat.stop]
            params = replace(self.turn.sampling, grammar=self.grammar)
            req = build_request(self.model, self.prompt_tokens, self.turn.max_tokens, params,
                                stops, media=self.media)
            markup = self.model.chat.reasoning
            if self.budget is not None and (n or 1) != 1:
                raise APIError(400, "a thinking budget needs n = 1", param="thinking_budget")
            if self.budget is not None and markup is not None:
                # Thinking, then (the block closed when the budget is spent) the answer.
                gen = BudgetedGeneration(self.model, req, self.budget, markup,
                                         self.answer_grammar)
                self.generation = gen if n is None else OneChoice(gen)
            elif n is None:
                self.submit(req)
            else:
                self.submit_choices(req, n)
        except BaseException:
            self.close()
            raise
        return self

    def parts(self, text: str, cut: bool = False) -> ReplyParts:
        """A finished reply's thinking, content and tool calls, as its stream sends them;
        `cut`: it ended at max_tokens (a cut call keeps its partial arguments)."""
        reasoning, rest = split_reasoning(self.model.chat.reasoning, text, self.thinks_from_start)
        if self.tools_active:
            return ReplyParts(reasoning, *self.model.chat.split_reply(rest, cut))
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


def start_turn(turn: Turn, n: int | None = None) -> ChatRun:
    return ChatRun(turn).start(n)


class ReplySplitter:
    """One streamed reply as reasoning, content and tool-call deltas. A reasoning model's
    thinking markup never reaches the content, nor (with tools) the call markup. `reasoning`:
    send the thinking as {"reasoning": ...} deltas (else it is dropped)."""

    def __init__(self, run: ChatRun, reasoning: bool = False):
        self._calls = run.model.chat.tool_stream() if run.tools_active else None
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


@dataclass
class TextPiece:
    text: str


@dataclass
class ReasoningPiece:
    """The next fragment of the thinking (always before any TextPiece or call)."""

    text: str


@dataclass
class CallStart:
    """A tool call begins: its id and name are known; `arguments` is what of them is (all of
    them for a call parsed whole at the end, else "")."""

    call: ToolCall
    arguments: str


@dataclass
class CallArguments:
    """The next fragment of the last started call's arguments."""

    text: str


Piece = TextPiece | ReasoningPiece | CallStart | CallArguments


def stream_pieces(run: ChatRun, chunks: Iterator[Chunk], thinking: bool = False
                  ) -> Iterator[Piece]:
    """A single reply as it is generated: content text, and each tool call as its start then
    its argument fragments (the same deltas chat completions stream as delta.tool_calls).
    `thinking`: a reasoning model's thinking comes first as ReasoningPieces (else dropped)."""
    splitter = ReplySplitter(run, reasoning=thinking)
    for chunk in chunks:
        yield from _pieces(splitter, splitter.feed_deltas(chunk.text))
    finished = run.generation.result if run.generation else None
    cut = finished is not None and finished.finish_reason == "length"
    yield from _pieces(splitter, splitter.finish_deltas(cut))


def _pieces(splitter: ReplySplitter, deltas: list[dict[str, Any]]) -> Iterator[Piece]:
    for delta in deltas:
        entry = delta.get("tool_call")
        if "reasoning" in delta:
            yield ReasoningPiece(delta["reasoning"])
        elif entry is None:
            if delta["content"]:
                yield TextPiece(delta["content"])
        elif "id" in entry:
            yield CallStart(splitter.calls[entry["index"]], entry["function"]["arguments"])
        else:
            yield CallArguments(entry["function"]["arguments"])
