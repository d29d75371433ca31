"""One interface in front of the grammar engines (as vLLM's structured-output backends): the
sampler, fast-forward and draft checks ask a `Constraint` what a grammar allows and never know
which engine answers.

llguidance answers (engine/masks.py): a whole-vocabulary mask in 0.16 ms mean against 41 ms for
llama.cpp's GBNF sampler (bench/mask_engines.py: Gemma 3's 262k tokens, all 113 schemas of the
grammar cases, 235/235 of their texts walked by both). llama.cpp's sampler is kept only as the
fallback: for the second or so after a model loads while llguidance's tokenizer is built, and
for a grammar llguidance does not take (none of the cases). That is why `GRAMMAR_ENGINE=llama`
and the 512-token shortlist that made llama.cpp's masks bearable went (issue 26).
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import threading
from collections.abc import Callable
from typing import Protocol

import llama_cpp
import numpy as np

from slm_api.engine import native
from slm_api.engine.masks import MaskTokenizer
from slm_api.errors import InvalidRequest
from slm_api.grammar.unique import UniqueSpec, split
from slm_api.grammar.unique_track import LIT, NUM, STR, UniqueTracker

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class Constraint(Protocol):
    """One generation's grammar state."""

    def allows(self, token: int) -> bool:
        """Whether the grammar takes `token` next (state unchanged)."""

    def allowed(self) -> np.ndarray:
        """A boolean mask over the vocabulary: the tokens the grammar takes next."""

    def accept(self, token: int) -> bool:
        """Advance past `token`, one `allows` has approved (every caller asks first: the
        sampler's pick, a forced token); False when the engine still reports an error."""

    def valid_prefix(self, tokens: list[int]) -> int:
        """How many leading `tokens` the grammar would take from here (state unchanged)."""

    def forced(self) -> list[int]:
        """Tokens the grammar fixes from here, whatever the model would say (fast-forward)."""

    def close(self) -> None: ...


class GrammarBackend:
    """A model's grammar engines: llguidance where it can, llama.cpp's sampler where not."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int,
                 piece: Callable[[int], bytes]) -> None:
        self._vocab = vocab
        self.n_vocab = n_vocab
        self.masks = MaskTokenizer(vocab, n_vocab)
        self.pieces = VocabBytes(n_vocab, piece)

    def constraint(self, gbnf: str) -> Constraint:
        """`gbnf` (a grammar with a `root` rule) as a generation's constraint; a grammar neither
        engine parses is the client's 400. A grammar whose schema has `uniqueItems` carries
        the arrays it names (grammar/unique.py): they are kept unique while decoding."""
        gbnf, unique = split(gbnf)
        inner = self.masks.matcher(gbnf) or LlamaGrammar(self._vocab, self.n_vocab, gbnf)
        return inner if unique is None else UniqueConstraint(inner, unique, self.pieces)

    def close(self) -> None:
        self.masks.close()


def token_array(buf: np.ndarray, size: int) -> llama_cpp.llama_token_data_array:
    return llama_cpp.llama_token_data_array(
        data=buf.ctypes.data_as(llama_cpp.llama_token_data_p), size=size, selected=-1,
        sorted=False)


@functools.cache
def token_ids(n_vocab: int) -> np.ndarray:
    """0..n_vocab-1, one read-only copy for every user of a vocabulary of that size."""
    ids = np.arange(n_vocab, dtype=np.int32)
    ids.flags.writeable = False
    return ids


class LlamaGrammar:
    """llama.cpp's GBNF sampler as a Constraint: it sets a refused candidate's logit to -inf."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int, gbnf: str) -> None:
        self._n_vocab = n_vocab
        self._smpl = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
        if not self._smpl:
            raise InvalidRequest("the grammar could not be parsed by llama.cpp",
                                 code="invalid_grammar")
        self._one = np.zeros(1, dtype=TOKEN_DATA)
        self._all: np.ndarray | None = None  # made on the first mask: 3 MiB for Gemma

    def allows(self, token: int) -> bool:
        return _allows(self._smpl, self._one, token)

    def allowed(self) -> np.ndarray:
        if self._all is None:
            self._all = np.zeros(self._n_vocab, dtype=TOKEN_DATA)
        cur = self._all
        cur["id"] = token_ids(self._n_vocab)
        cur["logit"] = 0.0
        llama_cpp.llama_sampler_apply(self._smpl, ctypes.byref(token_array(cur, self._n_vocab)))
        return np.isfinite(cur["logit"])

    def accept(self, token: int) -> bool:
        # Only after `allows`: llama.cpp aborts the process on a refused token.
        native.sampler_accept(self._smpl, token)
        return True

    def valid_prefix(self, tokens: list[int]) -> int:
        walker = llama_cpp.llama_sampler_clone(self._smpl)
        try:
            for n, token in enumerate(tokens):
                if not _allows(walker, self._one, token):
                    return n
                native.sampler_accept(walker, token)
            return len(tokens)
        finally:
            llama_cpp.llama_sampler_free(walker)

    def forced(self) -> list[int]:
        return []  # llama.cpp's sampler cannot name them: no fast-forward on the fallback

    def close(self) -> None:
        if self._smpl:
            llama_cpp.llama_sampler_free(self._smpl)
            self._smpl = None


def _allows(smpl: llama_cpp.llama_sampler_p, one: np.ndarray, token: int) -> bool:
    one[0] = (token, 0.0, 0.0)
    llama_cpp.llama_sampler_apply(smpl, ctypes.byref(token_array(one, 1)))
    return bool(np.isfinite(one["logit"][0]))


