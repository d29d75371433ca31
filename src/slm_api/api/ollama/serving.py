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

from slm_api.api.core.blocks import BlockDelta, BlockKind, BlockStart, stream_blocks
from slm_api.api.core.body import completion_budget
from slm_api.api.core.conversation import ChatRun, Turn
from slm_api.api.core.infill import fim_prompt
from slm_api.api.core.media import plan_with_media
from slm_api.api.core.media_parts import MediaIntake, media_intake, refuse_unsupported_media
from slm_api.api.core.planner import RawTurn
from slm_api.api.core.protocol import JSONSchemaFormat, ResponseFormat
from slm_api.api.core.reply import cut, finish_names
from slm_api.api.core.rights import is_shared, use_model
from slm_api.api.core.run import Run, build_request, chunks, collect
from slm_api.api.core.structured import check_structured_output
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


def _with_images(text: str, images: list[str] | None, intake: MediaIntake,
                 param: str) -> str | list[dict[str, Any]]:
    """A message's text and its `images` (bare base64) as the core's content parts."""
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [intake.image_base64(image, param=f"{param}.{k}") for k, image in enumerate(images)]
    return parts


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


def chat_messages(messages: list[Message], intake: MediaIntake | None = None
                  ) -> list[dict[str, Any]]:
    """Ollama messages as the chat formatter's (OpenAI-shaped) messages: tool call arguments
    (objects here) become JSON text, a tool result's tool_name its name, `images` image
    parts."""
    out: list[dict[str, Any]] = []
    intake = intake or media_intake()
    for i, msg in enumerate(messages):
        item: dict[str, Any] = {"role": msg.role, "content": _with_images(
            msg.content or "", msg.images, intake, f"messages.{i}.images")}
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
    return finish_names(finished).ollama


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
        self.req, self.clock = req, _Clock(model_id)
        self.feed = LogprobFeed(bool(req.logprobs), req.top_logprobs)
        tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
        opts = req.opts
        thinking, effort = _thinking(req)
        run = ChatRun(Turn(
            model=model_id, messages=chat_messages(req.messages),
            sampling=opts.sampling(req.n_probs()),
            max_tokens=_budget(req), tools=tools, tool_choice=req.tool_choice,
            response_format=response_format(req.format),
            stop=[s for s in opts.stop or [] if s], load_configs=opts.load_configs(),
            thinking=thinking, reasoning_effort=effort))
        try:
            # Refused before anything is submitted.
            _refuse_thinking(req, run.model.chat.reasoning is not None)
        except APIError:
            run.close()
            raise
        self.run: ChatRun = run.start()
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

        def generated() -> Iterator[Chunk]:
            for chunk in chunks(self.run):
                raw.append(chunk.text)
                self.feed.add(chunk)
                yield chunk

        for block in stream_blocks(self.run, generated(), thinking=self.show_thinking):
            if isinstance(block, BlockStart) and block.kind is BlockKind.TOOL_CALL:
                assert block.call is not None
                yield from self._calls(pending, index)
                index += len(pending)
                pending = [block.call]
            elif isinstance(block, BlockDelta) and block.kind is BlockKind.THINKING:
                yield self._object({"role": "assistant", "content": "",
                                    "thinking": block.text}, False)
            elif isinstance(block, BlockDelta) and block.kind is BlockKind.TEXT:
                yield self._object({"role": "assistant", "content": block.text}, False)
            # A call's argument fragments: its ToolCall gets the whole arguments by the end.
        yield from self._calls(pending, index)
        finished = self.run.result
        if index + len(pending) == 0 and _done_reason(finished) == "stop":
            self.run.check_output("".join(raw))
        yield self._final(finished, {"role": "assistant", "content": ""})

    def _calls(self, calls: list[ToolCall], first: int) -> Iterator[dict[str, Any]]:
        if calls:
            yield self._object({"role": "assistant", "content": "", "tool_calls": [
                _ollama_call(c, first + i) for i, c in enumerate(calls)]}, False)


# Ollama's fields as the FIM builder's: an error names what the client sent.
OLLAMA_FIM = {"prefix": "prompt", "suffix": "suffix"}


# -- /api/generate --------------------------------------------------------------------------


class GenerateReply:
    """One /api/generate request: the prompt through the model's chat template (as Ollama's
    TEMPLATE), or as it is with `raw`; `context` continues an earlier reply."""

    def __init__(self, req: GenerateRequest):
        model_id = resolve(req.model)
        # The images checked (and counted) before a model is pinned for them.
        images = _with_images(req.prompt or "", req.images, media_intake(), "images")
        if req.suffix and req.context:
            raise APIError(400, "suffix (fill-in-the-middle) cannot continue a context: send "
                           "the text before the gap as prompt", param="context")
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
            refuse_unsupported_media(model, [{"role": "user", "content": images}],
                                     [f"images.{k}" for k in range(len(req.images or []))])
            # A reasoning model's thinking is split off the reply (`thinking`), as in chat.
            _refuse_thinking(req, model.chat.reasoning is not None)
            self.show_thinking = req.think is not False
            thinking, effort = _thinking(req)
            turn: Turn | RawTurn
            if req.suffix:
                # suffix present -> infill plan: the model's FIM tokens around prompt and
                # suffix (api/core/infill.py), planned as a raw prompt of those ids: no chat
                # template, no thinking to split off.
                fim = fim_prompt(model, OLLAMA_FIM, req.prompt or "", req.suffix)
                turn = RawTurn(fim, self.fmt, self.stop)
            elif req.raw:
                turn = RawTurn(req.prompt or "", self.fmt, self.stop, reasoning=True,
                               thinking=thinking)
            else:
                messages = ([{"role": "system", "content": req.system}] if req.system else [])
                messages.append({"role": "user", "content": images})
                turn = Turn(model_id, messages, response_format=self.fmt, stop=self.stop,
                            thinking=thinking, reasoning_effort=effort, prompt_param="prompt")
            self.plan = plan_with_media(model, turn)
            self.markup = model.chat.reasoning if self.plan.reasoning else None
            self.prompt = [*(req.context or []), *self.plan.tokens]
            params = replace(opts.sampling(req.n_probs()), grammar=self.plan.grammar)
            # Images sit after the earlier reply's `context` ids.
            media = tuple(replace(m, start=m.start + len(req.context or []))
                          for m in self.plan.media)
            self.run.submit(build_request(model, self.prompt, _budget(req), params,
                                          self.plan.stop, media=media))
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
        thinking, answer = split_reasoning(self.markup, text, self.plan.thinks_from_start)
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
        inside = self.plan.thinks_from_start
        splitter = self.markup.splitter(inside) if self.markup is not None else None
        for chunk in chunks(self.run):
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
