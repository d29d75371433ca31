"""The chat request-to-engine path that every chat-shaped API shares (chat completions,
Anthropic Messages, OpenAI Responses): which tools the prompt shows, the grammar that constrains
the reply, rendering and submitting the prompt, and splitting a reply into text and tool calls.

Each API family only translates its own request into a `Turn` (OpenAI chat messages and tools,
the lingua franca of the chat formatter) and the engine's output back into its own shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from slm_api.api.core.protocol import LoadModelConfigs, ResponseFormat
from slm_api.api.core.run import Run, build_request
from slm_api.api.core.structured import check_structured_output, response_format_grammar
from slm_api.engine import Chunk, SamplingParams
from slm_api.errors import APIError
from slm_api.prompting.chat_format import ToolCall, ToolMarkup, forced_functions


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
            prompt = self.model.chat.render(
                turn.messages, tools=self.tools, add_generation_prompt=True
            )
            self.prompt_tokens = self.model.tokenize(prompt)
        except BaseException:
            self.close()
            raise

    @property
    def tools_active(self) -> bool:
        return self.tools is not None

    def start(self, n: int | None = None) -> ChatRun:
        """Submit one generation, or with `n` that many choices (a Choices stream)."""
        try:
            stops = [*self.turn.stop, *self.model.chat.stop]
            params = replace(self.turn.sampling, grammar=self.grammar)
            req = build_request(self.model, self.prompt_tokens, self.turn.max_tokens, params,
                                stops)
            if n is None:
                self.submit(req)
            else:
                self.submit_choices(req, n)
        except BaseException:
            self.close()
            raise
        return self

    def split(self, text: str, cut: bool = False) -> tuple[str | None, list[ToolCall]]:
        """A finished reply as (content, tool calls); content is the whole text without tools.
        `cut`: it ended at max_tokens (a cut call keeps its partial arguments)."""
        if self.tools_active:
            return self.model.chat.split_reply(text, cut)
        return text, []

    def check_output(self, text: str) -> None:
        """The structured-output guarantee for a reply that ended normally without a call."""
        check_structured_output(self.turn.response_format, text,
                                client_stop=bool(self.turn.stop))


def start_turn(turn: Turn, n: int | None = None) -> ChatRun:
    return ChatRun(turn).start(n)


class ReplySplitter:
    """One streamed reply as content and tool-call deltas. With tools, the model's call markup
    never reaches the content."""

    def __init__(self, run: ChatRun):
        self._calls = run.model.chat.tool_stream() if run.tools_active else None

    def feed_deltas(self, text: str) -> list[dict[str, Any]]:
        """OpenAI-style deltas: {"content": ...} or {"tool_call": <delta.tool_calls[] entry>}."""
        return self._calls.feed(text) if self._calls else ([{"content": text}] if text else [])

    def finish_deltas(self, cut: bool) -> list[dict[str, Any]]:
        return self._calls.finish(cut) if self._calls else []

    @property
    def calls(self) -> list[ToolCall]:
        return self._calls.calls if self._calls else []


@dataclass
class TextPiece:
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


def stream_pieces(run: ChatRun, chunks: Iterator[Chunk]
                  ) -> Iterator[TextPiece | CallStart | CallArguments]:
    """A single reply as it is generated: content text, and each tool call as its start then
    its argument fragments (the same deltas chat completions stream as delta.tool_calls)."""
    splitter = ReplySplitter(run)
    for chunk in chunks:
        yield from _pieces(splitter, splitter.feed_deltas(chunk.text))
    finished = run.generation.result if run.generation else None
    cut = finished is not None and finished.finish_reason == "length"
    yield from _pieces(splitter, splitter.finish_deltas(cut))


def _pieces(splitter: ReplySplitter, deltas: list[dict[str, Any]]
            ) -> Iterator[TextPiece | CallStart | CallArguments]:
    for delta in deltas:
        entry = delta.get("tool_call")
        if entry is None:
            if delta["content"]:
                yield TextPiece(delta["content"])
        elif "id" in entry:
            yield CallStart(splitter.calls[entry["index"]], entry["function"]["arguments"])
        else:
            yield CallArguments(entry["function"]["arguments"])
