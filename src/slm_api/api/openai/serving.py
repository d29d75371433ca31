"""OpenAI's generating and listing endpoints over the shared core: a chat request as a `Turn`,
a completions request as runs of its prompts, embeddings, model listings; and the core's
output back as OpenAI's objects (chat.completion, text_completion and their chunks). Sampling,
tool markup and grammars are the core's (api/core/): this module shapes requests and replies.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slm_api.api.core.blocks import Block, BlockDelta, BlockKind, BlockStart, BlockStream
from slm_api.api.core.body import (
    choice_count,
    completion_budget,
    embedding_inputs,
    one_or_many,
)
from slm_api.api.core.conversation import ChatRun, Turn, start_turn
from slm_api.api.core.infill import fim_prompt
from slm_api.api.core.logprobs import chat_logprobs, completion_logprobs
from slm_api.api.core.media import plan_with_media
from slm_api.api.core.media_parts import media_intake
from slm_api.api.core.planner import RawTurn
from slm_api.api.core.reply import finish_reason, usage
from slm_api.api.core.rights import use_model
from slm_api.api.core.run import (
    Collected,
    Run,
    build_request,
    close_on_error,
    collect_choices,
    iterate,
)
from slm_api.api.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from slm_api.api.openai.raw_media import raw_prompts
from slm_api.engine import Finished, TokenLogprob
from slm_api.errors import APIError
from slm_api.gguf_info import file_kind, unreadable
from slm_api.plumbing import state


class _Envelope:
    """What every object of one reply repeats: its id, `object`, `created` and model."""

    def __init__(self, prefix: str, model: str):
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


# -- /v1/chat/completions -------------------------------------------------------------------


class ChatReply:
    """A chat request started as a turn (`n` choices share one evaluation of the prompt), and
    its output shaped as a chat.completion object or its chunks; choices (n > 1) come from one
    interleaved stream and are told apart by `index`."""

    def __init__(self, req: ChatCompletionRequest):
        n_probs = max(1, req.top_logprobs or 0) if req.logprobs else 0
        self.n = choice_count(req.n)
        self.req = req
        self.run: ChatRun = start_turn(Turn(
            model=req.model,
            messages=media_intake().openai_messages(req.message_dicts()),
            sampling=req.to_sampling_params(n_probs=n_probs),
            max_tokens=completion_budget(req.completion_limit),
            tools=req.tool_dicts(),
            tool_choice=req.tool_choice,
            parallel_tool_calls=req.parallel_tool_calls,
            response_format=req.response_format,
            stop=req.stop or [],
            load_configs=req.load_model_configs,
            reasoning_effort=req.reasoning_effort,
            template_kwargs=req.chat_template_kwargs,
            thinking_budget=req.thinking_budget,
        ), self.n)
        self.envelope = _Envelope("chatcmpl", self.run.model.info.id)

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

    def complete(self) -> dict[str, Any]:
        with self.run:
            outs = collect_choices(self.run.generation)
        choices = [self._choice(i, out) for i, out in enumerate(outs)]
        return {
            **self.envelope.head("chat.completion"),
            "choices": [choice for choice, _ in choices],
            "usage": self._usage(self.run.result, [r for _, r in choices]),
            "system_fingerprint": None,
        }

    def _chunk(
        self, index: int, delta: dict[str, Any], reason: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": extra.pop("logprobs", None),
                  "finish_reason": reason}
        return {
            **self.envelope.head("chat.completion.chunk"),
            "system_fingerprint": None,
            "choices": [choice],
            **extra,
        }

    def stream(self) -> Iterator[dict[str, Any]]:
        for index in range(self.n):
            yield self._chunk(index, {"role": "assistant", "content": ""})
        # The core's blocks as chat deltas: thinking as reasoning_content, text as content,
        # each call as delta.tool_calls entries (its start, then its argument fragments).
        streams = [_ChatDeltas(self.run) for _ in range(self.n)]
        for index, item in iterate(self.run):
            if isinstance(item, Finished):
                yield from self._end(index, streams[index], item)
                continue
            deltas = streams[index].feed(item.text)
            logprobs = (
                chat_logprobs(list(item.logprobs), self.req.top_logprobs)
                if self.req.logprobs and item.logprobs
                else None
            )
            if logprobs and not deltas:
                deltas = [{"content": ""}]
            for delta in deltas:
                yield self._chunk(index, delta, logprobs=logprobs)
                logprobs = None
        if self.req.include_usage:
            yield {
                **self.envelope.head("chat.completion.chunk"),
                "choices": [],
                "usage": self._usage(self.run.result, [s.blocks.reasoning for s in streams]),
            }

    def _end(self, index: int, deltas: _ChatDeltas, finished: Finished
             ) -> Iterator[dict[str, Any]]:
        reason = finish_reason(finished)
        for delta in deltas.finish(cut=reason == "length"):
            yield self._chunk(index, delta)
        if deltas.blocks.calls and reason != "length":
            reason = "tool_calls"
        yield self._chunk(index, {}, reason)


class _ChatDeltas:
    """One choice's blocks as chat completion deltas (an opening or closing has none, but a
    call's opening: its id and name)."""

    def __init__(self, run: ChatRun):
        self.blocks = BlockStream(run, thinking=True)
        self._call = 0  # the open call's place among the reply's calls

    def feed(self, text: str) -> list[dict[str, Any]]:
        return self._deltas(self.blocks.feed(text))

    def finish(self, cut: bool) -> list[dict[str, Any]]:
        return self._deltas(self.blocks.finish(cut))

    def _deltas(self, blocks: list[Block]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, BlockStart) and block.kind is BlockKind.TOOL_CALL:
                assert block.call is not None
                self._call = block.call_index
                out.append({"tool_calls": [{
                    "index": block.call_index, "id": block.call.id, "type": "function",
                    "function": {"name": block.call.name, "arguments": block.arguments}}]})
            elif not isinstance(block, BlockDelta):
                continue
            elif block.kind is BlockKind.TOOL_CALL:
                out.append({"tool_calls": [{"index": self._call,
                                            "function": {"arguments": block.text}}]})
            elif block.kind is BlockKind.THINKING:
                out.append(_reasoning(block.text))
            else:
                out.append({"content": block.text})
        return out


