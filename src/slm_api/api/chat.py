"""POST /v1/chat/completions: messages in, an assistant message (or tool calls) out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.conversation import CallsFound, ChatRun, Turn, start_turn, stream_pieces
from slm_api.api.generate import (
    Collected,
    Run,
    collect,
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
from slm_api.prompting.chat_format import ToolCall

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    req = parse_body(ChatCompletionRequest)
    n_probs = max(1, req.top_logprobs or 0) if req.logprobs else 0
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
    ))
    reply = _Reply(run, req)
    if req.stream:
        return sse_response(reply.stream(run))
    with run:
        out = collect(run.generation)
    return jsonify(reply.complete(out))


class _Reply:
    """Shapes engine output as chat.completion objects and chunks."""

    def __init__(self, run: ChatRun, req: ChatCompletionRequest):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = run.model.info.id
        self.run = run
        self.req = req

    def _message(self, text: str) -> tuple[dict[str, Any], bool]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        content, calls = self.run.split(text)
        if calls:
            message["content"] = content
            message["tool_calls"] = [c.to_openai() for c in calls]
            return message, True
        return message, False

    def complete(self, out: Collected) -> dict[str, Any]:
        message, called = self._message(out.text)
        reason = "tool_calls" if called else finish_reason(out.finished)
        if not called and reason == "stop":
            self.run.check_output(out.text)
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": chat_logprobs(out.logprobs, self.req.top_logprobs)
            if self.req.logprobs
            else None,
            "finish_reason": reason,
        }
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(out.finished),
            "system_fingerprint": None,
        }

    def _chunk(
        self, delta: dict[str, Any], reason: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": extra.pop("logprobs", None),
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

    def stream(self, run: Run) -> Iterator[dict[str, Any]]:
        yield self._chunk({"role": "assistant", "content": ""})
        calls: list[ToolCall] = []
        for piece in stream_pieces(self.run, iterate(run)):
            if isinstance(piece, CallsFound):
                if piece.rest:
                    yield self._chunk({"content": piece.rest})
                calls = piece.calls
                break
            lps = piece.chunk.logprobs if piece.chunk else ()
            logprobs = (
                chat_logprobs(list(lps), self.req.top_logprobs) if self.req.logprobs else None
            )
            yield self._chunk({"content": piece.text}, logprobs=logprobs)
        finished = run.generation.result if run.generation else None
        reason = finish_reason(finished)
        for index, call in enumerate(calls):
            yield self._chunk({"tool_calls": [{"index": index, **call.to_openai()}]})
        if calls:
            reason = "tool_calls"
        yield self._chunk({}, reason)
        if self.req.include_usage:
            yield {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage(finished),
            }