# -- uniqueItems ----------------------------------------------------------------------------
# The grammar's constraint, minus the tokens whose text would complete an item equal to an
# earlier item of the same unique array (grammar/unique.py says which arrays,
# grammar/unique_track.py follows the output). The grammar's mask is computed as before; only
# the candidates it allows whose text can complete a value in the tracker's current state (a
# `"` inside a string, a `,` `]` `}` or space after a number, ...) are walked through the
# tracker, found with one AND of precomputed vocabulary masks. The sampler asks `allows` about
# its own pick first, so most steps probe one token (bench/unique_items.py).

_QUOTE = frozenset(b'"')
_TERM = frozenset(b",]} \t\r\n")
_LIT = frozenset(b"el")  # the last letter of true, false, null


class VocabBytes:
    """Every token's bytes and which tokens can end a JSON value, built on first use."""

    def __init__(self, n_vocab: int, piece: Callable[[int], bytes]) -> None:
        self._n_vocab = n_vocab
        self._piece = piece
        self._lock = threading.Lock()
        self.pieces: list[bytes] = []
        self.quote = self.term = self.any = self.bracket = np.zeros(0, dtype=bool)
        # Tokens that close a string and then at most write `,` or spaces, by their text
        # before the quote (no backslash): the string they end is known without a walk.
        self.by_head: dict[bytes, list[int]] = {}
        self.quote_hard = self.quote  # the other tokens with a quote: walked
        self._sorted: list[tuple[bytes, int]] = []  # (text, token), for prefix look-ups

    def ready(self) -> VocabBytes:
        with self._lock:
            if not self.pieces:
                pieces = [self._piece(t) for t in range(self._n_vocab)]
                self.quote = _having(pieces, _QUOTE)
                self.term = _having(pieces, _TERM)
                self.any = self.quote | self.term | _having(pieces, _LIT)
                self.bracket = _having(pieces, frozenset(b"[")) & self.any
                hard = self.quote.copy()
                for t in np.flatnonzero(self.quote):
                    head, _, tail = pieces[t].partition(b'"')
                    if b"\\" not in head and not tail.strip(b", \t\r\n"):
                        self.by_head.setdefault(head, []).append(int(t))
                        hard[t] = False
                self.quote_hard = hard
                self._sorted = sorted((p, t) for t, p in enumerate(pieces))
                self.pieces = pieces
        return self

    def starting(self, prefix: bytes) -> list[int]:
        """The tokens whose text starts with `prefix` (non-empty)."""
        if not prefix:
            return []
        at = bisect.bisect_left(self._sorted, (prefix, -1))
        out = []
        while at < len(self._sorted) and self._sorted[at][0].startswith(prefix):
            out.append(self._sorted[at][1])
            at += 1
        return out

    def completing(self, mode: int) -> np.ndarray | None:
        """Tokens that can complete a value from a tracker in `mode` (None: any token)."""
        if mode == STR:
            return self.quote
        if mode in (NUM, LIT):  # a digit can make a long number a repeat; both masks are small
            return None
        return self.any


def _having(pieces: list[bytes], chars: frozenset[int]) -> np.ndarray:
    return np.fromiter((not chars.isdisjoint(p) for p in pieces), dtype=bool, count=len(pieces))


class UniqueConstraint:
    """A Constraint: `inner` (the grammar's) that also keeps unique arrays' items distinct."""

    def __init__(self, inner: Constraint, spec: UniqueSpec, vocab: VocabBytes) -> None:
        self._inner = inner
        self._vocab = vocab.ready()
        self.tracker = UniqueTracker(spec)
        self.refused = 0  # tokens refused for a duplicate (tests, bench)

    def allows(self, token: int) -> bool:
        if not self._inner.allows(token):
            return False
        if self.tracker.probe(self._vocab.pieces[token]):
            return True
        self.refused += 1
        return False

    def allowed(self) -> np.ndarray:
        mask = self._inner.allowed()
        t = self.tracker
        if not t.active:
            return mask
        item = t.string_item()
        if t.finite_open:
            picks = mask  # few values: any byte may rule out the free ones (and masks are small)
        elif item is not None and b"\\" not in item[0]:
            # Inside a string item: a token that closes it repeats an item exactly when its
            # text before the quote spells the rest of one; only odd tokens are walked.
            written, taken, max_len = item
            walk = []
            for s in taken:
                if s.startswith(written):
                    for token in self._vocab.by_head.get(s[len(written):], ()):
                        if mask[token]:
                            mask[token] = False
                            self.refused += 1
                    if max_len >= 0:  # a token that spells the rest of a taken item at
                        walk += self._vocab.starting(s[len(written):])  # its maxLength
            picks = mask & self._vocab.quote_hard
            if walk:
                picks[walk] = mask[walk]
        elif t.unique_open:
            completing = self._vocab.completing(t.mode)
            picks = mask if completing is None else mask & completing
        elif t.may_open_unique():
            picks = mask & self._vocab.bracket  # open a unique array and repeat in one token
        else:
            return mask
        pieces = self._vocab.pieces
        for token in np.flatnonzero(picks):
            if not t.probe(pieces[token]):
                mask[token] = False
                self.refused += 1
        return mask

    def accept(self, token: int) -> bool:
        ok = self._inner.accept(token)
        self.tracker.feed(self._vocab.pieces[token])
        return ok

    def valid_prefix(self, tokens: list[int]) -> int:
        n = self._inner.valid_prefix(tokens)
        return self.tracker.fits([self._vocab.pieces[t] for t in tokens[:n]])

    def forced(self) -> list[int]:
        tokens = self._inner.forced()
        return tokens[:self.tracker.fits([self._vocab.pieces[t] for t in tokens])]

    def close(self) -> None:
        self._inner.close()
