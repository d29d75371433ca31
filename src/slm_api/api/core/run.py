"""The generation run: pin a model, submit a generation to it, collect or iterate its chunks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from slm_api.api.core.rights import use_model
from slm_api.engine import (
    Choices,
    Chunk,
    Finished,
    GenerationRequest,
    LoadOptions,
    MediaSpan,
    SamplingParams,
    TokenLogprob,
)
from slm_api.engine.llama_model import LoadedModel
from slm_api.plumbing import state
from slm_api.plumbing.observability import GenerationRecorder, generation_recorder
from slm_api.plumbing.ratelimit import token_charger


class ChoiceStream(Protocol):
    """A run's generation: its choices' (index, Chunk or Finished) pairs in the order they were
    produced; `results` holds each choice's end, `result` their total once all have ended."""

    results: list[Finished | None]
    result: Finished | None

    def __iter__(self) -> Iterator[tuple[int, Chunk | Finished]]: ...

    def abort(self) -> None: ...


def build_request(
    model: LoadedModel,
    prompt: list[int],
    max_tokens: int | None,
    sampling: SamplingParams,
    stop: list[str] | tuple[str, ...] = (),
    media: tuple[MediaSpan, ...] = (),
) -> GenerationRequest:
    settings = state.settings()
    if max_tokens is None:
        max_tokens = max(1, min(settings.max_tokens_cap, model.info.n_ctx - len(prompt)))
    return GenerationRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        sampling=sampling,
        stop=tuple(dict.fromkeys(stop)),
        deadline=time.monotonic() + settings.request_timeout_s,
        media=media,
    )


class Run:
    """One generation with its model pinned until `close()`: a stream outlives the view
    function, so the pin must live as long as the response body, not the request handler."""

    def __init__(self, model_id: str | None, options: LoadOptions | None = None):
        self._stack = ExitStack()
        self.model: LoadedModel = self._stack.enter_context(use_model(model_id, options))
        # Always a stream of choices ((index, Chunk or Finished) pairs), n = 1 being one.
        self.generation: ChoiceStream | None = None
        # Bound now: a streamed body finishes after the request context is gone. Closing
        # records the generation (metrics, access log) and charges its tokens to the client.
        self._record: GenerationRecorder | None = generation_recorder()
        self._charge: Callable[[int], None] | None = token_charger()
        self._submitted = time.monotonic()

    def submit(self, req: GenerationRequest, n: int = 1) -> Choices:
        """`n` generations of one prompt, evaluated once (see LoadedModel.submit_choices)."""
        self._submitted = time.monotonic()
        choices = self.model.submit_choices(req, n)
        self.generation = choices
        return choices

    @property
    def result(self) -> Finished | None:
        """How the generation ended (the totals of every choice); None before it has."""
        return self.generation.result if self.generation is not None else None

    def close(self) -> None:
        if self.generation is not None and self.generation.result is None:
            self.generation.abort()
        self._stack.close()
        # Metrics and the access log get this generation's tokens once (close may run twice),
        # and so does the client's tokens-per-minute budget.
        record, self._record = self._record, None
        charge, self._charge = self._charge, None
        result = self.result
        if record is not None and result is not None:
            record(result.prompt_tokens, result.completion_tokens,
                   result.time_to_first_token_s, time.monotonic() - self._submitted,
                   result.finish_reason)
        if charge is not None and result is not None:
            charge(result.prompt_tokens + result.completion_tokens)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def close_on_error(runs: list[Run]) -> Iterator[None]:
    """Close `runs` (those in the list when it fails) if the block raises; on success they stay
    open, since the response body reads them after the view returns."""
    try:
        yield
    except BaseException:
        for run in runs:
            run.close()
        raise


@dataclass
class Collected:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finished: Finished | None = None


def collect(choices: ChoiceStream) -> Collected:
    """The whole output of a run of one choice."""
    return collect_choices(choices)[0]


def collect_choices(choices: ChoiceStream) -> list[Collected]:
    """Each choice's whole output, from the interleaved stream of all of them."""
    outs = [Collected() for _ in choices.jobs]
    parts: list[list[str]] = [[] for _ in choices.jobs]
    for index, item in choices:
        out = outs[index]
        if isinstance(item, Finished):
            out.finished = item
            continue
        parts[index].append(item.text)
        out.token_ids.extend(item.token_ids)
        out.logprobs.extend(item.logprobs)
    for out, texts in zip(outs, parts, strict=True):
        out.text = "".join(texts)
    return outs


def iterate(run: Run) -> Iterator[tuple[int, Chunk | Finished]]:
    """A run's (index, Chunk or Finished) pairs, closing it (abort + unpin) however the
    consumer stops: a client that disconnects makes the WSGI server close this generator."""
    try:
        assert run.generation is not None
        yield from run.generation
    finally:
        run.close()


def chunks(run: Run) -> Iterator[Chunk]:
    """The chunks of a run of one choice (closed as `iterate` closes it)."""
    for _, item in iterate(run):
        if isinstance(item, Chunk):
            yield item
