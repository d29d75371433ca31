"""The Responses API over the shared core: input items (and a stored conversation that
`previous_response_id` continues) as chat messages for a `Turn`, and the core's output as a
response object or its numbered stream events, stored for GET and continuation.

Input items become chat messages for the shared chat path (api/core/conversation.py):
`instructions` a system message, `function_call` items assistant tool calls,
`function_call_output` items tool messages; `text.format` is chat's response_format. With
`store` (the default) the response and the conversation it ended go into SQLite (store.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

from slm_api.api.core.blocks import BlockKind, BlockStart, BlockStop, stream_blocks
from slm_api.api.core.body import completion_budget
from slm_api.api.core.conversation import ChatRun, Turn, start_turn
from slm_api.api.core.dialect import Dialect
from slm_api.api.core.media_parts import MediaIntake, media_intake
from slm_api.api.core.reply import cut as was_cut
from slm_api.api.core.reply import finish_names
from slm_api.api.core.run import chunks, collect
from slm_api.api.responses.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    IncompleteDetails,
    InputTokensDetails,
    OutputFunctionCall,
    OutputMessage,
    OutputReasoning,
    OutputText,
    OutputTokensDetails,
    ReasoningText,
    ResponseObject,
    ResponseRequest,
    ResponseUsage,
)
from slm_api.api.responses.store import ResponseStore, responses_store
from slm_api.engine import Finished
from slm_api.errors import APIError, SlmError
from slm_api.prompting.chat_format import ToolCall

Output = OutputReasoning | OutputMessage | OutputFunctionCall


def _store() -> ResponseStore:
    return responses_store()


def _not_found(response_id: str) -> APIError:
    return APIError(404, f"Response with id '{response_id}' not found.", param="response_id",
                    code="response_not_found")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


# -- input items -> chat messages ----------------------------------------------------------


def _input_items(req: ResponseRequest) -> list[dict[str, Any]]:
    """This request's input as item dicts (what a stored conversation is made of), its images
    checked and inlined as data URLs (so a stored conversation never fetches one again)."""
    if isinstance(req.input, str):
        return [{"type": "message", "role": "user", "content": req.input}]
    items = [item.model_dump(mode="json", by_alias=True, exclude_none=True)
             for item in req.input]
    intake = media_intake()
    for i, item in enumerate(items):
        if item.get("type", "message") == "message" and isinstance(item["content"], list):
            item["content"] = [_checked_image(part, intake, f"input.{i}.content.{j}")
                               if part["type"] == "input_image" else part
                               for j, part in enumerate(item["content"])]
    return items


def _checked_image(part: dict[str, Any], intake: MediaIntake, where: str) -> dict[str, Any]:
    if part.get("file_id") is not None:
        raise APIError(400, f"{where}.file_id: file inputs are not supported (this server "
                       "keeps no files); send image_url as a base64 data URL",
                       param=f"{where}.file_id", code="unsupported_value")
    spec = intake.image_url(part.get("image_url"), param=f"{where}.image_url",
                            detail=part.get("detail"))["image_url"]
    return {**part, "image_url": spec["url"]}


def _text(content: Any) -> list[dict[str, Any]] | str:
    if isinstance(content, str):
        return content
    return [{"type": "text", "text": part["text"]} if part["type"] != "input_image" else
            {"type": "image_url", "image_url": {"url": part["image_url"],
                                                **({"detail": part["detail"]}
                                                   if part.get("detail") else {})}}
            for part in content]


def chat_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Response input items as chat messages; a function_call joins the assistant message
    before it, so a reply's text and calls stay one turn."""
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            out.append({"role": item["role"], "content": _text(item["content"])})
        elif kind == "function_call":
            call = FunctionCallItem.model_validate(item)
            tool_call = {"id": call.call_id, "type": "function",
                         "function": {"name": call.name, "arguments": call.arguments}}
            last = out[-1] if out else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": ""}
                out.append(last)
            last.setdefault("tool_calls", []).append(tool_call)
        elif kind == "function_call_output":
            result = FunctionCallOutputItem.model_validate(item)
            out.append({"role": "tool", "tool_call_id": result.call_id, "content": result.text()})
    return out


# The item types chat_messages turns into prompt text. A reasoning item (sent back, or an
# earlier output) never is: stored along every previous_response_id it would be copied into
# each later row (row k holding k copies) while no context bounds its size.
_PROMPTED = frozenset({"message", "function_call", "function_call_output"})


