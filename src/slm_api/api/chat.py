"""POST /v1/chat/completions: messages in, an assistant message (or tool calls) out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.conversation import (
    ChatRun,
    ReplySplitter,
    Turn,
    collect_choices,
    start_turn,
)
from slm_api.api.generate import (
    Collected,
    choice_count,
    completion_budget,
    finish_reason,
    iterate,
    parse_body,
    sampling_params,
    usage,
)
from slm_api.api.logprobs import chat_logprobs
from slm_api.api.schemas import ChatCompletionRequest
from slm_api.api.sse import sse_response
from slm_api.engine import Finished

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    req = parse_body(ChatCompletionRequest)
    n_probs = max(1, req.top_logprobs or 0) if req.logprobs else 0
    n = choice_count(req.n)
    run = start_turn(Turn(
        model=req.model,
        messages=req.message_dicts(),
        sampling=sampling_params(req, n_probs=n_probs),
        max_tokens=completion_budget(req.completion_limit),
        tools=req.tool_dicts(),
        tool_choice=req.tool_choice,
        response_format=req.response_format,
        stop=req.stop or [],
        load_configs=req.load_model_configs,
    ), n)
    reply = _Reply(run, req, n)
    if req.stream:
        return sse_response(reply.stream())
    with run:
        outs = collect_choices(run.generation)
    return jsonify(reply.complete(outs, run.generation.result))


class _Reply:
    """Shapes engine output as chat.completion objects and chunks; choices (n > 1) come from
    one interleaved stream and are told apart by `index`."""

    def __init__(self, run: ChatRun, req: ChatCompletionRequest, n: int):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = run.model.info.id
        self.run = run
        self.req = req
        self.n = n

    def _choice(self, index: int, out: Collected) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": out.text}
        content, calls = self.run.split(out.text)
        reason = finish_reason(out.finished)
        if calls:
            message["content"] = content
            message["tool_calls"] = [c.to_openai() for c in calls]
            reason = "tool_calls"
        elif reason == "stop":
            self.run.check_output(out.text)
        return {
            "index": index,
            "message": message,
            "logprobs": chat_logprobs(out.logprobs, self.req.top_logprobs)
            if self.req.logprobs
            else None,
            "finish_reason": reason,
        }

    def complete(self, outs: list[Collected], total: Finished | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [self._choice(i, out) for i, out in enumerate(outs)],
            "usage": usage(total),
            "system_fingerprint": None,
        }

    def _chunk(
        self, index: int, delta: dict[str, Any], reason: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": extra.pop("logprobs", None),
                  "finish_reason": reason}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [choice],
            **extra,
        }

    def stream(self) -> Iterator[dict[str, Any]]:
        for index in range(self.n):
            yield self._chunk(index, {"role": "assistant", "content": ""})
        splitters = [ReplySplitter(self.run) for _ in range(self.n)]
        for index, item in iterate(self.run):
            if isinstance(item, Finished):
                yield from self._end(index, splitters[index], item)
                continue
            text = splitters[index].feed(item.text)
            if text or item.logprobs:
                logprobs = (
                    chat_logprobs(list(item.logprobs), self.req.top_logprobs)
                    if self.req.logprobs
                    else None
                )
                yield self._chunk(index, {"content": text}, logprobs=logprobs)
        if self.req.include_usage:
            yield {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage(self.run.generation.result if self.run.generation else None),
            }

    def _end(self, index: int, splitter: ReplySplitter, finished: Finished
             ) -> Iterator[dict[str, Any]]:
        found = splitter.finish()
        if found.rest:
            yield self._chunk(index, {"content": found.rest})
        for k, call in enumerate(found.calls):
            yield self._chunk(index, {"tool_calls": [{"index": k, **call.to_openai()}]})
        yield self._chunk(index, {}, "tool_calls" if found.calls else finish_reason(finished))
