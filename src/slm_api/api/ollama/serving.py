"""Ollama's requests mapped onto the conversation core, and the core's output back into
Ollama's replies. Sampling, tool markup and structured decoding are the core's
(api/core/conversation.py, run.py, structured.py): this module only translates field names.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from slm_api.api.core.body import completion_budget
from slm_api.api.core.conversation import (
    CallArguments,
    CallStart,
    ChatRun,
    ReasoningPiece,
    TextPiece,
    Turn,
    start_turn,
    stream_pieces,
)
from slm_api.api.core.protocol import JSONSchemaFormat, ResponseFormat
from slm_api.api.core.reply import cut
from slm_api.api.core.rights import is_shared, use_model
from slm_api.api.core.run import Run, build_request, collect, iterate
from slm_api.api.core.structured import check_structured_output, response_format_grammar
from slm_api.api.ollama.logprobs import LogprobFeed
from slm_api.api.ollama.models import resolve
from slm_api.api.ollama.protocol import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    Format,
    GenerateRequest,
    GeneratingBody,
    KeepAliveBody,
    Message,
)
from slm_api.engine import Chunk, Finished
from slm_api.errors import APIError
from slm_api.plumbing import state
from slm_api.plumbing.security import has_admin_rights
from slm_api.prompting.chat_format import ToolCall
from slm_api.prompting.reasoning import split_reasoning


def now() -> str:
    """Ollama's created_at: RFC 3339 with the zone."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def response_format(fmt: Format) -> ResponseFormat | None:
    """`format`: "json" is any JSON object (json_object), a dict a JSON Schema (json_schema):
    the same grammars /v1/chat/completions' response_format builds."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return ResponseFormat(type="json_object")
    assert isinstance(fmt, dict)
    return ResponseFormat(type="json_schema",
                          json_schema=JSONSchemaFormat.model_validate({"schema": fmt}))


def _refuse_unsupported(req: GeneratingBody, model_id: str, images: bool) -> None:
    # Ollama answers a request for what the model cannot do with a 400 naming the model.
    if images:
        raise APIError(400, f'"{req.model}" does not support images: this server\'s models '
                       "take text only", param="images")


def _thinking(req: GeneratingBody) -> tuple[bool | None, str | None]:
    """`think` as the core's switch and effort: true/false, or GPT-OSS's "high" / "medium" /
    "low" (thinking on at that effort); unset leaves the model's default."""
    if isinstance(req.think, str):
        return True, req.think
    return req.think, None


def _refuse_thinking(req: GeneratingBody, thinks: bool) -> None:
    # As Ollama: asking a model without thinking to think is a 400 naming it.
    if req.think not in (None, False) and not thinks:
        raise APIError(400, f'"{req.model}" does not support thinking', param="think")


def _tool_call_dict(call: dict[str, Any], index: int) -> dict[str, Any]:
    return {"id": call.get("id") or f"call_{index}", "type": "function",
            "function": {"name": call["name"],
                         "arguments": json.dumps(call["arguments"], ensure_ascii=False)}}


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Ollama messages as the chat formatter's (OpenAI-shaped) messages: tool call arguments
    (objects here) become JSON text, a tool result's tool_name its name."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        item: dict[str, Any] = {"role": msg.role, "content": msg.content or ""}
        if msg.tool_calls:
            item["tool_calls"] = [
                _tool_call_dict({"id": c.id, "name": c.function.name,
                                 "arguments": c.function.arguments}, i)
                for i, c in enumerate(msg.tool_calls)]
        if msg.role == "tool":
            if msg.tool_name:
                item["name"] = msg.tool_name
            if msg.tool_call_id:
                item["tool_call_id"] = msg.tool_call_id
        out.append(item)
    return out


def _budget(req: GeneratingBody) -> int | None:
    return completion_budget(req.opts.max_tokens(), "options.num_predict")


def _keep_alive(req: KeepAliveBody, model_id: str, loaded_here: bool) -> None:
    # Set while the model is pinned: the idle clock starts when this request ends. Other
    # clients share the model, so only admin rights set it; a plain client may only shorten
    # the life of a model its own request loaded (api/core/rights.py), else it is ignored, as
    # clients send keep_alive on every request.
    if req.keep_alive is None or is_shared(model_id):
        return  # the active model goes only by an explicit unload (api/core/rights.py)
    if has_admin_rights():
        state.engine().set_keep_alive(model_id, req.keep_alive_s())
    elif loaded_here:
        state.engine().shorten_keep_alive(model_id, req.keep_alive_s())


