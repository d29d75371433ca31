"""Pooled outputs of one model: sentence embeddings (mean / CLS / last pooling) and reranking
scores (llama.cpp's rank pooling: a cross-encoder's classification head on [CLS]).

Inputs are packed several sequences to a decode, as many as the context holds, rather than one
decode per string: 1,000 short sentences take ~30 decodes on a 512-token encoder instead of 1,000.
"""

from __future__ import annotations

import math
import threading

import llama_cpp

from slm_api.errors import InvalidRequest

# Sequences per decode: llama.cpp keeps per-sequence bookkeeping, and past ~64 short inputs a
# decode is no cheaper per token.
MAX_SEQS = 64


def pack(lengths: list[int], n_ctx: int, max_seqs: int = MAX_SEQS) -> list[list[int]]:
    """Indices of inputs grouped so each group's tokens fit one `n_ctx` decode (in order)."""
    groups: list[list[int]] = []
    used = 0
    for i, n in enumerate(lengths):
        if not groups or used + n > n_ctx or len(groups[-1]) >= max_seqs:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += n
    return groups


class Embedder:
    """Owns a model's embedding context (created on first use, freed by close())."""

    def __init__(self, model: llama_cpp.llama_model_p, n_ctx: int, threads: int,
                 declared_pooling: bool):
        self._model = model
        self._n_ctx = n_ctx
        self._threads = threads
        self._declared = declared_pooling
        self._ctx: llama_cpp.llama_context_p | None = None
        self._lock = threading.Lock()
        self.decodes = 0  # decodes run so far (tests check batching with it)

    @property
    def pooling(self) -> int:
        """The pooling type the file declares (llama.cpp's enum); mean when it declares none."""
        with self._lock:
            return llama_cpp.llama_pooling_type(self._context())

    @property
    def can_rank(self) -> bool:
        return self.pooling == llama_cpp.LLAMA_POOLING_TYPE_RANK

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """One L2-normalised pooled vector per token list."""
        if self.can_rank:
            raise InvalidRequest("this model is a reranker (rank pooling): POST /v1/rerank",
                                 param="model")
        n_embd = llama_cpp.llama_model_n_embd(self._model)
        return [_normalise(v) for v in self._pooled(inputs, n_embd)]

    def rank(self, inputs: list[list[int]]) -> list[float]:
        """The classification head's score for each (query, document) token list."""
        n_out = max(1, llama_cpp.llama_model_n_cls_out(self._model))
        return [v[0] for v in self._pooled(inputs, n_out)]

    def _pooled(self, inputs: list[list[int]], width: int) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in inputs]
        with self._lock:
            ctx = self._context()
            mem = llama_cpp.llama_get_memory(ctx)
            batch = llama_cpp.llama_batch_init(self._n_ctx, 0, 1)  # one sequence id per token
            try:
                for group in pack([len(t) for t in inputs], self._n_ctx):
                    if mem:
                        llama_cpp.llama_memory_clear(mem, True)
                    n = 0
                    for seq, index in enumerate(group):
                        for pos, tok in enumerate(inputs[index]):
                            batch.token[n], batch.pos[n] = tok, pos
                            batch.n_seq_id[n], batch.seq_id[n][0], batch.logits[n] = 1, seq, 1
                            n += 1
                    batch.n_tokens = n
                    if llama_cpp.llama_decode(ctx, batch) != 0:
                        raise InvalidRequest("llama.cpp could not embed this input",
                                             param="input")
                    self.decodes += 1
                    for seq, index in enumerate(group):
                        vec = llama_cpp.llama_get_embeddings_seq(ctx, seq)
                        out[index] = [float(vec[i]) for i in range(width)]
            finally:
                llama_cpp.llama_batch_free(batch)
        return out

    def _context(self) -> llama_cpp.llama_context_p:
        # Called with self._lock held.
        if self._ctx is None:
            cparams = llama_cpp.llama_context_default_params()
            cparams.n_ctx = self._n_ctx
            cparams.n_batch = cparams.n_ubatch = self._n_ctx  # one decode is one ubatch
            cparams.n_seq_max = MAX_SEQS
            # One pool of n_ctx cells for all sequences of a decode (a causal model's KV):
            # per-sequence streams would cap each input at n_ctx / MAX_SEQS tokens.
            cparams.kv_unified = True
            cparams.n_threads = cparams.n_threads_batch = self._threads
            cparams.embeddings = True
            if not self._declared:
                cparams.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
            cparams.no_perf = True
            ctx = llama_cpp.llama_init_from_model(self._model, cparams)
            if not ctx:
                raise InvalidRequest("could not create an embedding context for this model")
            self._ctx = ctx
        return self._ctx

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                llama_cpp.llama_free(self._ctx)
                self._ctx = None


def _normalise(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
