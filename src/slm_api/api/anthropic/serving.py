"""The Messages API over the shared core: system text, messages (text, tool_use and
tool_result blocks) and tools as a chat `Turn`, and the core's output back as a Message or
Anthropic's named stream events (message_start, content_block_*, message_delta, ...).

`tool_use` / `tool_result` blocks become tool calls and tool messages, `tools[].input_schema`
the functions' parameters, `output_config` a response format.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any, cast

from slm_api.api.anthropic.protocol import (
    AssistantMessage,
    Base64ImageSource,
    CountTokensRequest,
    ImageBlock,
    Message,
    MessagesPrompt,
    MessagesRequest,
    StopReason,
    TextBlock,
    ThinkingBlock,
    TokenCount,
    ToolResultBlock,
    ToolUseBlock,
    URLImageSource,
    Usage,
    UserMessage,
)
from slm_api.api.core.blocks import BlockDelta, BlockKind, BlockStop, stream_blocks
from slm_api.api.core.body import completion_budget
from slm_api.api.core.conversation import ChatRun, Turn, start_turn
from slm_api.api.core.media_parts import MediaIntake, media_intake
from slm_api.api.core.protocol import ResponseFormat
from slm_api.api.core.reply import cut, finish_names
from slm_api.api.core.run import chunks, collect
from slm_api.engine import Finished, SamplingParams
from slm_api.errors import APIError
from slm_api.prompting.chat_format import ToolCall

# -- request -> chat -----------------------------------------------------------------------


def _chat_messages(req: MessagesPrompt) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if req.system:
        system = req.system if isinstance(req.system, str) else "\n".join(
            b.text for b in req.system)
        out.append({"role": "system", "content": system})
    intake = media_intake()
    for i, msg in enumerate(req.messages):
        out.extend(_chat_message(msg, intake, f"messages.{i}.content"))
    return out


def _image(block: ImageBlock, intake: MediaIntake, where: str) -> dict[str, Any]:
    """An `image` block as the core's image part, each refusal naming Anthropic's field."""
    source = block.source
    if isinstance(source, Base64ImageSource):
        return intake.image_base64(source.data, param=f"{where}.source.data",
                                   media_type=source.media_type,
                                   media_param=f"{where}.source.media_type")
    if isinstance(source, URLImageSource):
        return intake.image_url(source.url, param=f"{where}.source.url")
    raise APIError(400, f"{where}.source: file sources are not supported (this server keeps "
                   "no files); send the image as base64", param=f"{where}.source.file_id",
                   code="unsupported_value")


def _chat_message(msg: UserMessage | AssistantMessage, intake: MediaIntake, where: str
                  ) -> list[dict[str, Any]]:
    if isinstance(msg.content, str):
        return [{"role": msg.role, "content": msg.content}]
    texts = [{"type": "text", "text": b.text} if isinstance(b, TextBlock)
             else _image(b, intake, f"{where}.{j}")
             for j, b in enumerate(msg.content) if isinstance(b, TextBlock | ImageBlock)]
    if msg.role == "assistant":
        calls = [{"id": b.id, "type": "function", "function": {
                  "name": b.name, "arguments": json.dumps(b.input, ensure_ascii=False)}}
                 for b in msg.content if isinstance(b, ToolUseBlock)]
        message: dict[str, Any] = {"role": "assistant", "content": texts}
        if calls:
            message["tool_calls"] = calls
        return [message]
    out: list[dict[str, Any]] = []
    for block in msg.content:
        if isinstance(block, ToolResultBlock):
            text = block.text()
            out.append({"role": "tool", "tool_call_id": block.tool_use_id,
                        "content": f"Error: {text}" if block.is_error else text})
    if texts or not out:
        out.append({"role": "user", "content": texts})
    return out


def _tools(req: MessagesPrompt) -> tuple[list[dict[str, Any]] | None, Any]:
    """Anthropic tools and tool_choice in OpenAI's terms (what the chat formatter takes)."""
    tools = [
        {"type": "function", "function": {
            "name": t.name, "description": t.description or "", "parameters": t.input_schema}}
        for t in req.tools or []
    ] or None
    choice = req.tool_choice
    if choice is None or tools is None:
        return tools, None  # no tools: nothing to choose from, nothing to force
    if choice.type == "tool":
        return tools, {"type": "function", "function": {"name": choice.name}}
    return tools, {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def _turn(req: MessagesPrompt, sampling: SamplingParams, max_tokens: int | None = None,
          stop: list[str] | None = None, response_format: ResponseFormat | None = None) -> Turn:
    tools, tool_choice = _tools(req)
    return Turn(model=req.model, messages=_chat_messages(req), sampling=sampling,
                max_tokens=max_tokens, tools=tools, tool_choice=tool_choice, stop=stop or [],
                response_format=response_format, thinking=req.thinking_switch,
                parallel_tool_calls=not (req.tool_choice and
                                         req.tool_choice.disable_parallel_tool_use),
                thinking_budget=req.thinking.budget_tokens
                if req.thinking and req.thinking.type == "enabled" else None)


def count_tokens(req: CountTokensRequest) -> TokenCount:
    """The prompt tokens a /v1/messages request with this system, messages and tools would use."""
    with ChatRun(_turn(req, SamplingParams())) as run:
        return TokenCount(input_tokens=len(run.prompt_tokens))


# -- chat -> reply -------------------------------------------------------------------------


def _tool_use_id(call: ToolCall) -> str:
    # Anthropic ids look like toolu_...; the id only has to round-trip through tool_result.
    return "toolu_" + call.id.removeprefix("call_")


def _tool_use(call: ToolCall) -> ToolUseBlock:
    try:
        value = json.loads(call.arguments)
    except json.JSONDecodeError:  # cut by max_tokens: the stream sent what was written
        value = {}
    return ToolUseBlock(type="tool_use", id=_tool_use_id(call), name=call.name,
                        input=value if isinstance(value, dict) else {})


class MessageReply:
    """A Messages request started as a turn, and its output as a Message or its events."""

    def __init__(self, req: MessagesRequest):
        self.stops = [s for s in req.stop_sequences or [] if s]
        self.run: ChatRun = start_turn(_turn(
            req, req.to_sampling_params(), completion_budget(req.max_tokens), self.stops,
            req.response_format()))
        self.id = "msg_" + secrets.token_hex(12)
        self.model = self.run.model.info.id
        # Thinking blocks only when the request enables them; else the thinking is dropped.
        self.show_thinking = bool(req.thinking_switch)

    def _stop(self, finished: Finished | None, called: bool) -> tuple[StopReason, str | None]:
        reason = cast(StopReason, finish_names(finished, called).anthropic)
        if reason != "stop_sequence":
            return reason, None
        matched = finished.stop_sequence if finished else None
        if matched not in self.stops:
            return "end_turn", None  # the template's end-of-turn string, not the client's
        return reason, matched

    def _usage(self, finished: Finished | None) -> Usage:
        return Usage(input_tokens=len(self.run.prompt_tokens),
                     output_tokens=finished.completion_tokens if finished else 0)

    def complete(self) -> Message:
        with self.run:
            out = collect(self.run.generation)
        text, finished = out.text, out.finished
        parts = self.run.parts(text, cut(finished))
        content, calls = parts.content, parts.calls
        reason, matched = self._stop(finished, bool(calls))
        if reason == "end_turn":
            self.run.check_output(text)
        blocks: list[ThinkingBlock | TextBlock | ToolUseBlock] = []
        if parts.reasoning and self.show_thinking:
            blocks.append(ThinkingBlock(type="thinking", thinking=parts.reasoning))
        if content:
            blocks.append(TextBlock(type="text", text=content))
        blocks.extend(_tool_use(call) for call in calls)
        return Message(id=self.id, model=self.model, content=blocks, stop_reason=reason,
                       stop_sequence=matched, usage=self._usage(finished))

    def stream(self) -> Iterator[dict[str, Any]]:
        start = Message(id=self.id, model=self.model, content=[], stop_reason=None,
                        usage=Usage(input_tokens=len(self.run.prompt_tokens), output_tokens=0))
        yield {"type": "message_start", "message": start.model_dump()}
        yield {"type": "ping"}
        # The core's blocks as Anthropic's: thinking, text, and each call a tool_use block
        # with its input streamed as input_json_delta fragments.
        called = False
        for block in stream_blocks(self.run, chunks(self.run), thinking=self.show_thinking):
            if isinstance(block, BlockStop):
                yield {"type": "content_block_stop", "index": block.index}
            elif isinstance(block, BlockDelta):
                yield {"type": "content_block_delta", "index": block.index,
                       "delta": _DELTAS[block.kind](block.text)}
            elif block.kind is BlockKind.TOOL_CALL:
                assert block.call is not None
                called = True
                yield {"type": "content_block_start", "index": block.index,
                       "content_block": {"type": "tool_use", "id": _tool_use_id(block.call),
                                         "name": block.call.name, "input": {}}}
                if block.arguments:
                    yield {"type": "content_block_delta", "index": block.index,
                           "delta": _DELTAS[block.kind](block.arguments)}
            else:
                yield {"type": "content_block_start", "index": block.index,
                       "content_block": dict(_OPENINGS[block.kind])}
        finished = self.run.result
        reason, matched = self._stop(finished, called)
        yield {"type": "message_delta",
               "delta": {"stop_reason": reason, "stop_sequence": matched},
               "usage": {"output_tokens": finished.completion_tokens if finished else 0}}
        yield {"type": "message_stop"}


_OPENINGS: dict[BlockKind, dict[str, str]] = {
    BlockKind.THINKING: {"type": "thinking", "thinking": "", "signature": ""},
    BlockKind.TEXT: {"type": "text", "text": ""},
}
_DELTAS = {
    BlockKind.THINKING: lambda text: {"type": "thinking_delta", "thinking": text},
    BlockKind.TEXT: lambda text: {"type": "text_delta", "text": text},
    BlockKind.TOOL_CALL: lambda text: {"type": "input_json_delta", "partial_json": text},
}
