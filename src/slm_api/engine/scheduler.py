"""Continuous batching: one decode loop serves every running request of a model.

Each step puts the next token of every generating sequence, plus a chunk of any prompt still
being read, into one llama_batch, decodes it once, and samples each sequence with its own
sampler. Requests join and leave between steps. A sequence keeps its KV cache after its request
ends, so the next request that shares a prefix with it (the same system prompt, the next turn of
a conversation) only evaluates what is new. How a step's logits become each sequence's tokens
(sampling, fast-forward, the budget guide, prompt-lookup drafts) is in commit.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import llama_cpp

from slm_api.engine import seq_state
from slm_api.engine.commit import Committer
from slm_api.engine.decoding import Decoding
from slm_api.engine.job import GenerationFailed, Job
from slm_api.engine.projector import Projector
from slm_api.engine.prompt_cache import DiskPromptCache
from slm_api.engine.sampling import logits_row
from slm_api.engine.slots import (
    END_ROW,
    EndLogits,
    media_at,
    media_floor,
    place,
    position,
    text_until,
)
from slm_api.engine.slots import Slot as _Slot
from slm_api.engine.types import FinishCause, GenerationRequest
from slm_api.errors import Draining, EngineError, QueueFull

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        ctx: llama_cpp.llama_context_p,
        *,
        n_parallel: int,
        n_ctx: int,
        n_batch: int,
        max_queue: int,
        n_vocab: int,
        piece: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        reuse_prefix: bool = True,
        disk: DiskPromptCache | None = None,
        draft_max: int = 0,
        n_outputs: int = 0,
        n_swa: int = 0,
        projector: Projector | None = None,
    ):
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_ctx = n_ctx
        self._n_batch = max(n_batch, n_parallel)
        self._max_queue = max_queue
        self._n_vocab = n_vocab
        self._reuse = reuse_prefix
        self._disk = disk
        self._n_swa = n_swa  # the model's attention window (0: none)
        self._projector = projector  # evaluates a prompt's images (engine/projector.py)
        # Logits rows a step may ask for (the context's n_outputs_max): one per sequence, the
        # rest shared by the drafts.
        self._n_outputs = max(n_outputs, n_parallel)
        self._slots = [_Slot(i) for i in range(n_parallel)]
        self._waiting: deque[Job] = deque()
        self._wake = threading.Condition()
        self._running = True
        self._drain_deadline: float | None = None  # set by drain(): every generation ends by it
        self._committer = Committer(ctx, n_ctx=n_ctx, draft_max=draft_max, piece=piece,
                                    is_eog=is_eog)
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._thread = threading.Thread(target=self._loop, name="slm-scheduler", daemon=True)
        self._thread.start()

    # -- called from HTTP threads ------------------------------------------------------------

    def submit(self, job: Job) -> None:
        self.submit_all([job])

    def submit_all(self, jobs: list[Job]) -> None:
        """Queue jobs together (the choices of one request): all are admitted or none."""
        def refuse(exc: EngineError) -> None:
            for job in jobs:
                job.finish(FinishCause.ABORT)
            raise exc

        with self._wake:
            refusal = self._refusal(len(jobs))
            if refusal is not None:
                refuse(refusal)
            self._waiting.extend(jobs)
            self._wake.notify()

    def check_room(self, n: int) -> None:
        """Raise now what `submit_all` would for `n` jobs: a request with costly work to do
        before it is queued (encoding its images) learns first that it would be refused."""
        with self._wake:
            refusal = self._refusal(n)
        if refusal is not None:
            raise refusal

    def _refusal(self, n: int) -> EngineError | None:
        # Called with the lock held.
        if not self._running:
            return GenerationFailed("the model is being unloaded")
        if self._drain_deadline is not None:
            return Draining("the server is shutting down; retry on another replica")
        if any(j.aborted for j in self._waiting):
            # Clients that left while waiting must not keep new ones out.
            for gone in [j for j in self._waiting if j.aborted]:
                self._waiting.remove(gone)
                gone.finish(FinishCause.ABORT)
        free = sum(s.job is None for s in self._slots)
        if len(self._waiting) + n > free + self._max_queue:
            return QueueFull(
                f"server busy: {len(self._waiting)} requests already waiting; retry shortly")
        return None

    def stats(self) -> dict[str, int]:
        with self._wake:
            return {
                "active": sum(s.job is not None for s in self._slots),
                "queued": len(self._waiting),
                "n_parallel": len(self._slots),
                "max_queue": self._max_queue,
                "tokens_sampled": self._committer.tokens_sampled,
                "draft_tokens": self._committer.drafted,
                "draft_tokens_accepted": self._committer.draft_accepted,
                **({"images_encoded": self._projector.images_encoded,
                    "image_encodes_reused": self._projector.encode_reused}
                   if self._projector is not None else {}),
            }

    @property
    def alive(self) -> bool:
        """Whether the decode loop thread still runs (liveness)."""
        return self._thread.is_alive()

    def drain(self, deadline: float) -> None:
        """Shutting down: refuse new jobs, fail the waiting ones with 503 (they have not
        started), and end every running one by `deadline` (FinishCause.DRAIN)."""
        with self._wake:
            self._drain_deadline = deadline
            waiting, self._waiting = list(self._waiting), deque()
            self._wake.notify()
        for job in waiting:
            job.fail(Draining("the server is shutting down before this request started; "
                              "retry on another replica"))

    def warm(self, request: GenerationRequest) -> int:
        """Evaluate the request's prompt into a free sequence's cache without generating
        anything; returns how many of its tokens were already cached."""
        job = Job(request, Decoding(None, []))
        self.submit(job)
        for _ in job:
            pass
        return job.cached

    def close(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify()
        self._thread.join(timeout=30)
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    # -- the loop thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._running and not self._waiting and not self._has_work():
                    self._wake.wait()
                if not self._running:
                    break
                self._admit()
            try:
                self._step()
            except Exception as exc:  # one bad step must not kill the loop: fail who was in it
                log.exception("decode step failed")
                for slot in self._slots:
                    if slot.job is not None:
                        self._release(slot, error=GenerationFailed(f"generation failed: {exc}"))
        for slot in self._slots:
            if slot.job is not None:
                self._release(slot, FinishCause.ABORT)
        for job in self._waiting:
            job.finish(FinishCause.ABORT)
        self._waiting.clear()

    def _has_work(self) -> bool:
        return any(s.job is not None for s in self._slots)

    def _admit(self) -> None:
        # Called with the lock held: move waiting jobs into free sequences.
        while self._waiting:
            job = self._waiting[0]
            if job.aborted:
                self._waiting.popleft()
                job.finish(FinishCause.ABORT)
                continue
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            self._waiting.popleft()
            self._place(job, free)

    def _place(self, job: Job, free: list[_Slot]) -> None:
        prompt = job.request.prompt
        if job.fork_of is not None:
            leader = next((s for s in self._slots if s.job is job.fork_of), None)
            if leader is not None and leader.n_read < len(prompt):
                # The first choice is still reading this prompt: wait for it, copy its cells.
                slot = min(free, key=lambda s: s.last_used)
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                slot.cached.clear()
                slot.end = None
                slot.job, slot.n_read, slot.feed = job, 0, []
                slot.fork = leader
                job.cached = 0
                return
        placement = place(prompt, free, self._slots, reuse=self._reuse)
        slot, keep, donor = placement.slot, placement.keep, placement.donor
        if self._disk is not None:
            restored = seq_state.restore(self._ctx, self._disk, slot, prompt, keep)
            if restored > keep:
                keep, donor = restored, None
        if donor is not None:
            # Another sequence (maybe still running) holds a longer prefix: copy it. Each
            # sequence is its own KV stream, which llama.cpp copies whole at the next decode
            # (before that step's batch); the copied tail beyond the prefix is dropped below.
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, donor.seq_id, slot.seq_id, -1, -1)
            slot.cached = donor.cached[:keep]
            slot.end = donor.end
        # The generation starts from the logits after the last prompt token: the ones kept
        # when this very prompt was read before, or else from decoding that token again.
        whole = slot.end is not None and slot.end.n == len(prompt) <= keep
        keep = len(prompt) if whole else min(keep, len(prompt) - 1)
        keep = media_floor(job.request.media, keep)
        # llama.cpp's cells are addressed by position, which after an M-RoPE image is not the
        # token's index (slots.position).
        keep_pos = position(job.request.media, keep)
        if keep and self._n_swa:
            # A sliding-window cache holds only the last window of a sequence: a prefix can be
            # kept only if the window before its end is still there (llama-server's check).
            first = llama_cpp.llama_memory_seq_pos_min(self._mem, slot.seq_id)
            if first < 0 or first > max(0, keep_pos - self._n_swa):
                keep = 0
        if not llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id,
                                             position(job.request.media, keep), -1):
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            keep = 0
        del slot.cached[keep:]
        if slot.end is not None and slot.end.n > keep:
            slot.end = None  # its cells are gone
        slot.job = job
        slot.n_read = keep
        slot.feed = []
        slot.logit_row = END_ROW if keep == len(prompt) else -1
        job.cached = keep

    def _release(self, slot: _Slot, reason: FinishCause = FinishCause.ABORT,
                 error: EngineError | None = None) -> None:
        job = slot.job
        slot.job = None
        slot.feed = []
        slot.draft = []
        slot.fork = None
        slot.logit_row = -1
        slot.last_used = time.monotonic()
        if job is None:
            return
        if error is not None:
            # The cache of a failed step is in an unknown state: forget it.
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            slot.cached.clear()
            slot.end = None
            job.fail(error)
        else:
            if self._disk is not None and reason is not FinishCause.ABORT:
                seq_state.save(self._ctx, self._disk, slot, job)
            job.finish(reason)

    def _step(self) -> None:
        batch = self._batch
        n = 0
        active = [s for s in self._slots if s.job is not None]
        for slot in active:
            if slot.job.aborted:
                self._release(slot, FinishCause.ABORT)
            elif slot.fork is not None and slot.fork.job is not slot.job.fork_of:
                slot.fork = None  # the first choice is gone: read the prompt itself
        # Generating sequences first: their next token (or forced run) keeps every stream moving.
        draft_rows = self._n_outputs - len(self._slots)
        for slot in active:
            if slot.logit_row == END_ROW:
                continue  # its prompt was read before: it samples from the logits kept then
            slot.logit_row = -1
            feed = slot.feed
            if slot.job is None or not feed or n + len(feed) > self._n_batch:
                slot.draft = []
                continue
            # Drafts ride along only while the batch and the logits rows have room for them.
            room = min(self._n_batch - n - len(feed), draft_rows)
            if len(slot.draft) > room:
                del slot.draft[max(room, 0):]
            draft_rows -= len(slot.draft)
            first_row = n + len(feed) - 1  # the last fed token's row predicts the next one
            media = slot.job.request.media
            for tok in feed + slot.draft:
                self._put(n, tok, position(media, len(slot.cached)), slot.seq_id,
                          n >= first_row)
                slot.cached.append(tok)
                n += 1
            slot.feed = []
            slot.logit_row = first_row
        read: list[_Slot] = []  # the slots whose prompt ends in this step
        for slot in active:
            if slot.job is None or slot.logit_row != -1 or slot.fork is not None or \
                    slot.n_read == len(slot.job.request.prompt):
                continue
            prompt, media = slot.job.request.prompt, slot.job.request.media
            if media and not self._read_media(slot):
                continue
            end = text_until(media, slot.n_read, len(prompt)) if media else len(prompt)
            take = min(end - slot.n_read, self._n_batch - n)
            if take <= 0:
                continue
            for tok in prompt[slot.n_read : slot.n_read + take]:
                self._put(n, tok, position(media, len(slot.cached)), slot.seq_id, False)
                slot.cached.append(tok)
                n += 1
            slot.n_read += take
            if slot.n_read == len(prompt):
                batch.logits[n - 1] = 1
                slot.logit_row = n - 1
                read.append(slot)
        if n:
            batch.n_tokens = n
            rc = llama_cpp.llama_decode(self._ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            for slot in read:
                row = logits_row(self._ctx, slot.logit_row, self._n_vocab).copy()
                slot.end = EndLogits(len(slot.cached), row)
            for slot in active:
                if slot.fork is not None and slot.job is not None:
                    self._fork(slot, slot.fork)
        for slot in active:
            if slot.job is not None and slot.logit_row != -1:
                ended = self._committer.commit(slot, self._drain_deadline)
                if ended is not None:
                    self._release(slot, ended.reason, ended.error)
                if slot.logit_row == END_ROW:
                    slot.logit_row = -1

    def _read_media(self, slot: _Slot) -> bool:
        """Evaluate the media the slot's prompt reaches next into its own sequence (a decode
        of their embeddings, before this step's batch; the batch holds nothing of this slot
        yet, so its positions stay in order). False when that failed and the slot was let go."""
        assert slot.job is not None and self._projector is not None
        while (span := media_at(slot.job.request.media, slot.n_read)) is not None:
            try:
                self._projector.evaluate(
                    span, self._ctx, position(slot.job.request.media, len(slot.cached)),
                    slot.seq_id, self._n_batch)
            except Exception as exc:
                log.exception("evaluating an image failed")
                self._release(slot, error=GenerationFailed(f"the image failed: {exc}"))
                return False
            slot.cached.extend(slot.job.request.prompt[span.start:span.start + span.n_tokens])
            slot.n_read += span.n_tokens
        return True

    def _fork(self, slot: _Slot, leader: _Slot) -> None:
        """Once the first choice has read the prompt, copy its KV stream (at the next decode) and
        share its logits row: this choice samples its first token from the same row."""
        prompt = leader.job.request.prompt if leader.job is not None else []
        if leader.logit_row == -1 or leader.n_read < len(prompt):
            return
        llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        llama_cpp.llama_memory_seq_cp(self._mem, leader.seq_id, slot.seq_id, -1, -1)
        slot.cached = list(leader.cached)
        slot.end = leader.end
        slot.n_read = len(prompt)
        slot.logit_row = leader.logit_row
        slot.fork = None
        assert slot.job is not None
        slot.job.cached = len(prompt)

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if logits else 0