class _Clock:
    """Ollama's durations (nanoseconds): the whole request, the load, the prompt, the reply."""

    def __init__(self, model_id: str):
        self.start = time.monotonic()
        self.was_loaded = state.engine().is_loaded(model_id)
        self.load_s = 0.0
        self.submitted = self.start

    def loaded(self) -> None:
        if not self.was_loaded:
            self.load_s = time.monotonic() - self.start
        self.submitted = time.monotonic()

    def timings(self, finished: Finished | None) -> dict[str, int]:
        end = time.monotonic()
        ttft = (finished.time_to_first_token_s if finished else None) or 0.0
        ttft = min(ttft, end - self.submitted)
        return {
            "total_duration": int((end - self.start) * 1e9),
            "load_duration": int(self.load_s * 1e9),
            "prompt_eval_count": finished.prompt_tokens if finished else 0,
            "prompt_eval_duration": int(ttft * 1e9),
            "eval_count": finished.completion_tokens if finished else 0,
            "eval_duration": int(max(end - self.submitted - ttft, 0.0) * 1e9),
        }


def _done_reason(finished: Finished | None) -> str:
    return "length" if cut(finished) else "stop"


def _ollama_call(call: ToolCall, index: int) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments)
    except json.JSONDecodeError:  # a call cut by num_predict: what was written is not JSON
        args = {}
    return {"id": call.id, "function": {"index": index, "name": call.name,
                                        "arguments": args if isinstance(args, dict) else {}}}


# -- /api/chat ------------------------------------------------------------------------------


class ChatReply:
    """One /api/chat request on the core: the whole reply, or its NDJSON objects."""

    def __init__(self, req: ChatRequest):
        model_id = resolve(req.model)
        _refuse_unsupported(req, model_id, any(m.images for m in req.messages))
        self.req, self.clock = req, _Clock(model_id)
        self.feed = LogprobFeed(bool(req.logprobs), req.top_logprobs)
        tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
        opts = req.opts
        thinking, effort = _thinking(req)
        self.run: ChatRun = start_turn(Turn(
            model=model_id, messages=chat_messages(req.messages),
            sampling=opts.sampling(req.n_probs()),
            max_tokens=_budget(req), tools=tools, tool_choice=req.tool_choice,
            response_format=response_format(req.format),
            stop=[s for s in opts.stop or [] if s], load_configs=opts.load_configs(),
            thinking=thinking, reasoning_effort=effort))
        try:
            _refuse_thinking(req, self.run.model.chat.reasoning is not None)
        except APIError:
            self.run.close()
            raise
        # The thinking goes out as message.thinking unless the request turned it off.
        self.show_thinking = req.think is not False
        _keep_alive(req, model_id, not self.clock.was_loaded)
        self.clock.loaded()

    def _object(self, message: dict[str, Any], done: bool, **extra: Any) -> dict[str, Any]:
        return {"model": self.req.model, "created_at": now(), "message": message, "done": done,
                **extra, **self.feed.take()}

    def _final(self, finished: Finished | None, message: dict[str, Any]) -> dict[str, Any]:
        return self._object(message, True, done_reason=_done_reason(finished),
                            **self.clock.timings(finished))

    def complete(self) -> dict[str, Any]:
        with self.run:
            out = collect(self.run.generation)
        self.feed.extend(out.logprobs)
        was_cut = cut(out.finished)
        parts = self.run.parts(out.text, was_cut)
        calls = parts.calls
        if not calls and not was_cut:
            self.run.check_output(out.text)
        message: dict[str, Any] = {"role": "assistant", "content": parts.content or ""}
        if parts.reasoning and self.show_thinking:
            message["thinking"] = parts.reasoning
        if calls:
            message["tool_calls"] = [_ollama_call(c, i) for i, c in enumerate(calls)]
        return self._final(out.finished, message)

    def stream(self) -> Iterator[dict[str, Any]]:
        # Text goes out as it comes; each tool call whole once its arguments are (Ollama
        # sends calls as complete objects, never as argument fragments).
        pending: list[ToolCall] = []
        index = 0
        raw: list[str] = []  # the reply as generated, thinking included, for its check

        def chunks() -> Iterator[Chunk]:
            for chunk in iterate(self.run):
                raw.append(chunk.text)
                self.feed.add(chunk)
                yield chunk

        for piece in stream_pieces(self.run, chunks(), thinking=self.show_thinking):
            if isinstance(piece, ReasoningPiece):
                yield self._object({"role": "assistant", "content": "",
                                    "thinking": piece.text}, False)
            elif isinstance(piece, TextPiece):
                yield self._object({"role": "assistant", "content": piece.text}, False)
            elif isinstance(piece, CallStart):
                yield from self._calls(pending, index)
                index += len(pending)
                pending = [piece.call]
            elif isinstance(piece, CallArguments):
                continue  # the ToolCall object gets the whole arguments by the end
        yield from self._calls(pending, index)
        finished = self.run.result
        if index + len(pending) == 0 and _done_reason(finished) == "stop":
            self.run.check_output("".join(raw))
        yield self._final(finished, {"role": "assistant", "content": ""})

    def _calls(self, calls: list[ToolCall], first: int) -> Iterator[dict[str, Any]]:
        if calls:
            yield self._object({"role": "assistant", "content": "", "tool_calls": [
                _ollama_call(c, first + i) for i, c in enumerate(calls)]}, False)