def prompted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of a conversation worth storing: those that reach the prompt."""
    return [item for item in items if item.get("type", "message") in _PROMPTED]


def _conversation(req: ResponseRequest, owner: str) -> list[dict[str, Any]]:
    items = _input_items(req)
    if req.previous_response_id is None:
        return items
    earlier = _store().get(owner, req.previous_response_id)
    if earlier is None:
        raise _not_found(req.previous_response_id)
    return [*earlier.conversation, *items]


def stored(owner: str, response_id: str) -> dict[str, Any]:
    """A stored response, as it was returned (404 when it is not there, or not `owner`'s)."""
    found = _store().get(owner, response_id)
    if found is None:
        raise _not_found(response_id)
    return found.response


def delete(owner: str, response_id: str) -> None:
    if not _store().delete(owner, response_id):
        raise _not_found(response_id)


# -- engine output -> response -------------------------------------------------------------


class ResponseReply:
    """A request's conversation started as a turn, and its output as the response object
    (stored when `store`) or as the stream of events that builds it."""

    def __init__(self, req: ResponseRequest, owner: str):
        self.req = req
        self.owner = owner  # bound now: a stream ends after the request context is gone
        self.items = _conversation(req, owner)
        self.run: ChatRun = start_turn(Turn(
            model=req.model,
            messages=chat_messages(req.instructions, self.items),
            sampling=req.to_sampling_params(),
            max_tokens=completion_budget(req.max_output_tokens, "max_output_tokens"),
            tools=[t.to_chat() for t in req.tools or []] or None,
            tool_choice=req.chat_tool_choice(),
            parallel_tool_calls=req.parallel_tool_calls,
            response_format=req.response_format(),
            reasoning_effort=req.reasoning.effort if req.reasoning else None,
        ))
        self.store = _store()
        self.object = ResponseObject(
            id=_new_id("resp"), created_at=int(time.time()), status="in_progress",
            model=self.run.model.info.id, output=[], instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            previous_response_id=req.previous_response_id, store=req.store,
            temperature=req.temperature, top_p=req.top_p,
            text={"format": req.text.format.model_dump(by_alias=True, exclude_none=True)}
            if req.text and req.text.format else {"format": {"type": "text"}},
            tool_choice=req.tool_choice.model_dump() if hasattr(req.tool_choice, "model_dump")
            else (req.tool_choice or "auto"),
            tools=[t.model_dump(exclude_none=True) for t in req.tools or []],
            parallel_tool_calls=req.parallel_tool_calls, metadata=req.metadata or {},
            reasoning=req.reasoning.model_dump() if req.reasoning
            else {"effort": None, "summary": None},
        )

    def _finish(self, output: list[Output], finished: Finished | None,
                reasoning: str) -> dict[str, Any]:
        """Fill in the final object, store it, and return it as JSON."""
        obj = self.object
        obj.output = output
        reason = finish_names(finished).responses
        obj.status = "incomplete" if reason else "completed"
        obj.incomplete_details = IncompleteDetails(reason=reason) if reason else None
        prompt = len(self.run.prompt_tokens)
        completion = finished.completion_tokens if finished else 0
        obj.usage = ResponseUsage(
            input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion,
            input_tokens_details=InputTokensDetails(
                cached_tokens=finished.cached_tokens if finished else 0),
            output_tokens_details=OutputTokensDetails(
                reasoning_tokens=min(self.run.reasoning_tokens(reasoning), completion)),
        )
        data = obj.model_dump(mode="json")
        if self.req.store:
            outputs = [item.model_dump(mode="json") for item in output]
            self.store.put(self.owner, data, prompted([*self.items, *outputs]))
        return data

    @staticmethod
    def _call_item(call: ToolCall) -> OutputFunctionCall:
        return OutputFunctionCall(id=_new_id("fc"), call_id=call.id, name=call.name,
                                  arguments=call.arguments)

    def complete(self) -> dict[str, Any]:
        with self.run:
            out = collect(self.run.generation)
        text, finished = out.text, out.finished
        cut = was_cut(finished)
        parts = self.run.parts(text, cut)
        content, calls = parts.content, parts.calls
        if not calls and not cut:
            self.run.check_output(text)
        output: list[Output] = []
        if parts.reasoning:
            # The thinking comes before the answer, as an item of its own.
            output.append(OutputReasoning(
                id=_new_id("rs"), content=[ReasoningText(text=parts.reasoning)],
                status="incomplete" if cut and not content and not calls else "completed"))
        if content:
            output.append(OutputMessage(id=_new_id("msg"), content=[OutputText(text=content)],
                                        status="incomplete" if cut else "completed"))
        output.extend(self._call_item(call) for call in calls)
        return self._finish(output, finished, parts.reasoning)

    def stream(self) -> Iterator[dict[str, Any]]:
        return self._stream(_Events())

    def _stream(self, ev: _Events) -> Iterator[dict[str, Any]]:
        snapshot = self.object.model_dump(mode="json")
        yield ev.next("response.created", response=snapshot)
        yield ev.next("response.in_progress", response=snapshot)
        # The core's blocks as output items: reasoning, a message, each function call with its
        # arguments streamed as response.function_call_arguments.delta fragments.
        output: list[Output] = []
        reasoning = ""
        cut = False
        for block in stream_blocks(self.run, chunks(self.run), thinking=True):
            if isinstance(block, BlockStart):
                yield from self._open(ev, output, block)
                continue
            item = output[block.index]
            if isinstance(block, BlockStop):
                cut = block.at_end and was_cut(self.run.result)
                status = "incomplete" if cut and not isinstance(item, OutputFunctionCall) \
                    else "completed"
                yield from self._close(ev, item, block.index, status)
            elif isinstance(item, OutputFunctionCall):
                item.arguments += block.text
                yield ev.next("response.function_call_arguments.delta", item_id=item.id,
                              output_index=block.index, delta=block.text)
            elif isinstance(item, OutputReasoning):
                reasoning += block.text
                item.content[0].text += block.text
                yield ev.next("response.reasoning_text.delta", item_id=item.id,
                              output_index=block.index, content_index=0, delta=block.text)
            else:
                assert isinstance(item, OutputMessage)
                yield from self._text_delta(ev, item, block.index, block.text)
        finished = self.run.result
        cut = was_cut(finished)
        final = self._finish(output, finished, reasoning)
        kind = "response.incomplete" if cut else "response.completed"
        yield ev.next(kind, response=final)

    def _open(self, ev: _Events, output: list[Output], block: BlockStart
              ) -> Iterator[dict[str, Any]]:
        if block.kind is BlockKind.TOOL_CALL:
            assert block.call is not None
            call = self._call_item(block.call)
            call.arguments, call.status = "", "in_progress"
            output.append(call)
            yield ev.next("response.output_item.added", output_index=block.index,
                          item=call.model_dump(mode="json"))
            if block.arguments:
                call.arguments = block.arguments
                yield ev.next("response.function_call_arguments.delta", item_id=call.id,
                              output_index=block.index, delta=block.arguments)
            return
        item: OutputMessage | OutputReasoning
        if block.kind is BlockKind.THINKING:
            item = OutputReasoning(id=_new_id("rs"), status="in_progress",
                                   content=[ReasoningText(text="")])
            part: OutputText | ReasoningText = ReasoningText(text="")
        else:
            item = OutputMessage(id=_new_id("msg"), status="in_progress",
                                 content=[OutputText(text="")])
            part = OutputText(text="")
        output.append(item)
        yield from self._opened(ev, item, block.index, part)

    @staticmethod
    def _text_delta(ev: _Events, message: OutputMessage, index: int, text: str
                    ) -> Iterator[dict[str, Any]]:
        message.content[0].text += text
        yield ev.next("response.output_text.delta", item_id=message.id, output_index=index,
                      content_index=0, delta=text, logprobs=[])

    @staticmethod
    def _opened(ev: _Events, item: OutputMessage | OutputReasoning, index: int,
                part: OutputText | ReasoningText) -> Iterator[dict[str, Any]]:
        yield ev.next("response.output_item.added", output_index=index,
                      item={**item.model_dump(mode="json"), "content": []})
        yield ev.next("response.content_part.added", item_id=item.id, output_index=index,
                      content_index=0, part=part.model_dump(mode="json"))

    @staticmethod
    def _close(ev: _Events, item: Output, index: int,
               status: str) -> Iterator[dict[str, Any]]:
        item.status = status  # type: ignore[assignment]
        if isinstance(item, OutputFunctionCall):
            yield ev.next("response.function_call_arguments.done", item_id=item.id,
                          output_index=index, name=item.name, arguments=item.arguments)
        elif isinstance(item, OutputReasoning):
            part = item.content[0]
            yield ev.next("response.reasoning_text.done", item_id=item.id, output_index=index,
                          content_index=0, text=part.text)
            yield ev.next("response.content_part.done", item_id=item.id, output_index=index,
                          content_index=0, part=part.model_dump(mode="json"))
        else:
            part = item.content[0]
            yield ev.next("response.output_text.done", item_id=item.id, output_index=index,
                          content_index=0, text=part.text, logprobs=[])
            yield ev.next("response.content_part.done", item_id=item.id, output_index=index,
                          content_index=0, part=part.model_dump(mode="json"))
        yield ev.next("response.output_item.done", output_index=index,
                      item=item.model_dump(mode="json"))


class _Events:
    """Stream events, each numbered: clients order and de-duplicate by sequence_number."""

    def __init__(self) -> None:
        self.sequence = 0

    def next(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event


def _error_event(exc: SlmError, sent: int) -> dict[str, Any]:
    # Numbered as the events before it were (from 0, one each).
    return {"type": "error", "sequence_number": sent, "code": exc.code, "message": exc.message,
            "param": exc.param}


# Errors in OpenAI's envelope; streams as named, numbered events, an error as the last one.
RESPONSES = Dialect(framing="named_sse", error_event=_error_event)
