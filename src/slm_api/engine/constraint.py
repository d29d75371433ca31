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

import ctypes
import functools
from typing import Protocol

import llama_cpp
import numpy as np

from slm_api.engine import native
from slm_api.engine.masks import MaskTokenizer
from slm_api.errors import InvalidRequest

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

    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int) -> None:
        self._vocab = vocab
        self.n_vocab = n_vocab
        self.masks = MaskTokenizer(vocab, n_vocab)

    def constraint(self, gbnf: str) -> Constraint:
        """`gbnf` (a grammar with a `root` rule) as a generation's constraint; a grammar neither
        engine parses is the client's 400."""
        return self.masks.matcher(gbnf) or LlamaGrammar(self._vocab, self.n_vocab, gbnf)

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
