"""POST /v1/chat/completions: messages in, an assistant message (or tool calls) out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from slm_api.api.body import completion_budget, parse_body
from slm_api.api.contract import contract
from slm_api.api.logprobs import chat_logprobs
from slm_api.api.reply import finish_reason, usage
from slm_api.api.responses import ChatCompletion, ChatCompletionChunk
from slm_api.api.run import Collected, Run, build_request, close_on_error, collect, iterate
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
@contract(body=ChatCompletionRequest, response=ChatCompletion, stream=ChatCompletionChunk)
def chat_completions() -> Response:
    """Create a chat completion.

    Messages in, an assistant message (or tool calls) out, as OpenAI's API. With
    `"stream": true` the reply comes as Server-Sent Events. `response_format` (json_object,
    json_schema) and forced `tool_choice` constrain the output with a grammar."""
    req = parse_body(ChatCompletionRequest)
    max_tokens = completion_budget(req.completion_limit)
    tools, grammar = _plan(req)
    n_probs = max(1, req.top_logprobs or 0) if req.logprobs else 0
    messages = req.message_dicts()

    run = Run(req.model, req.to_load_options())
    with close_on_error([run]):
        prompt = run.model.chat.render(messages, tools=tools, add_generation_prompt=True)
        tokens = run.model.tokenize(prompt)
        stops = [*(req.stop or []), *run.model.chat.stop]
        params = req.to_sampling_params(grammar=grammar, n_probs=n_probs)
        run.submit(build_request(run.model, tokens, max_tokens, params, stops))

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
        self.split_reply = model.chat.split_reply
        self.tool_stream = model.chat.tool_stream
        self.req = req
        self.tools_active = tools_active

    def _message(self, text: str, cut: bool) -> tuple[dict[str, Any], bool]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.tools_active:
            content, calls = self.split_reply(text, cut)
            message["content"] = content
            if calls:
                message["tool_calls"] = [c.to_openai() for c in calls]
                return message, True
        return message, False

    def complete(self, out: Collected) -> dict[str, Any]:
        reason = finish_reason(out.finished)
        message, called = self._message(out.text, reason == "length")
        if called and reason != "length":
            reason = "tool_calls"
        if not called and reason == "stop":
            check_structured_output(self.req.response_format, out.text,
                                    client_stop=bool(self.req.stop))
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
        # With tools, markup becomes tool_calls deltas and never reaches the content.
        calls = self.tool_stream() if self.tools_active else None
        for chunk in iterate(run):
            deltas = calls.feed(chunk.text) if calls else [{"content": chunk.text}]
            logprobs = (
                chat_logprobs(list(chunk.logprobs), self.req.top_logprobs)
                if self.req.logprobs and chunk.logprobs
                else None
            )
            if logprobs and not deltas:
                deltas = [{"content": ""}]
            for delta in deltas:
                if delta.get("content") == "" and logprobs is None:
                    continue
                yield self._chunk(_openai_delta(delta), logprobs=logprobs)
                logprobs = None
        finished = run.generation.result if run.generation else None
        reason = finish_reason(finished)
        if calls:
            for delta in calls.finish(cut=reason == "length"):
                yield self._chunk(_openai_delta(delta))
            if calls.calls and reason != "length":
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



def _openai_delta(delta: dict[str, Any]) -> dict[str, Any]:
    if "tool_call" in delta:
        return {"tool_calls": [delta["tool_call"]]}
    return delta
