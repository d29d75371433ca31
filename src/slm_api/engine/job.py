"""One submitted generation: the HTTP thread iterates it, the scheduler thread feeds it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from slm_api.engine.decoding import Decoding
from slm_api.engine.types import Chunk, FinishCause, Finished, GenerationRequest
from slm_api.errors import EngineError


class GenerationFailed(EngineError, status=500, code="generation_failed"):
    """A decode step failed, or the model was unloaded under the request."""


_Item = Chunk | Finished | EngineError


class Job:
    """A submitted request: the HTTP thread iterates it, the loop thread feeds it through the
    job's `decoding` (the sequence's decode state).

    The choices of one request (n > 1) are jobs that share one output queue, each item tagged
    with the job's `index`; every one but the first names the first as `fork_of`, and the
    scheduler copies the first's evaluated prompt into them instead of evaluating it again."""

    def __init__(
        self,
        request: GenerationRequest,
        decoding: Decoding,
        *,
        index: int = 0,
        out: queue.SimpleQueue[tuple[int, _Item]] | None = None,
        fork_of: Job | None = None,
    ):
        self.request = request
        self.decoding = decoding
        self.index = index
        self.fork_of = fork_of
        self.result: Finished | None = None
        self.submitted = time.monotonic()
        self.cached = 0
        self._out: queue.SimpleQueue[tuple[int, _Item]] = out or queue.SimpleQueue()
        self._aborted = threading.Event()

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            _, item = self._out.get()
            if isinstance(item, Chunk):
                yield item
            elif isinstance(item, Finished):
                self.result = item
                return
            else:
                raise item

    def abort(self) -> None:
        self._aborted.set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def emit(self, text: str) -> None:
        """Send text with the tokens sampled since the last chunk."""
        self._out.put((self.index, self.decoding.chunk(text)))

    def flush(self) -> None:
        dec = self.decoding
        text = dec.text.flush()
        if text or dec.pending_ids:
            self.emit(text)

    def finish(self, reason: FinishCause) -> None:
        dec = self.decoding
        dec.close()
        ttft = None if dec.first_token_at is None else dec.first_token_at - self.submitted
        self._out.put((self.index, Finished(reason, len(self.request.prompt), dec.generated,
                                            self.cached, ttft, dec.text.matched)))

    def fail(self, error: EngineError) -> None:
        self.decoding.close()
        self._out.put((self.index, error))


class Choices:
    """The n choices of one request, read as one stream of (index, Chunk or Finished) in the
    order the scheduler produced them; `results` holds each choice's end, `result` their sum
    (the prompt once, every choice's completion tokens)."""

    def __init__(self, jobs: list[Job], out: queue.SimpleQueue[tuple[int, _Item]]):
        self.jobs = jobs
        self._out = out
        self.results: list[Finished | None] = [None] * len(jobs)
        self.result: Finished | None = None

    def __iter__(self) -> Iterator[tuple[int, Chunk | Finished]]:
        live = sum(r is None for r in self.results)
        while live:
            index, item = self._out.get()
            if isinstance(item, EngineError):
                self.abort()
                raise item
            if isinstance(item, Finished):
                self.results[index] = item
                live -= 1
                if not live:
                    self.result = _total(self.results)
            yield index, item

    def abort(self) -> None:
        for job in self.jobs:
            job.abort()


def _total(results: list[Finished | None]) -> Finished:
    done = [r for r in results if r is not None]
    first = done[0]
    ttfts = [r.time_to_first_token_s for r in done if r.time_to_first_token_s is not None]
    return Finished(first.cause, first.prompt_tokens,
                    sum(r.completion_tokens for r in done), first.cached_tokens,
                    min(ttfts) if ttfts else None, first.stop_sequence)
