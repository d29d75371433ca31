"""One request's sampler: llama.cpp's sampler chain, plus an optional grammar constraint.

The constraint is asked only about the token the chain picked, and masks the whole vocabulary
only when that token is refused (the same trick as llama.cpp's common sampler): most steps of a
constrained reply cost what unconstrained ones do.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable

import llama_cpp
import numpy as np

from slm_api.engine import native
from slm_api.engine.constraint import TOKEN_DATA, Constraint, token_array, token_ids
from slm_api.engine.types import SamplingParams, TokenLogprob
from slm_api.errors import InvalidRequest


def _penalized(p: SamplingParams) -> bool:
    return p.repeat_penalty != 1.0 or bool(p.frequency_penalty or p.presence_penalty)


class Sampler:
    def __init__(self, n_vocab: int, params: SamplingParams,
                 constraint: Constraint | None = None, *,
                 vocab: llama_cpp.llama_vocab_p | None = None, n_ctx: int = 4096):
        self.n_vocab = n_vocab
        self.vocab = vocab  # DRY tokenizes its sequence breakers with it
        self.n_ctx = n_ctx  # what a window of -1 covers
        self.params = params
        self.constraint = constraint
        self.chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        try:
            self._build_chain(params)
        except BaseException:
            self.close()
            raise
        # The vocabulary-sized candidate array (3 MiB for Gemma) is made on the first pick in
        # Python: a request without a grammar samples in C and never needs it.
        self._cur: np.ndarray | None = None
        # Whether accepting a token leaves the chain as it was (penalties and DRY keep a
        # history, Mirostat its running surprise).
        self._accept_is_free = not (_penalized(params) or params.dry_multiplier > 0.0
                                    or params.mirostat)

    def _add(self, sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def _build_chain(self, p: SamplingParams) -> None:
        # llama-server's order: penalties, DRY, then the filters, temperature, the draw.
        if p.logit_bias:
            valid = {t: b for t, b in p.logit_bias.items() if 0 <= t < self.n_vocab}
            if len(valid) != len(p.logit_bias):
                raise InvalidRequest("logit_bias names a token id outside the vocabulary",
                                     param="logit_bias")
            biases = (llama_cpp.llama_logit_bias * len(valid))(
                *(llama_cpp.llama_logit_bias(token=t, bias=b) for t, b in valid.items())
            )
            self._add(llama_cpp.llama_sampler_init_logit_bias(self.n_vocab, len(valid), biases))
        if _penalized(p):
            self._add(llama_cpp.llama_sampler_init_penalties(
                self.n_vocab, self._window(p.repeat_last_n), p.repeat_penalty,
                p.frequency_penalty, p.presence_penalty,
            ))
        if p.dry_multiplier > 0.0:
            self._add_dry(p)
        if p.temperature <= 0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        seed = (p.seed if p.seed is not None else random.getrandbits(32)) & 0xFFFFFFFF
        if p.mirostat:
            # Mirostat steers the draw to a target surprise by itself: llama.cpp runs it after
            # the temperature alone, without the top-k/top-p/min-p filters.
            self._add(llama_cpp.llama_sampler_init_temp(p.temperature))
            self._add(llama_cpp.llama_sampler_init_mirostat(
                self.n_vocab, seed, p.mirostat_tau, p.mirostat_eta, 100) if p.mirostat == 1
                else llama_cpp.llama_sampler_init_mirostat_v2(seed, p.mirostat_tau,
                                                              p.mirostat_eta))
            return
        if p.top_n_sigma > 0.0:
            self._add(llama_cpp.llama_sampler_init_top_n_sigma(p.top_n_sigma))
        if p.top_k > 0:
            self._add(llama_cpp.llama_sampler_init_top_k(p.top_k))
        if p.typical_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_typical(p.typical_p, 1))
        if p.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
        if p.min_p > 0.0:
            self._add(llama_cpp.llama_sampler_init_min_p(p.min_p, 1))
        if p.xtc_probability > 0.0:
            self._add(llama_cpp.llama_sampler_init_xtc(p.xtc_probability, p.xtc_threshold, 1,
                                                       seed))
        self._add(llama_cpp.llama_sampler_init_temp(p.temperature))
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _window(self, last_n: int) -> int:
        """A penalty window in tokens: -1 is the whole context (llama.cpp reads it as 0, off)."""
        return self.n_ctx if last_n < 0 else last_n

    def _add_dry(self, p: SamplingParams) -> None:
        if self.vocab is None:
            raise InvalidRequest("DRY needs the model's vocabulary", param="dry_multiplier")
        breakers = [b.encode("utf-8") for b in p.dry_sequence_breakers]
        # llama.cpp copies the strings before returning: the array only has to outlive the call.
        array = (ctypes.c_char_p * max(len(breakers), 1))(*breakers)
        self._add(llama_cpp.llama_sampler_init_dry(
            self.vocab, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
            self._window(p.dry_penalty_last_n), array, len(breakers)))

    def _pick(self, logits: np.ndarray) -> int:
        if self._cur is None:
            self._cur = np.zeros(self.n_vocab, dtype=TOKEN_DATA)
        cur = self._cur
        cur["id"] = token_ids(self.n_vocab)
        cur["logit"] = logits
        cur["p"] = 0.0
        arr = token_array(cur, self.n_vocab)
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        if arr.selected < 0:
            raise InvalidRequest("no token is allowed here (grammar dead end)",
                                 code="grammar_dead_end")
        return int(cur["id"][arr.selected])

    def sample(self, ctx: llama_cpp.llama_context_p, row: int,
               kept: np.ndarray | None = None) -> int:
        """Pick the next token from a row of this step's logits, or from `kept` logits (a
        prompt's end, read by an earlier decode), and advance the sampler."""
        if self.constraint is not None:
            return self._sample_constrained(self.constraint, ctx, row, kept)
        if kept is None:
            # All in C: build candidates, run the chain, accept the token.
            return int(native.sampler_sample(self.chain, ctx, row))
        token = self._pick(kept)
        native.sampler_accept(self.chain, token)
        return token

    def _sample_constrained(self, constraint: Constraint, ctx: llama_cpp.llama_context_p,
                            row: int, kept: np.ndarray | None) -> int:
        logits = logits_row(ctx, row, self.n_vocab) if kept is None else kept
        if self._accept_is_free and kept is None:
            # The chain picks in C, as without a grammar (no candidate array built in numpy).
            # It also accepts its pick, which changes nothing in a chain without penalties, so
            # a pick the grammar refuses is drawn again below as on the numpy path.
            token = int(native.sampler_sample(self.chain, ctx, row))
        else:
            token = self._pick(logits)
        if not constraint.allows(token):
            masked = np.where(constraint.allowed(), logits, -np.inf).astype(np.float32)
            token = self._pick(masked)
            if not np.isfinite(masked[token]):
                raise InvalidRequest("no token is allowed here (grammar dead end)",
                                     code="grammar_dead_end")
        if not constraint.accept(token):
            raise InvalidRequest("the grammar refused the sampled token", code="grammar_dead_end")
        native.sampler_accept(self.chain, token)
        return token

    def force(self, token: int) -> bool:
        """Advance past a token chosen without sampling (fast-forward, steering). False, with
        nothing changed, when the grammar refuses it."""
        constraint = self.constraint
        if constraint is not None and not (constraint.allows(token) and constraint.accept(token)):
            return False
        native.sampler_accept(self.chain, token)
        return True

    def close(self) -> None:
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
        if self.constraint is not None:
            self.constraint.close()
            self.constraint = None


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
