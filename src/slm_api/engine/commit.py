"""How one step's logits become a sequence's output: the sampled token, the tokens the grammar
forces after it (fast-forward), the budget guide's closing, and the check of prompt-lookup
drafts. Part of the Scheduler (a mixin over its state), kept apart from admission, placement
and batching so each file reads as one concern.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import llama_cpp
import numpy as np

from slm_api.engine.job import Job
from slm_api.engine.sampling import logits_row, logprob_of
from slm_api.engine.slots import END_ROW, Slot
from slm_api.engine.types import TokenLogprob
from slm_api.errors import EngineError
from slm_api.grammar.budget import KEEP, Decision


@dataclass
class _Drafts:
    """One step's decoded guesses for a sequence, as its committed tokens check them."""

    tokens: list[int]
    base: int  # cache position of the first guess
    confirmed: int = 0  # leading guesses equal to the committed tokens

    def confirms(self, token: int) -> bool:
        return self.confirmed < len(self.tokens) and self.tokens[self.confirmed] == token


class Committer:
    """The Scheduler's token path; the attributes below are the Scheduler's."""

    _ctx: llama_cpp.llama_context_p
    _mem: llama_cpp.llama_memory_t
    _n_ctx: int
    _draft_max: int
    _drafted: int
    _draft_accepted: int
    _tokens_sampled: int
    _drain_deadline: float | None
    _is_eog: Callable[[int], bool]
    _piece: Callable[[int], bytes]
    _release: Callable[..., None]  # (slot, reason="", error=None): end the slot's job

    def _sample(self, slot: Slot) -> None:
        job = slot.job
        assert job is not None
        if job.sampler is None:
            self._release(slot, "stop")
            return
        # Tokens decoded after the last committed one on a guess (prompt lookup), each with its
        # logits row after `slot.logit_row`. Each row is sampled exactly as plain decoding
        # would sample it, and only while every committed token so far equals the guess at
        # its place: the output (and the random draws behind it) is plain decoding's, the
        # guessed tokens the model agreed with are already in the cache.
        draft = _Drafts(slot.draft, len(slot.cached) - len(slot.draft))
        slot.draft = []
        try:
            self._commit(slot, draft)
        finally:
            accepted = self._keep_drafts(slot, draft)
            self._drafted += len(draft.tokens)
            self._draft_accepted += accepted
            if draft.tokens and job.lookup is not None:
                job.lookup.judge(len(draft.tokens), accepted)

    def _commit(self, slot: Slot, draft: _Drafts) -> None:
        """Sample this step's token(s) of `slot`, and append the tokens the grammar forces
        after them (fast-forward): each is judged by the budget guide, emitted, and (unless
        already in the cache as a confirmed draft) decoded in the next step."""
        job = slot.job
        assert job is not None
        now = time.monotonic()
        row = slot.logit_row
        token = self._draw(slot, row, now)
        if token is None:
            return
        guide = job.guide
        pending: list[int] = []
        while True:
            decision = guide.on_sampled(token) if guide is not None else KEEP
            if decision is not KEEP:
                self._keep_drafts(slot, draft)
                self._apply(slot, token, decision, now, pending, row)
                return
            self._emit(slot, token, row)
            if slot.job is None:
                return
            if not pending and draft.confirms(token):
                draft.confirmed += 1  # already decoded
            else:
                pending.append(token)
            forced = self._forced_next(job)
            if forced is not None:
                token, row = forced, -1
                continue
            if pending or job.generated >= job.request.max_tokens:
                break
            # Every committed token was a confirmed draft: the next row predicts what follows.
            row = slot.logit_row + draft.confirmed
            token = self._draw(slot, row, now)
            if token is None:
                return
        self._keep_drafts(slot, draft)
        if not self._ended(slot, now, len(pending)):
            slot.feed = pending
            self._propose(slot)

    def _draw(self, slot: Slot, row: int, now: float) -> int | None:
        """Sample a token from a logits row; None when the generation ended there (end of
        generation, or a sampler error)."""
        job = slot.job
        assert job is not None and job.sampler is not None
        try:
            token = job.sampler.sample(self._ctx, row, self._kept(slot, row))
        except EngineError as exc:
            self._release(slot, error=exc)
            return None
        self._tokens_sampled += 1
        if job.first_token_at is None:
            job.first_token_at = now
        if self._is_eog(token):
            job.flush()
            self._release(slot, "stop")
            return None
        return token

    def _keep_drafts(self, slot: Slot, draft: _Drafts) -> int:
        """Drop the cells of the drafts beyond the confirmed ones (a failed step may have
        emptied the cache already); returns how many drafts the cache keeps."""
        end = draft.base + draft.confirmed
        if len(slot.cached) > end >= 0:
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, end, -1)
            del slot.cached[end:]
        return max(0, min(draft.confirmed, len(slot.cached) - draft.base))

    def _propose(self, slot: Slot) -> None:
        """Guess the tokens after `slot.feed` from the prompt, for the next step to check."""
        job = slot.job
        assert job is not None
        if job.lookup is None:
            return
        room = min(self._draft_max, job.request.max_tokens - job.generated,
                   self._n_ctx - len(slot.cached) - len(slot.feed) - 1)
        tail = slot.feed if len(slot.feed) >= 8 else slot.cached[-8:] + slot.feed
        draft = job.lookup.draft(tail, room)
        matcher = job.sampler.matcher if job.sampler is not None else None
        if draft and matcher is not None:
            # Guesses the grammar refuses would only be decoded to be dropped.
            del draft[matcher.valid_prefix(draft):]
        slot.draft = draft

    def _forced_next(self, job: Job) -> int | None:
        """The next token the grammar allows alone, already accepted by the sampler; None when
        the model must choose (or fast-forward is off, or the budget is spent)."""
        sampler = job.sampler
        if not job.fast_forward or sampler is None or sampler.matcher is None or \
                job.generated >= job.request.max_tokens:
            return None
        if not job.ff_queue:
            job.ff_queue = sampler.matcher.forced()
            job.ff_queue.reverse()
        while job.ff_queue:
            token = job.ff_queue.pop()
            if self._is_eog(token) or not sampler.force(token):
                job.ff_queue.clear()
                return None
            job.fast_forwarded += 1
            return token
        return None

    def _apply(self, slot: Slot, token: int, decision: Decision, now: float,
               pending: list[int], row: int) -> None:
        """Carry out a budget guide's decision: tokens forced after (or instead of) the sampled
        one are emitted like sampled ones and decoded, with `pending` (emitted, not yet
        decoded), in the next step."""
        job = slot.job
        assert job is not None and job.sampler is not None
        job.ff_queue.clear()
        forced = list(decision.force)
        if not decision.end and not all(job.sampler.force(t) for t in forced):
            # The grammar engine disagrees with the recognizer: trust the engine from here on.
            assert job.guide is not None
            job.guide.active = False
            forced = []
        new = ([token] if decision.keep else []) + forced
        for i, tok in enumerate(new):
            self._emit(slot, tok, row if i == 0 and decision.keep else -1)
            if slot.job is None:
                return
        feed = pending + new
        if decision.end:
            # The closing tokens are sent, not decoded: nothing reads their cells (as with an
            # end-of-generation token), and the reply goes out a decode step sooner.
            job.flush()
            self._release(slot, "stop")
            return
        if not self._ended(slot, now, len(feed)):
            slot.feed = feed

    def _emit(self, slot: Slot, token: int, row: int) -> None:
        """Count a token of the output and send its text; `row` is its logits row (-1: forced,
        no distribution behind it)."""
        job = slot.job
        assert job is not None and job.sampler is not None
        job.generated += 1
        n_probs = job.request.sampling.n_probs
        if n_probs > 0:
            if row != -1:
                logits = self._kept(slot, row)
                if logits is None:
                    logits = logits_row(self._ctx, row, job.sampler.n_vocab)
                job.pending_logprobs.append(logprob_of(logits, token, n_probs, self._piece_text))
            else:
                text = self._piece_text(token)
                job.pending_logprobs.append(TokenLogprob(text, 0.0, list(text.encode()), []))
        job.pending_ids.append(token)
        text = job.text.feed(self._piece(token))
        if text:
            job.emit(text)
        if job.text.stopped:
            self._release(slot, "stop")

    def _ended(self, slot: Slot, now: float, pending: int) -> bool:
        """Release the slot with "length" when max_tokens, the context or the deadline is
        reached, `pending` tokens still to be decoded."""
        job = slot.job
        assert job is not None
        deadline = job.request.deadline
        if self._drain_deadline is not None:
            deadline = min(deadline or self._drain_deadline, self._drain_deadline)
        out_of_room = len(slot.cached) + pending >= self._n_ctx
        if job.generated >= job.request.max_tokens or out_of_room or (
            deadline is not None and now >= deadline
        ):
            job.flush()
            self._release(slot, "length")
            return True
        return False

    @staticmethod
    def _kept(slot: Slot, row: int) -> np.ndarray | None:
        """The slot's kept prompt-end logits when `row` names them, else None (a batch row)."""
        if row != END_ROW:
            return None
        assert slot.end is not None
        return slot.end.row

    def _piece_text(self, token: int) -> str:
        return self._piece(token).decode("utf-8", errors="replace")
