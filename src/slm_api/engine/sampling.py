"""One request's sampler: llama.cpp's sampler chain, plus an optional grammar.

The grammar is checked against the token the chain picked and applied to the whole vocabulary
only when that token is refused: running a grammar over Gemma's 262k-token vocabulary on every
step would cost more than the decode itself (the same trick as llama.cpp's common sampler).
"""

from __future__ import annotations

import ctypes
import functools
import random
from collections.abc import Callable

import llama_cpp
import numpy as np

from slm_api.engine import native
from slm_api.engine.masks import Matcher
from slm_api.engine.types import SamplingParams, TokenLogprob
from slm_api.errors import InvalidRequest

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
PENALTY_LAST_N = 64
# When the chain's pick is refused by the grammar, the grammar first judges only this many of
# the most likely tokens: running it over Gemma's 262k-token vocabulary costs ~100 ms a step.
SHORTLIST = 512


def _token_array(buf: np.ndarray, size: int) -> llama_cpp.llama_token_data_array:
    return llama_cpp.llama_token_data_array(
        data=buf.ctypes.data_as(llama_cpp.llama_token_data_p),
        size=size,
        selected=-1,
        sorted=False,
    )


class Sampler:
    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int, params: SamplingParams,
                 matcher: Matcher | None = None):
        self.n_vocab = n_vocab
        self.params = params
        self.grammar = None
        # llguidance's state of the grammar (masks in ~0.5 ms); None: llama.cpp's sampler.
        self.matcher = matcher
        self.chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        try:
            self._build_chain(params)
            if params.grammar is not None and matcher is None:
                self.grammar = llama_cpp.llama_sampler_init_grammar(
                    vocab, params.grammar.encode("utf-8"), b"root"
                )
                if not self.grammar:
                    raise InvalidRequest(
                        "the grammar could not be parsed by llama.cpp", code="invalid_grammar"
                    )
        except BaseException:
            self.close()
            raise
        # The vocabulary-sized candidate array (3 MiB for Gemma) is made on the first pick in
        # Python: a request without a grammar samples in C and never needs it.
        self._cur: np.ndarray | None = None
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self._short = np.zeros(min(SHORTLIST, n_vocab), dtype=_TOKEN_DATA)
        self._need = _shortlist_need(params, n_vocab)
        # Whether accepting a token leaves the chain as it was (only penalties keep a history).
        self._accept_is_free = not (params.repeat_penalty != 1.0 or params.frequency_penalty
                                    or params.presence_penalty)

    def _add(self, sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def _build_chain(self, p: SamplingParams) -> None:
        if p.logit_bias:
            valid = {t: b for t, b in p.logit_bias.items() if 0 <= t < self.n_vocab}
            if len(valid) != len(p.logit_bias):
                raise InvalidRequest("logit_bias names a token id outside the vocabulary",
                                     param="logit_bias")
            biases = (llama_cpp.llama_logit_bias * len(valid))(
                *(llama_cpp.llama_logit_bias(token=t, bias=b) for t, b in valid.items())
            )
            self._add(llama_cpp.llama_sampler_init_logit_bias(self.n_vocab, len(valid), biases))
        if p.repeat_penalty != 1.0 or p.frequency_penalty or p.presence_penalty:
            self._add(llama_cpp.llama_sampler_init_penalties(
                self.n_vocab, PENALTY_LAST_N, p.repeat_penalty, p.frequency_penalty,
                p.presence_penalty,
            ))
        if p.temperature <= 0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if p.top_k > 0:
            self._add(llama_cpp.llama_sampler_init_top_k(p.top_k))
        if p.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
        if p.min_p > 0.0:
            self._add(llama_cpp.llama_sampler_init_min_p(p.min_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(p.temperature))
        seed = p.seed if p.seed is not None else random.getrandbits(32)
        self._add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def _pick(self, logits: np.ndarray, with_grammar: bool) -> int:
        if self._cur is None:
            self._cur = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        cur = self._cur
        cur["id"] = _token_ids(self.n_vocab)
        cur["logit"] = logits
        cur["p"] = 0.0
        arr = _token_array(cur, self.n_vocab)
        if with_grammar:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        if arr.selected < 0:
            raise InvalidRequest("no token is allowed here (grammar dead end)",
                                 code="grammar_dead_end")
        return int(cur["id"][arr.selected])

    def _pick_shortlisted(self, logits: np.ndarray) -> int | None:
        """The grammar-constrained pick made among the SHORTLIST most likely tokens, when that
        is provably the pick over the whole vocabulary: greedy needs one allowed token there,
        top-k sampling k of them (every allowed token outside ranks below all of them). None:
        not enough allowed tokens, decide over the whole vocabulary."""
        short = self._short
        top = np.argpartition(logits, -len(short))[-len(short):]
        short["id"] = top
        short["logit"] = logits[top]
        short["p"] = 0.0
        arr = _token_array(short, len(short))
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        if int(np.isfinite(short["logit"]).sum()) < self._need:
            return None
        arr.selected = -1
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        if arr.selected < 0:
            return None
        return int(short["id"][arr.selected])

    def _grammar_allows(self, token: int, logit: float) -> bool:
        one = self._one
        one[0] = (token, logit, 0.0)
        arr = _token_array(one, 1)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return bool(np.isfinite(one["logit"][0]))

    def sample(self, ctx: llama_cpp.llama_context_p, row: int,
               kept: np.ndarray | None = None) -> int:
        """Pick the next token from a row of this step's logits, or from `kept` logits (a
        prompt's end, read by an earlier decode), and advance the sampler."""
        if self.matcher is not None:
            return self._sample_masked(ctx, row, kept)
        if kept is not None:
            logits = kept
        elif self.grammar is None:
            # All in C: build candidates, run the chain, accept the token.
            return int(native.sampler_sample(self.chain, ctx, row))
        else:
            logits = logits_row(ctx, row, self.n_vocab)
        token = self._pick(logits, with_grammar=False)
        if self.grammar is None:
            native.sampler_accept(self.chain, token)
            return token
        if not self._grammar_allows(token, float(logits[token])):
            picked = self._pick_shortlisted(logits) if self._need else None
            token = self._pick(logits, with_grammar=True) if picked is None else picked
        native.sampler_accept(self.grammar, token)
        native.sampler_accept(self.chain, token)
        return token

    def _sample_masked(self, ctx: llama_cpp.llama_context_p, row: int,
                       kept: np.ndarray | None) -> int:
        matcher = self.matcher
        assert matcher is not None
        logits = logits_row(ctx, row, self.n_vocab) if kept is None else kept
        if self._accept_is_free and kept is None:
            # The chain picks in C, as without a grammar (no candidate array built in numpy).
            # It also accepts its pick, which changes nothing in a chain without penalties, so
            # a pick the grammar refuses is drawn again below as on the numpy path.
            token = int(native.sampler_sample(self.chain, ctx, row))
        else:
            token = self._pick(logits, with_grammar=False)
        if not matcher.allows(token):
            masked = np.where(matcher.allowed(), logits, -np.inf).astype(np.float32)
            token = self._pick(masked, with_grammar=False)
            if not np.isfinite(masked[token]):
                raise InvalidRequest("no token is allowed here (grammar dead end)",
                                     code="grammar_dead_end")
        if not matcher.accept(token):
            raise InvalidRequest("the grammar refused the sampled token", code="grammar_dead_end")
        native.sampler_accept(self.chain, token)
        return token

    def force(self, token: int) -> bool:
        """Advance past a token chosen without sampling (fast-forward, steering). False, with
        nothing changed, when the grammar refuses it: accepting a refused token would break
        llama.cpp's grammar state."""
        if self.matcher is not None:
            if not self.matcher.allows(token) or not self.matcher.accept(token):
                return False
        elif self.grammar is not None:
            if not self._grammar_allows(token, 0.0):
                return False
            native.sampler_accept(self.grammar, token)
        native.sampler_accept(self.chain, token)
        return True

    def close(self) -> None:
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
        if self.grammar:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None


@functools.cache
def _token_ids(n_vocab: int) -> np.ndarray:
    """0..n_vocab-1, one read-only copy for every sampler of a vocabulary of that size."""
    ids = np.arange(n_vocab, dtype=np.int32)
    ids.flags.writeable = False
    return ids


def _shortlist_need(p: SamplingParams, n_vocab: int) -> int:
    """Allowed tokens the shortlist must hold for its pick to equal the full one (0: never
    use it). A bias can lift a token from outside the shortlist, a penalty sink one inside it
    below those outside."""
    if n_vocab <= SHORTLIST or p.logit_bias or p.frequency_penalty or p.presence_penalty or \
            p.repeat_penalty != 1.0:
        return 0
    if p.temperature <= 0:
        return 1
    return p.top_k if 0 < p.top_k <= SHORTLIST // 4 else 0


def logits_row(ctx: llama_cpp.llama_context_p, row: int, n_vocab: int) -> np.ndarray:
    """A view (no copy) of one row of the last decode's logits."""
    return np.ctypeslib.as_array(native.get_logits_ith(ctx, row), shape=(n_vocab,))


def logprob_of(
    logits: np.ndarray, token: int, n_top: int, piece: Callable[[int], str]
) -> TokenLogprob:
    """Log-softmax of the raw logits: the chosen token and the `n_top` most likely ones."""
    shifted = logits - logits.max()
    lse = float(np.log(np.exp(shifted, dtype=np.float64).sum()))
    top_ids = np.argpartition(-logits, n_top)[:n_top] if n_top < len(logits) else np.arange(
        len(logits))
    top_ids = top_ids[np.argsort(-logits[top_ids])]
    text = piece(token)
    return TokenLogprob(
        token=text,
        logprob=float(shifted[token]) - lse,
        bytes=list(text.encode("utf-8")),
        top=[(piece(int(t)), float(shifted[t]) - lse) for t in top_ids],
    )
