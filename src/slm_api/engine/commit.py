"""How one step's logits become a sequence's output: the sampled token, the tokens the grammar
forces after it (fast-forward), the budget guide's closing, and the check of prompt-lookup
drafts. The Scheduler owns one Committer and asks it, per slot and step, to `commit`; the answer
says whether the sequence goes on or how it ended, and the Scheduler releases the slot (as
llama.cpp's server does after `process_token`). Admission, placement and batching stay there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import llama_cpp
import numpy as np

from slm_api.engine.job import Job
from slm_api.engine.sampling import logits_row, logprob_of
from slm_api.engine.slots import END_ROW, Slot, position
from slm_api.engine.types import FinishCause, TokenLogprob
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


@dataclass(frozen=True)
class Ended:
    """How a step ended a sequence's generation: its `reason`, or `error`."""

    reason: FinishCause = FinishCause.STOP
    error: EngineError | None = None


class _End(Exception):  # noqa: N818 (control flow, not an error: it unwinds to commit())
    def __init__(self, ended: Ended):
        self.ended = ended


class Committer:
    """The token path of one context's sequences, and its counters."""

    def __init__(self, ctx: llama_cpp.llama_context_p, *, n_ctx: int, draft_max: int,
                 piece: Callable[[int], bytes], is_eog: Callable[[int], bool]):
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_ctx = n_ctx
        self._draft_max = draft_max
        self._piece = piece
        self._is_eog = is_eog
        self._deadline: float | None = None  # the drain deadline of the step being committed
        # Tokens sampled since load, aborted generations included: how a client (or a test)
        # sees whether the loop still decodes for a request that has gone away.
        self.tokens_sampled = 0
        self.drafted = 0
        self.draft_accepted = 0

    def commit(self, slot: Slot, drain_deadline: float | None = None) -> Ended | None:
        """Sample this step's token(s) for `slot`'s job; None while it goes on, else how it
        ended (the caller releases the slot). `drain_deadline` ends it by then (DRAIN)."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        if dec.sampler is None:
            return Ended(FinishCause.STOP)
        self._deadline = drain_deadline
        # Tokens decoded after the last committed one on a guess (prompt lookup), each with its
        # logits row after `slot.logit_row`. Each row is sampled exactly as plain decoding
        # would sample it, and only while every committed token so far equals the guess at
        # its place: the output (and the random draws behind it) is plain decoding's, the
        # guessed tokens the model agreed with are already in the cache.
        draft = _Drafts(slot.draft, len(slot.cached) - len(slot.draft))
        slot.draft = []
        ended = None
        try:
            self._commit(slot, draft)
        except _End as end:
            ended = end.ended
        finally:
            accepted = self._keep_drafts(slot, draft)
            self.drafted += len(draft.tokens)
            self.draft_accepted += accepted
            if draft.tokens and dec.lookup is not None:
                dec.lookup.judge(len(draft.tokens), accepted)
        return ended

    def _commit(self, slot: Slot, draft: _Drafts) -> None:
        """Sample this step's token(s) of `slot`, and append the tokens the grammar forces
        after them (fast-forward): each is judged by the budget guide, emitted, and (unless
        already in the cache as a confirmed draft) decoded in the next step. Raises _End when
        the generation ends."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        now = time.monotonic()
        row = slot.logit_row
        token = self._draw(slot, row, now)
        guide = dec.guide
        pending: list[int] = []
        while True:
            decision = guide.on_sampled(token) if guide is not None else KEEP
            if decision is not KEEP:
                self._keep_drafts(slot, draft)
                self._apply(slot, token, decision, now, pending, row)
                return
            self._emit(slot, token, row)
            if not pending and draft.confirms(token):
                draft.confirmed += 1  # already decoded
            else:
                pending.append(token)
            forced = self._forced_next(job)
            if forced is not None:
                token, row = forced, -1
                continue
            if pending or dec.generated >= job.request.max_tokens:
                break
            # Every committed token was a confirmed draft: the next row predicts what follows.
            row = slot.logit_row + draft.confirmed
            token = self._draw(slot, row, now)
        self._keep_drafts(slot, draft)
        self._check_room(slot, now, len(pending))
        slot.feed = pending
        self._propose(slot)

    def _draw(self, slot: Slot, row: int, now: float) -> int:
        """Sample a token from a logits row; _End when the generation ends there (end of
        generation, or a sampler error)."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        assert dec.sampler is not None
        try:
            token = dec.sampler.sample(self._ctx, row, self._kept(slot, row))
        except EngineError as exc:
            raise _End(Ended(error=exc)) from exc
        self.tokens_sampled += 1
        if dec.first_token_at is None:
            dec.first_token_at = now
        if self._is_eog(token):
            job.flush()
            raise _End(Ended(FinishCause.STOP))
        return token

    def _keep_drafts(self, slot: Slot, draft: _Drafts) -> int:
        """Drop the cells of the drafts beyond the confirmed ones (a failed step may have
        emptied the cache already); returns how many drafts the cache keeps."""
        end = draft.base + draft.confirmed
        if len(slot.cached) > end >= 0:
            media = slot.job.request.media if slot.job is not None else ()
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, position(media, end), -1)
            del slot.cached[end:]
        return max(0, min(draft.confirmed, len(slot.cached) - draft.base))

    def _propose(self, slot: Slot) -> None:
        """Guess the tokens after `slot.feed` from the prompt, for the next step to check."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        if dec.lookup is None:
            return
        room = min(self._draft_max, job.request.max_tokens - dec.generated,
                   self._n_ctx - len(slot.cached) - len(slot.feed) - 1)
        tail = slot.feed if len(slot.feed) >= 8 else slot.cached[-8:] + slot.feed
        draft = dec.lookup.draft(tail, room)
        constraint = dec.sampler.constraint if dec.sampler is not None else None
        if draft and constraint is not None:
            # Guesses the grammar refuses would only be decoded to be dropped.
            del draft[constraint.valid_prefix(draft):]
        slot.draft = draft

    def _forced_next(self, job: Job) -> int | None:
        """The next token the grammar allows alone, already accepted by the sampler; None when
        the model must choose (or fast-forward is off, or the budget is spent)."""
        dec = job.decoding
        sampler = dec.sampler
        if not dec.fast_forward or sampler is None or sampler.constraint is None or \
                dec.generated >= job.request.max_tokens:
            return None
        if not dec.ff_queue:
            dec.ff_queue = sampler.constraint.forced()
            dec.ff_queue.reverse()
        while dec.ff_queue:
            token = dec.ff_queue.pop()
            if self._is_eog(token) or not sampler.force(token):
                dec.ff_queue.clear()
                return None
            dec.fast_forwarded += 1
            return token
        return None

    def _apply(self, slot: Slot, token: int, decision: Decision, now: float,
               pending: list[int], row: int) -> None:
        """Carry out a budget guide's decision: tokens forced after (or instead of) the sampled
        one are emitted like sampled ones and decoded, with `pending` (emitted, not yet
        decoded), in the next step."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        assert dec.sampler is not None
        dec.ff_queue.clear()
        forced = list(decision.force)
        if not decision.end and not all(dec.sampler.force(t) for t in forced):
            # The grammar engine disagrees with the recognizer: trust the engine from here on.
            assert dec.guide is not None
            dec.guide.active = False
            forced = []
        new = ([token] if decision.keep else []) + forced
        for i, tok in enumerate(new):
            self._emit(slot, tok, row if i == 0 and decision.keep else -1)
        feed = pending + new
        if decision.end:
            # The closing tokens are sent, not decoded: nothing reads their cells (as with an
            # end-of-generation token), and the reply goes out a decode step sooner.
            job.flush()
            raise _End(Ended(FinishCause.STOP))
        self._check_room(slot, now, len(feed))
        slot.feed = feed

    def _emit(self, slot: Slot, token: int, row: int) -> None:
        """Count a token of the output and send its text; `row` is its logits row (-1: forced,
        no distribution behind it)."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        assert dec.sampler is not None
        dec.generated += 1
        n_probs = job.request.sampling.n_probs
        if n_probs > 0:
            if row != -1:
                logits = self._kept(slot, row)
                if logits is None:
                    logits = logits_row(self._ctx, row, dec.sampler.n_vocab)
                dec.pending_logprobs.append(logprob_of(logits, token, n_probs, self._piece_text))
            else:
                text = self._piece_text(token)
                dec.pending_logprobs.append(TokenLogprob(text, 0.0, list(text.encode()), []))
        dec.pending_ids.append(token)
        text = dec.text.feed(self._piece(token))
        if text:
            job.emit(text)
        if dec.text.stopped:
            raise _End(Ended(FinishCause.STOP_SEQUENCE))

    def _check_room(self, slot: Slot, now: float, pending: int) -> None:
        """End when max_tokens, the context or a deadline is reached,
        `pending` tokens still to be decoded."""
        job = slot.job
        assert job is not None
        dec = job.decoding
        deadline = job.request.deadline
        if self._deadline is not None:
            deadline = min(deadline or self._deadline, self._deadline)
        if dec.generated >= job.request.max_tokens:
            cause = FinishCause.MAX_TOKENS
        elif len(slot.cached) + pending >= self._n_ctx:
            cause = FinishCause.CONTEXT_FULL
        elif deadline is not None and now >= deadline:
            drained = self._deadline is not None and now >= self._deadline
            cause = FinishCause.DRAIN if drained else FinishCause.DEADLINE
        else:
            return
        job.flush()
        raise _End(Ended(cause))

    @staticmethod
    def _kept(slot: Slot, row: int) -> np.ndarray | None:
        """The slot's kept prompt-end logits when `row` names them, else None (a batch row)."""
        if row != END_ROW:
            return None
        assert slot.end is not None
        return slot.end.row

    def _piece_text(self, token: int) -> str:
        return self._piece(token).decode("utf-8", errors="replace")
