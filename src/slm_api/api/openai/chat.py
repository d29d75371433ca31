"""POST /v1/chat/completions: messages in, an assistant message (or tool calls) out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import choice_count, completion_budget, parse_body
from slm_api.api.core.contract import contract
from slm_api.api.core.conversation import ChatRun, ReplySplitter, Turn, start_turn
from slm_api.api.core.logprobs import chat_logprobs
from slm_api.api.core.reply import finish_reason, usage
from slm_api.api.core.run import Collected, collect_choices, iterate
from slm_api.api.core.sse import sse_response
from slm_api.api.openai.protocol import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from slm_api.engine import Finished

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/completions")
@contract(body=ChatCompletionRequest, response=ChatCompletion, stream=ChatCompletionChunk)
def chat_completions() -> Response:
    """Create a chat completion.

    Messages in, an assistant message (or tool calls) out, as OpenAI's API. With
    `"stream": true` the reply comes as Server-Sent Events. `response_format` (json_object,
    json_schema) and forced `tool_choice` constrain the output with a grammar. `n` choices
    (up to MAX_N) share one evaluation of the prompt."""
    req = parse_body(ChatCompletionRequest)
    n_probs = max(1, req.top_logprobs or 0) if req.logprobs else 0
    n = choice_count(req.n)
    run = start_turn(Turn(
        model=req.model,
        messages=req.message_dicts(),
        sampling=req.to_sampling_params(n_probs=n_probs),
        max_tokens=completion_budget(req.completion_limit),
        tools=req.tool_dicts(),
        tool_choice=req.tool_choice,
        response_format=req.response_format,
        stop=req.stop or [],
        load_configs=req.load_model_configs,
        reasoning_effort=req.reasoning_effort,
        template_kwargs=req.chat_template_kwargs,
        thinking_budget=req.thinking_budget,
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

    def _choice(self, index: int, out: Collected) -> tuple[dict[str, Any], str]:
        reason = finish_reason(out.finished)
        parts = self.run.parts(out.text, reason == "length")
        content, calls = parts.content, parts.calls
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if parts.reasoning:
            message.update(_reasoning(parts.reasoning))
        if calls:
            message["tool_calls"] = [c.to_openai() for c in calls]
            if reason != "length":
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
        }, parts.reasoning

    def _usage(self, total: Finished | None, reasonings: list[str]) -> dict[str, Any]:
        counted = (sum(self.run.reasoning_tokens(r) for r in reasonings)
                   if self.run.model.chat.reasoning is not None else None)
        return usage(total, counted)

    def complete(self, outs: list[Collected], total: Finished | None) -> dict[str, Any]:
        choices = [self._choice(i, out) for i, out in enumerate(outs)]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice for choice, _ in choices],
            "usage": self._usage(total, [r for _, r in choices]),
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
        # With tools, markup becomes tool_calls deltas and never reaches the content; a
        # reasoning model's thinking becomes reasoning_content deltas.
        splitters = [ReplySplitter(self.run, reasoning=True) for _ in range(self.n)]
        for index, item in iterate(self.run):
            if isinstance(item, Finished):
                yield from self._end(index, splitters[index], item)
                continue
            deltas = splitters[index].feed_deltas(item.text)
            logprobs = (
                chat_logprobs(list(item.logprobs), self.req.top_logprobs)
                if self.req.logprobs and item.logprobs
                else None
            )
            if logprobs and not deltas:
                deltas = [{"content": ""}]
            for delta in deltas:
                if delta.get("content") == "" and logprobs is None:
                    continue
                yield self._chunk(index, _openai_delta(delta), logprobs=logprobs)
                logprobs = None
        if self.req.include_usage:
            yield {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self._usage(self.run.generation.result if self.run.generation else None,
                                     [s.reasoning for s in splitters]),
            }

    def _end(self, index: int, splitter: ReplySplitter, finished: Finished
             ) -> Iterator[dict[str, Any]]:
        reason = finish_reason(finished)
        for delta in splitter.finish_deltas(cut=reason == "length"):
            yield self._chunk(index, _openai_delta(delta))
        if splitter.calls and reason != "length":
            reason = "tool_calls"
        yield self._chunk(index, {}, reason)


def _openai_delta(delta: dict[str, Any]) -> dict[str, Any]:
    if "tool_call" in delta:
        return {"tool_calls": [delta["tool_call"]]}
    if "reasoning" in delta:
        return _reasoning(delta["reasoning"])
    return delta


def _reasoning(text: str) -> dict[str, str]:
    # llama-server's field, and vLLM's newer name for it: either kind of client reads it.
    return {"reasoning_content": text, "reasoning": text}