def _reasoning(text: str) -> dict[str, str]:
    # llama-server's field, and vLLM's newer name for it: either kind of client reads it.
    return {"reasoning_content": text, "reasoning": text}


OPENAI_FIM = {"prefix": "prompt", "suffix": "suffix"}  # the builder's fields, as sent


# -- /v1/completions ------------------------------------------------------------------------


class CompletionReply:
    """Every prompt of a completions request submitted (before any is read: with batching they
    generate side by side), and their output as a text_completion object or its chunks."""

    def __init__(self, req: CompletionRequest):
        # OpenAI's default of 16 tokens, never above this server's cap.
        cap = state.settings().max_tokens_cap
        explicit = "max_tokens" in req.model_fields_set
        max_tokens = completion_budget(req.max_tokens if explicit else min(16, cap))
        params = req.to_sampling_params(n_probs=req.logprobs or 0)
        self.n = choice_count(req.n)  # choices per prompt: prompt p's choice j has p * n + j
        self.req = req
        self.runs: list[Run] = []
        self.texts: list[str] = []  # each prompt as text, for echo and logprob offsets
        # Images (llama-server's prompt objects) checked before a model is pinned for them.
        prompts = raw_prompts(req.prompt, req.suffix)
        with close_on_error(self.runs):
            for raw in prompts:
                run = Run(req.model, req.to_load_options())
                self.runs.append(run)
                prompt = raw.prompt
                text = raw.text if raw.text is not None else run.model.detokenize(prompt)
                if req.suffix:
                    # suffix present -> infill plan: the model's FIM tokens around the prompt
                    # and suffix (api/core/infill.py); a model without them is a 400.
                    prompt = fim_prompt(run.model, OPENAI_FIM, text, req.suffix)
                planned = plan_with_media(run.model, RawTurn(prompt, stop=req.stop or [],
                                                             media_names=raw.names))
                self.texts.append(text)
                run.submit(build_request(run.model, planned.tokens, max_tokens, params,
                                         planned.stop, media=planned.media), self.n)
        self.envelope = _Envelope("cmpl", self.runs[0].model.info.id)

    def _logprobs(self, logprobs: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
        if self.req.logprobs is None:
            return None
        return completion_logprobs(logprobs, self.req.logprobs, offset)

    def _object(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self.envelope.head("text_completion"), "choices": choices, **extra}

    @staticmethod
    def _choice(index: int, text: str, lps: Any, reason: str | None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": lps, "finish_reason": reason}

    def complete(self) -> dict[str, Any]:
        choices, totals = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for p, (run, prompt_text) in enumerate(zip(self.runs, self.texts, strict=True)):
            with run:
                outs = collect_choices(run.generation)
            echo = prompt_text if self.req.echo else ""
            for j, out in enumerate(outs):
                lps = self._logprobs(out.logprobs, len(echo))
                choices.append(self._choice(p * self.n + j, echo + out.text, lps,
                                            finish_reason(out.finished)))
            for key, value in usage(run.result).items():
                if key in totals:
                    totals[key] += value
        return self._object(choices, usage=totals)

    def stream(self) -> Iterator[dict[str, Any]]:
        try:
            for p, (run, prompt_text) in enumerate(zip(self.runs, self.texts, strict=True)):
                first = p * self.n
                if self.req.echo:
                    for j in range(self.n):
                        yield self._object([self._choice(first + j, prompt_text, None, None)])
                offsets = [len(prompt_text) if self.req.echo else 0] * self.n
                # A prompt's choices arrive interleaved, each ending with its Finished.
                for j, item in iterate(run):
                    if isinstance(item, Finished):
                        yield self._object([self._choice(first + j, "", None,
                                                         finish_reason(item))])
                        continue
                    if not item.text and not item.logprobs:
                        continue
                    lps = self._logprobs(list(item.logprobs), offsets[j])
                    offsets[j] += len(item.text)
                    yield self._object([self._choice(first + j, item.text, lps, None)])
        finally:
            for run in self.runs:
                run.close()


# -- /v1/embeddings -------------------------------------------------------------------------


def embeddings(req: EmbeddingRequest) -> dict[str, Any]:
    """One L2-normalised vector per input, as an OpenAI embedding list."""
    engine = state.engine()
    with use_model(req.model or engine.default_embedding_model()) as model:
        token_lists = [model.tokenize(item, param="input") if isinstance(item, str) else item
                       for item in embedding_inputs(one_or_many(req.input))]
        too_long = [i for i, toks in enumerate(token_lists) if len(toks) > model.info.n_ctx]
        if too_long:
            raise APIError(
                400,
                f"input {too_long[0]} has {len(token_lists[too_long[0]])} tokens, more than the "
                f"model's context of {model.info.n_ctx}",
                param="input", code="context_length_exceeded",  # the code chat's gives
            )
        vectors = model.embed(token_lists)
        model_id = model.info.id
    if req.dimensions:
        # Matryoshka-style truncation, renormalised, like OpenAI's `dimensions`.
        vectors = [_renorm(v[: req.dimensions]) for v in vectors]
    n_tokens = sum(len(t) for t in token_lists)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model_id,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


def _encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        # The openai SDK decodes base64 as little-endian float32.
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def _renorm(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


# -- model listings -------------------------------------------------------------------------


def _kind(path: Path) -> str:
    loaded = {m.id: m for m in state.engine().loaded()}
    if path.stem in loaded:
        return loaded[path.stem].kind
    return file_kind(path, state.settings().embedding_models)


def openai_model(path: Path) -> dict[str, Any]:
    """A GGUF file in MODELS_DIR as an OpenAI model object, with this server's extra fields;
    a file whose header cannot be read is listed with kind "unreadable" and the reason."""
    model = {
        "id": path.stem,
        "object": "model",
        "created": int(path.stat().st_mtime),
        "owned_by": "slm-api",
        "kind": _kind(path),
        "loaded": state.engine().is_loaded(path.stem),
        "size_bytes": path.stat().st_size,
    }
    if model["kind"] == "chat":
        # What it reads (issue 38): "image" with a projector (mmproj) beside it or loaded.
        model["input_modalities"] = ["text", *sorted(state.engine().media_kinds(path))]
    return _with_error(model, path)


def _with_error(entry: dict[str, Any], path: Path) -> dict[str, Any]:
    reason = None if state.engine().is_loaded(path.stem) else unreadable(path)
    return {**entry, "error": reason} if reason else entry


def openai_models(kind: str | None = None) -> dict[str, Any]:
    """Every model file (of `kind`, when given) as an OpenAI list."""
    data = [openai_model(p) for p in state.engine().model_files()]
    return {"object": "list", "data": [m for m in data if kind is None or m["kind"] == kind]}


def local_models() -> dict[str, Any]:
    """GET /models: this server's own shape, the files and the active model."""
    eng = state.engine()
    active = eng.active
    return {
        "active": {"name": active.id, "path": str(active.path), "n_ctx": active.n_ctx}
        if active
        else None,
        "models": [
            _with_error({"name": p.name, "id": p.stem, "size_bytes": p.stat().st_size,
                         "loaded": eng.is_loaded(p.stem)}, p)
            for p in eng.model_files()
        ],
    }
