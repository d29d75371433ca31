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

from slm_api.api.generate import Collected, Run, build_request, load_options
from slm_api.api.schemas import LoadModelConfigs, ResponseFormat
from slm_api.api.structured import check_structured_output, response_format_grammar
from slm_api.engine import Choices, Chunk, Finished, SamplingParams
from slm_api.errors import APIError
from slm_api.grammar import schema_to_gbnf
from slm_api.prompting.chat_format import ToolCall, tool_call_schema


def plan_tools(
    tools: list[dict[str, Any]] | None,
    tool_choice: Any,
    response_format: ResponseFormat | None,
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Which tools the prompt shows, and the grammar (if any) that constrains the reply: a forced
    tool_choice becomes a grammar for one <tool_call> block, else a response format one for
    JSON."""
    choice = tool_choice if tool_choice is not None else ("auto" if tools else "none")
    if choice != "none" and not tools:
        raise APIError(400, "tool_choice needs a non-empty tools list", param="tool_choice")
    grammar = response_format_grammar(response_format)
    if tools and choice != "none":
        schema = tool_call_schema(tools, choice)
        if schema is not None:
            # A forced call has no text for the format to shape: the call's grammar wins (as
            # OpenAI does; the Agents SDK sends both when an agent has an output_type).
            grammar = schema_to_gbnf(schema, prefix="<tool_call>", suffix="</tool_call>")
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
        super().__init__(turn.model, load_options(turn.load_configs))
        try:
            self.turn = turn
            self.tools, self.grammar = plan_tools(
                turn.tools, turn.tool_choice, turn.response_format
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

    def split(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """A finished reply as (content, tool calls); content is the whole text without tools."""
        if self.tools_active:
            return self.model.chat.parse_tool_calls(text)
        return text, []

    def check_output(self, text: str) -> None:
        """The structured-output guarantee for a reply that ended normally without a call."""
        check_structured_output(self.turn.response_format, text)


def start_turn(turn: Turn, n: int | None = None) -> ChatRun:
    return ChatRun(turn).start(n)


@dataclass
class TextPiece:
    text: str
    chunk: Chunk | None = None


@dataclass
class CallsFound:
    """The end of a streamed reply: leftover content and the tool calls it made."""

    rest: str
    calls: list[ToolCall]


class ReplySplitter:
    """One streamed reply's text as it comes, and its tool calls at the end. With tools, text
    that may open a <tool_call> is held back until it is known."""

    def __init__(self, run: ChatRun):
        self._calls = run.model.chat.tool_stream() if run.tools_active else None

    def feed(self, text: str) -> str:
        return self._calls.feed(text) if self._calls else text

    def finish(self) -> CallsFound:
        if self._calls is None:
            return CallsFound("", [])
        rest, calls = self._calls.finish()
        return CallsFound(rest, calls)


def stream_pieces(run: ChatRun, chunks: Iterator[Chunk]) -> Iterator[TextPiece | CallsFound]:
    """A single reply's text pieces, then once its CallsFound."""
    splitter = ReplySplitter(run)
    for chunk in chunks:
        text = splitter.feed(chunk.text)
        if text or chunk.logprobs:
            yield TextPiece(text, chunk)
    yield splitter.finish()


def collect_choices(choices: Choices) -> list[Collected]:
    """Each choice's whole output, from the interleaved stream of all of them."""
    outs = [Collected() for _ in choices.jobs]
    parts: list[list[str]] = [[] for _ in choices.jobs]
    for index, item in choices:
        out = outs[index]
        if isinstance(item, Finished):
            out.finished = item
            continue
        parts[index].append(item.text)
        out.token_ids.extend(item.token_ids)
        out.logprobs.extend(item.logprobs)
    for out, texts in zip(outs, parts, strict=True):
        out.text = "".join(texts)
    return outs
