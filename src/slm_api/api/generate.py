"""What chat, completions and extract share: pin a model, build a generation, run it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel

from slm_api.api.schemas import LoadModelConfigs, SamplingFields
from slm_api.engine import (
    Choices,
    Chunk,
    Engine,
    Finished,
    Generation,
    GenerationRequest,
    LoadOptions,
    SamplingParams,
    TokenLogprob,
)
from slm_api.engine.llama_model import LoadedModel
from slm_api.errors import APIError
from slm_api.observability import GenerationRecorder, generation_recorder

BodyT = TypeVar("BodyT", bound=BaseModel)


def engine() -> Engine:
    return current_app.extensions["slm_engine"]


def parse_body(model: type[BodyT]) -> BodyT:
    """The JSON body validated as `model`; malformed JSON and wrong shapes become 400s."""
    data = request.get_json(silent=True)
    if data is None:
        raw = request.get_data(cache=True)
        if not raw.strip():
            raise APIError(400, "The request body is empty; send a JSON object")
        raise APIError(400, "The request body is not valid JSON", code="invalid_json")
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object", code="invalid_json")
    return model.model_validate(data)


def load_options(configs: LoadModelConfigs | None) -> LoadOptions | None:
    if configs is None:
        return None
    return LoadOptions(**configs.model_dump(exclude_none=True))


def sampling_params(
    req: SamplingFields, *, grammar: str | None = None, n_probs: int = 0
) -> SamplingParams:
    bias = None
    if req.logit_bias:
        try:
            bias = {int(k): float(v) for k, v in req.logit_bias.items()}
        except ValueError as exc:
            raise APIError(400, "logit_bias keys must be token ids", param="logit_bias") from exc
    return SamplingParams(
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        min_p=req.min_p,
        seed=req.seed,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        repeat_penalty=req.repeat_penalty,
        grammar=grammar,
        logit_bias=bias,
        n_probs=n_probs,
    )


def completion_budget(requested: int | None, param: str = "max_tokens") -> int | None:
    """The caller's max_tokens checked against MAX_TOKENS_CAP; None lets the engine fill the
    context (still capped)."""
    cap = current_app.config["SETTINGS"].max_tokens_cap
    if requested is not None and requested > cap:
        raise APIError(
            400, f"{param} is {requested}, above this server's cap of {cap}", param=param
        )
    return requested


def choice_count(n: int) -> int:
    """The caller's `n` checked against MAX_N."""
    cap = current_app.config["SETTINGS"].max_n
    if n > cap:
        raise APIError(400, f"n is {n}, above this server's cap of {cap}", param="n")
    return n


def build_request(
    model: LoadedModel,
    prompt: list[int],
    max_tokens: int | None,
    sampling: SamplingParams,
    stop: list[str] | tuple[str, ...] = (),
) -> GenerationRequest:
    settings = current_app.config["SETTINGS"]
    if max_tokens is None:
        max_tokens = max(1, min(settings.max_tokens_cap, model.info.n_ctx - len(prompt)))
    return GenerationRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        sampling=sampling,
        stop=tuple(dict.fromkeys(stop)),
        deadline=time.monotonic() + settings.request_timeout_s,
    )


class Run:
    """One generation with its model pinned until `close()`: a stream outlives the view
    function, so the pin must live as long as the response body, not the request handler."""

    def __init__(self, model_id: str | None, options: LoadOptions | None = None):
        self._stack = ExitStack()
        self.model: LoadedModel = self._stack.enter_context(engine().use(model_id, options))
        self.generation: Generation | Choices | None = None
        # Bound now: a streamed body finishes after the request context is gone.
        self._record: GenerationRecorder | None = generation_recorder()
        self._submitted = time.monotonic()

    def submit(self, req: GenerationRequest) -> Generation:
        self._submitted = time.monotonic()
        self.generation = self.model.submit(req)
        return self.generation

    def submit_choices(self, req: GenerationRequest, n: int) -> Choices:
        """`n` generations of one prompt, evaluated once (see LoadedModel.submit_choices)."""
        self._submitted = time.monotonic()
        choices = self.model.submit_choices(req, n)
        self.generation = choices
        return choices

    def close(self) -> None:
        if self.generation is not None and self.generation.result is None:
            self.generation.abort()
        self._stack.close()
        # Metrics and the access log get this generation's tokens once (close may run twice).
        record, self._record = self._record, None
        result = self.generation.result if self.generation is not None else None
        if record is not None and result is not None:
            record(result.prompt_tokens, result.completion_tokens,
                   result.time_to_first_token_s, time.monotonic() - self._submitted,
                   result.finish_reason)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Collected:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finished: Finished | None = None


def collect(generation: Generation) -> Collected:
    out = Collected()
    parts: list[str] = []
    for chunk in generation:
        parts.append(chunk.text)
        out.token_ids.extend(chunk.token_ids)
        out.logprobs.extend(chunk.logprobs)
    out.text = "".join(parts)
    out.finished = generation.result
    return out


def usage(finished: Finished | None) -> dict[str, Any]:
    if finished is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
    }


def finish_reason(finished: Finished | None) -> str:
    # "abort" only happens when the client is gone; nobody reads it, but keep the field valid.
    reason = finished.finish_reason if finished else "stop"
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def iterate(run: Run) -> Iterator[Chunk]:
    """Chunks of a run, closing it (abort + unpin) however the consumer stops: a client that
    disconnects makes the WSGI server close this generator."""
    try:
        assert run.generation is not None
        yield from run.generation
    finally:
        run.close()
