"""Pooled outputs of one model: sentence embeddings (mean / CLS / last pooling) and reranking
scores (llama.cpp's rank pooling: a cross-encoder's classification head on [CLS]).

Inputs are packed several sequences to a decode, as many as the context holds, rather than one
decode per string: 1,000 short sentences take ~30 decodes on a 512-token encoder instead of 1,000.

Requests take turns at the one context, round-robin, a few decodes a turn (Turns): a one-input
request that arrives beside a 2,000-input one waits for the decode under way, not the whole batch.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

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


class Turns:
    """Round-robin turns at one resource among the requests that want it, in arrival order.

    A request joins the line, waits to be first, does one turn's work, and goes to the back if
    it has more. A plain Lock would not do: CPython's locks are not fair (one thread may take
    it again and again), and one held for a whole request makes every other wait for all of
    it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: deque[object] = deque()

    @contextmanager
    def joined(self) -> Iterator[Callable[[], AbstractContextManager[None]]]:
        """A place in line, for as long as the block runs; it yields `turn`, whose block runs
        once this request is first and sends it to the back when done."""
        place = object()
        with self._cond:
            self._line.append(place)

        @contextmanager
        def turn() -> Iterator[None]:
            with self._cond:
                self._cond.wait_for(lambda: self._line[0] is place)
            try:
                yield
            finally:
                with self._cond:
                    self._line.remove(place)
                    self._line.append(place)
                    self._cond.notify_all()

        try:
            yield turn
        finally:
            with self._cond:
                self._line.remove(place)
                self._cond.notify_all()


class Embedder:
    """Owns a model's embedding context (created on first use, freed by close()).

    `decodes_per_turn` packed decodes run in a request's turn before the next waiting request's
    (EMBEDDING_DECODES_PER_TURN); 0: a whole request in one turn."""

    def __init__(self, model: llama_cpp.llama_model_p, n_ctx: int, threads: int,
                 declared_pooling: bool, decodes_per_turn: int = 1):
        self._model = model
        self._n_ctx = n_ctx
        self._threads = threads
        self._declared = declared_pooling
        self._per_turn = decodes_per_turn
        self._ctx: llama_cpp.llama_context_p | None = None
        self._batch: llama_cpp.llama_batch | None = None  # made with the context
        self._lock = threading.Lock()
        self._turns = Turns()
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
        groups = pack([len(t) for t in inputs], self._n_ctx)
        per_turn = self._per_turn or len(groups)
        with self._turns.joined() as turn:
            for first in range(0, len(groups), per_turn):
                with turn(), self._lock:
                    for group in groups[first:first + per_turn]:
                        vectors = self._decode([inputs[i] for i in group], width)
                        for index, vector in zip(group, vectors, strict=True):
                            out[index] = vector
        return out

    def _decode(self, seqs: list[list[int]], width: int) -> list[list[float]]:
        # Called with self._lock held: one packed decode, one sequence id per input.
        ctx = self._context()
        mem = llama_cpp.llama_get_memory(ctx)
        if mem:
            llama_cpp.llama_memory_clear(mem, True)
        batch = self._batch
        n = 0
        for seq, tokens in enumerate(seqs):
            for pos, tok in enumerate(tokens):
                batch.token[n], batch.pos[n] = tok, pos
                batch.n_seq_id[n], batch.seq_id[n][0], batch.logits[n] = 1, seq, 1
                n += 1
        batch.n_tokens = n
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise InvalidRequest("llama.cpp could not embed this input", param="input")
        self.decodes += 1
        vectors = []
        for seq in range(len(seqs)):
            vec = llama_cpp.llama_get_embeddings_seq(ctx, seq)
            vectors.append([float(vec[i]) for i in range(width)])
        return vectors

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
            self._batch = llama_cpp.llama_batch_init(self._n_ctx, 0, 1)  # one seq id per token
        return self._ctx

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                llama_cpp.llama_batch_free(self._batch)
                llama_cpp.llama_free(self._ctx)
                self._ctx = self._batch = None


def _normalise(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
