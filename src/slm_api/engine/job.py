"""One submitted generation: the HTTP thread iterates it, the scheduler thread feeds it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from slm_api.engine.sampling import Sampler
from slm_api.engine.types import Chunk, Finished, GenerationRequest, TokenLogprob
from slm_api.errors import EngineError
from slm_api.prompting.stops import TextAssembler


class GenerationFailed(EngineError):
    status = 500
    code = "generation_failed"


class Job:
    """A submitted request: the HTTP thread iterates it, the loop thread feeds it."""

    def __init__(self, request: GenerationRequest, sampler: Sampler | None):
        self.request = request
        self.sampler = sampler  # None: only fill the cache with the prompt (warm-up)
        self.text = TextAssembler(request.stop)
        self.result: Finished | None = None
        self.submitted = time.monotonic()
        self.first_token_at: float | None = None
        self.generated = 0
        self.cached = 0
        self.pending_ids: list[int] = []
        self.pending_logprobs: list[TokenLogprob] = []
        self._out: queue.SimpleQueue[Chunk | Finished | EngineError] = queue.SimpleQueue()
        self._aborted = threading.Event()

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self._out.get()
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
        """Send text with the tokens (and their logprobs) sampled since the last chunk: a token
        whose text is held back (half a character, a possible stop string) rides along with
        the next one, so every token reaches the client once."""
        self._out.put(Chunk(text, tuple(self.pending_ids), tuple(self.pending_logprobs)))
        self.pending_ids.clear()
        self.pending_logprobs.clear()

    def flush(self) -> None:
        text = self.text.flush()
        if text or self.pending_ids:
            self.emit(text)

    def finish(self, reason: str) -> None:
        if self.sampler is not None:
            self.sampler.close()
        ttft = None if self.first_token_at is None else self.first_token_at - self.submitted
        self._out.put(Finished(reason, len(self.request.prompt), self.generated, self.cached, ttft,
                               self.text.matched))

    def fail(self, error: EngineError) -> None:
        if self.sampler is not None:
            self.sampler.close()
        self._out.put(error)
