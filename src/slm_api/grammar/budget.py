"""Budget-aware constrained decoding: decide, token by token, when a constrained output must
stop following the model and take the shortest way to a valid end.

The guide follows the output through the grammar (recognizer.Grammar). Its invariant: the
shortest valid completion of what has been kept always fits in the tokens left. A sampled token
that would break it is dropped and the completion from before it is forced instead, so a
constrained reply is complete and valid whenever max_tokens allows any valid reply at all.
It also watches for degenerate loops (the same token n-gram over and over, typical of a small
model inside an unbounded string or array) and then steers to the close of the innermost
construct by forcing the first token of the shortest completion.

Pure: the model's tokenizer comes in as two callables, so all of this is testable without one.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .recognizer import Grammar, Stack
from .unique import UniqueSpec
from .unique_close import completion
from .unique_track import UniqueTracker

log = logging.getLogger(__name__)

# A loop is a block of PERIOD_MAX tokens or fewer repeated until it spans LOOP_SPAN tokens
# (and at least LOOP_MIN_REPEATS times): 16 equal tokens, or a 4-token phrase 4 times.
PERIOD_MAX = 16
LOOP_SPAN = 16
LOOP_MIN_REPEATS = 3
UNIQUE_MARGIN = 8


def looping(ids: list[int]) -> bool:
    """Whether `ids` ends in a degenerate repetition."""
    n = len(ids)
    for k in range(1, PERIOD_MAX + 1):
        repeats = max(LOOP_MIN_REPEATS, -(-LOOP_SPAN // k))
        span = k * repeats
        if span > n:
            continue
        block = ids[n - k:]
        if ids[n - span:] == block * repeats:
            return True
    return False


@dataclass(frozen=True)
class Decision:
    """What to do with a sampled token.

    keep: commit the sampled token. force: tokens to append after it (or instead of it, when
    keep is False) without sampling. end: the output is complete after the forced tokens."""

    keep: bool = True
    force: tuple[int, ...] = ()
    end: bool = False


KEEP = Decision()


class BudgetGuide:
    """One constrained generation's closing planner.

    `tokenize(text)` gives the token ids that spell `text` (no special tokens); `piece(id)`
    the bytes of one token. `needed` is the budget the shortest valid output takes from the
    start: when max_tokens is below it, no reply can be complete and the guide stays passive.
    With `unique` (the grammar's uniqueItems arrays), a closing never repeats an item there.
    """

    def __init__(self, grammar: Grammar, max_tokens: int, tokenize: Callable[[str], list[int]],
                 piece: Callable[[int], bytes], *, steer_loops: bool = True,
                 unique: UniqueSpec | None = None) -> None:
        self.grammar = grammar
        self.max_tokens = max_tokens
        self._tokenize = tokenize
        self._piece = piece
        self._steer_loops = steer_loops
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.stacks: frozenset[Stack] = grammar.start()
        self.generated = 0
        self.ids: list[int] = []  # kept tokens since the last steer (the loop window)
        self.closings = 0
        self.steers = 0
        self.tracker = UniqueTracker(unique) if unique is not None else None
        start = completion(grammar, self.stacks, self.tracker)
        self.needed = len(self._tokenize(start)) if start else 1
        # Off when no complete reply fits, or once the recognizer and llama.cpp disagree.
        self.active = self.needed <= max_tokens

    def _closing_tokens(self, stacks: frozenset[Stack], pending: bytes = b"") -> list[int] | None:
        """The tokens of the shortest valid completion from `stacks`, `pending` (the bytes
        of a token not kept yet) already written."""
        text = completion(self.grammar, stacks, self.tracker, pending)
        if text is None:
            return None
        return self._tokenize(text) if text else []

    def _advance(self, token: int) -> frozenset[Stack] | None:
        try:
            text = self._utf8.decode(self._piece(token))
        except UnicodeDecodeError:
            return None
        stacks = self.grammar.advance(self.stacks, text) if text else self.stacks
        return stacks or None

    def on_sampled(self, token: int) -> Decision:
        """Judge a sampled token (not end-of-generation) before it is committed."""
        if not self.active:
            return KEEP
        decoder_state = self._utf8.getstate()
        stacks = self._advance(token)
        if stacks is None:
            log.warning("budget guide: the grammar recognizer disagrees with llama.cpp; off")
            self.active = False
            return KEEP
        left = self.max_tokens - self.generated - 1
        # Bytes bound tokens from above, so the exact (tokenizer) count is only needed when
        # the byte count comes close to the budget.
        cost = min(map(self.grammar.stack_cost, stacks))
        # Distinct items take a few bytes more than the plain shortest completion counts.
        margin = UNIQUE_MARGIN if self.tracker is not None and self.tracker.unique_open else 0
        fits = cost + margin <= left
        if not fits:
            closing = self._closing_tokens(stacks, self._piece(token))
            fits = closing is not None and len(closing) <= left
        if not fits:
            self._utf8.setstate(decoder_state)
            closing = self._closing_tokens(self.stacks)
            if closing is None or len(closing) > left + 1:
                self.active = False
                return KEEP
            self.closings += 1
            self.generated += len(closing)
            self.active = False
            return Decision(keep=False, force=tuple(closing), end=True)
        self.stacks = stacks
        self.generated += 1
        self.ids.append(token)
        if self.tracker is not None:
            self.tracker.feed(self._piece(token))
        if cost == 0 and self.grammar.is_complete(stacks):
            # The value is whole: only trailing whitespace could follow. End now rather than
            # spend the budget on it and report "length" for a complete reply.
            text = self._piece(token)
            if not text.strip():
                self.active = False
                return Decision(keep=False, end=True)
            if left == 0:
                self.active = False
                return Decision(end=True)
        if self._steer_loops and cost > 0 and looping(self.ids):
            return self._steer()
        return KEEP

    def _steer(self) -> Decision:
        closing = self._closing_tokens(self.stacks)
        self.ids.clear()
        if not closing:
            return KEEP
        first = closing[0]
        stacks = self._advance(first)
        if stacks is None:
            return KEEP
        self.stacks = stacks
        self.generated += 1
        self.steers += 1
        if self.tracker is not None:
            self.tracker.feed(self._piece(first))
        return Decision(force=(first,), end=len(closing) == 1 and self.grammar.is_complete(stacks))