# -- /api/generate --------------------------------------------------------------------------


class GenerateReply:
    """One /api/generate request: the prompt through the model's chat template (as Ollama's
    TEMPLATE), or as it is with `raw`; `context` continues an earlier reply."""

    def __init__(self, req: GenerateRequest):
        model_id = resolve(req.model)
        _refuse_unsupported(req, model_id, bool(req.images))
        if req.suffix:
            raise APIError(400, f'"{req.model}" does not support insert', param="suffix")
        if req.template:
            raise APIError(400, "template overrides are not supported: the model's own chat "
                           "template renders the prompt (or send raw: true)", param="template")
        self.req, self.clock = req, _Clock(model_id)
        self.feed = LogprobFeed(bool(req.logprobs), req.top_logprobs)
        opts = req.opts
        self.fmt = response_format(req.format)
        self.stop = [s for s in opts.stop or [] if s]
        self.run = Run(model_id, opts.load_configs().to_load_options()
                       if opts.load_configs() else None)
        try:
            model = self.run.model
            # A reasoning model's thinking is split off the reply (`thinking`), as in chat.
            self.markup = model.chat.reasoning
            _refuse_thinking(req, self.markup is not None)
            self.show_thinking = req.think is not False
            inside = False
            if req.raw:
                tokens = model.tokenize(req.prompt or "", param="prompt")
                stops = self.stop
            else:
                messages = ([{"role": "system", "content": req.system}] if req.system else [])
                messages.append({"role": "user", "content": req.prompt or ""})
                text = model.chat.render(messages, add_generation_prompt=True)
                inside = self.markup is not None and self.markup.opened_by(text)
                tokens = model.tokenize(text, param="prompt")
                stops = [*self.stop, *model.chat.stop]
            self.inside = inside
            self.prompt = [*(req.context or []), *tokens]
            params = opts.sampling(req.n_probs())
            grammar = response_format_grammar(self.fmt)
            if grammar is not None and self.markup is not None and (
                    inside or req.think is not False):
                # Free thinking first, then the constrained answer (as chat's core does).
                grammar = self.markup.think_first(grammar, inside)
            if grammar is not None:
                params = replace(params, grammar=grammar)
            self.run.submit(build_request(model, self.prompt, _budget(req), params, stops))
            _keep_alive(req, model_id, not self.clock.was_loaded)
        except BaseException:
            self.run.close()
            raise
        self.clock.loaded()

    def _object(self, text: str, done: bool, **extra: Any) -> dict[str, Any]:
        return {"model": self.req.model, "created_at": now(), "response": text, "done": done,
                **extra, **self.feed.take()}

    def _final(self, finished: Finished | None, text: str, ids: list[int]) -> dict[str, Any]:
        reason = _done_reason(finished)
        thinking, answer = split_reasoning(self.markup, text, self.inside)
        if reason == "stop":
            check_structured_output(self.fmt, answer, client_stop=bool(self.stop))
        extra = {"thinking": thinking} if thinking and self.show_thinking and \
            self.req.stream is False else {}
        return self._object("" if self.req.stream is not False else answer, True,
                            done_reason=reason, context=[*self.prompt, *ids], **extra,
                            **self.clock.timings(finished))

    def complete(self) -> dict[str, Any]:
        with self.run:
            out = collect(self.run.generation)
        self.feed.extend(out.logprobs)
        return self._final(out.finished, out.text, out.token_ids)

    def stream(self) -> Iterator[dict[str, Any]]:
        texts: list[str] = []
        ids: list[int] = []
        splitter = self.markup.splitter(self.inside) if self.markup is not None else None
        for chunk in iterate(self.run):
            self.feed.add(chunk)
            ids.extend(chunk.token_ids)
            if chunk.text:
                texts.append(chunk.text)
                yield from self._deltas(splitter.feed(chunk.text) if splitter is not None
                                        else [{"content": chunk.text}])
        if splitter is not None:
            yield from self._deltas(splitter.finish())
        finished = self.run.result
        yield self._final(finished, "".join(texts), ids)

    def _deltas(self, deltas: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
        for delta in deltas:
            if "content" in delta:
                yield self._object(delta["content"], False)
            elif self.show_thinking:
                yield self._object("", False, thinking=delta["reasoning"])


def load_only(req: GeneratingBody, key: str, value: Any) -> dict[str, Any]:
    """A request with no messages (or no prompt) loads the model, or with keep_alive 0
    unloads it: what Ollama's clients send to preload and to stop a model."""
    model_id = resolve(req.model)
    engine = state.engine()
    unload = req.keep_alive is not None and req.keep_alive_s() == 0
    if unload:
        if not has_admin_rights() and engine.is_loaded(model_id):
            # Other clients may be using it (the start-up model above all): a plain key
            # stops only what its own request loaded (keep_alive: 0 on that request).
            raise APIError(403, f'unloading "{req.model}" needs admin rights (a key from '
                           "ADMIN_API_KEYS, or a loopback client when none is set)",
                           code="admin_key_required")
        # Through the keep-alive, not unload(): the model stays the one requests naming
        # none fall back to (loaded again when one comes).
        engine.set_keep_alive(model_id, 0.0)
    else:
        was_loaded = engine.is_loaded(model_id)
        configs = req.opts.load_configs()
        with use_model(model_id, configs.to_load_options() if configs else None):
            _keep_alive(req, model_id, not was_loaded)
    return {"model": req.model, "created_at": now(), key: value, "done": True,
            "done_reason": "unload" if unload else "load"}


# -- embeddings -----------------------------------------------------------------------------


def embed(texts: list[str], model_name: str, truncate: bool,
          req: EmbedRequest | EmbeddingsRequest) -> tuple[list[list[float]], int, dict[str, int]]:
    """Vectors for `texts` over the engine's embedding path (that of /v1/embeddings): one
    L2-normalised vector each. `truncate`: cut inputs to the context (Ollama's default), else
    a 400 for one that does not fit."""
    model_id = resolve(model_name)
    clock = _Clock(model_id)
    with use_model(model_id) as model:
        clock.loaded()
        token_lists = [model.tokenize(t, param="input") for t in texts]
        n_ctx = model.info.n_ctx
        for i, toks in enumerate(token_lists):
            if len(toks) > n_ctx:
                if not truncate:
                    raise APIError(400, f"input {i} has {len(toks)} tokens, more than the "
                                   f"context length of {n_ctx}", param="input")
                token_lists[i] = toks[:n_ctx]
        vectors = model.embed(token_lists) if token_lists else []
        _keep_alive(req, model_id, not clock.was_loaded)
    n_tokens = sum(len(t) for t in token_lists)
    timings = clock.timings(None)
    return vectors, n_tokens, {"total_duration": timings["total_duration"],
                               "load_duration": timings["load_duration"]}


def renorm(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]
