"""POST /v1/chat/completions: messages in, an assistant message (or tool calls) out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.generate import (
    Collected,
    Run,
    build_request,
    collect,
    completion_budget,
    finish_reason,
    iterate,
    load_options,
    parse_body,
    sampling_params,
    usage,
)
from slm_api.api.logprobs import chat_logprobs
from slm_api.api.schemas import ChatCompletionRequest
from slm_api.api.sse import sse_response
from slm_api.api.structured import check_structured_output, response_format_grammar
from slm_api.engine.llama_model import LoadedModel
from slm_api.errors import APIError
from slm_api.grammar import schema_to_gbnf
from slm_api.prompting.chat_format import tool_call_schema

bp = Blueprint("chat", __name__)


def _plan(req: ChatCompletionRequest) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Which tools the prompt shows, and the grammar (if any) that constrains the reply."""
    tools = req.tool_dicts()
    choice = req.tool_choice if req.tool_choice is not None else ("auto" if tools else "none")
    if choice != "none" and not tools:
        raise APIError(400, "tool_choice needs a non-empty tools list", param="tool_choice")
    grammar = response_format_grammar(req.response_format)
    if tools and choice != "none":
        schema = tool_call_schema(tools, choice)
        if schema is not None:
            if grammar is not None:
                raise APIError(
                    400, "response_format cannot be combined with a forced tool_choice",
                    param="response_format",
                )
            grammar = schema_to_gbnf(schema, prefix="<tool_call>", suffix="</tool_call>")
        return tools, grammar
    return None, grammar


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    req = parse_body(ChatCompletionRequest)
    max_tokens = completion_budget(req.completion_limit)
    tools, grammar = _plan(req)
    n_probs = max(1, req.top_logprobs or 0) if req.logprobs else 0
    messages = req.message_dicts()

    run = Run(req.model, load_options(req.load_model_configs))
    try:
        prompt = run.model.chat.render(messages, tools=tools, add_generation_prompt=True)
        tokens = run.model.tokenize(prompt)
        stops = [*(req.stop or []), *run.model.chat.stop]
        params = sampling_params(req, grammar=grammar, n_probs=n_probs)
        run.submit(build_request(run.model, tokens, max_tokens, params, stops))
    except BaseException:
        run.close()
        raise

    reply = _Reply(run.model, req, tools_active=tools is not None)
    if req.stream:
        return sse_response(reply.stream(run))
    with run:
        out = collect(run.generation)
    return jsonify(reply.complete(out))


class _Reply:
    """Shapes engine output as chat.completion objects and chunks."""

    def __init__(self, model: LoadedModel, req: ChatCompletionRequest, *, tools_active: bool):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model.info.id
        self.parse_tool_calls = model.chat.parse_tool_calls
        self.tool_stream = model.chat.tool_stream
        self.req = req
        self.tools_active = tools_active

    def _message(self, text: str) -> tuple[dict[str, Any], bool]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.tools_active:
            content, calls = self.parse_tool_calls(text)
            if calls:
                message["content"] = content
                message["tool_calls"] = [c.to_openai() for c in calls]
                return message, True
        return message, False

    def complete(self, out: Collected) -> dict[str, Any]:
        message, called = self._message(out.text)
        reason = "tool_calls" if called else finish_reason(out.finished)
        if not called and reason == "stop":
            check_structured_output(self.req.response_format, out.text)
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
        # With tools, text that may open a <tool_call> is held back until it is known.
        calls_stream = self.tool_stream() if self.tools_active else None
        for chunk in iterate(run):
            text = calls_stream.feed(chunk.text) if calls_stream else chunk.text
            if text or chunk.logprobs:
                logprobs = (
                    chat_logprobs(list(chunk.logprobs), self.req.top_logprobs)
                    if self.req.logprobs
                    else None
                )
                yield self._chunk({"content": text}, logprobs=logprobs)
        finished = run.generation.result if run.generation else None
        reason = finish_reason(finished)
        if calls_stream:
            rest, calls = calls_stream.finish()
            if rest:
                yield self._chunk({"content": rest})
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

