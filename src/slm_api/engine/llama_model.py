"""One GGUF file in memory: the llama.cpp model, its generation context and scheduler, its
tokenizer, and a lazily created embedding context."""

from __future__ import annotations

import ctypes
import logging
import queue
from dataclasses import replace
from pathlib import Path
from typing import Any

import llama_cpp

from slm_api.config import Settings
from slm_api.engine import native
from slm_api.engine.constraint import GrammarBackend
from slm_api.engine.decoding import Decoding
from slm_api.engine.embedder import Embedder
from slm_api.engine.job import Choices, Job
from slm_api.engine.kv_cache import apply as apply_kv_cache
from slm_api.engine.kv_cache import kv_cache_for
from slm_api.engine.lookup import PromptLookup, Spelling
from slm_api.engine.native import gpu_offload_supported, init_backend, take_recent_errors
from slm_api.engine.projector import Projector, open_projector
from slm_api.engine.prompt_cache import DiskPromptCache
from slm_api.engine.sampling import Sampler
from slm_api.engine.scheduler import Scheduler
from slm_api.engine.slots import check_fits, without_media
from slm_api.engine.types import (
    FinishCause,
    Generation,
    GenerationRequest,
    LoadOptions,
    MediaSpan,
    ModelInfo,
)
from slm_api.engine.vocab import fim_tokens
from slm_api.errors import InvalidRequest, ModelLoadError
from slm_api.gguf_info import declares_pooling, model_kind, unreadable
from slm_api.grammar.budget import BudgetGuide
from slm_api.grammar.recognizer import GrammarSyntaxError, compiled
from slm_api.grammar.unique import spec_of as unique_spec_of
from slm_api.grammar.unique_close import completion
from slm_api.grammar.unique_track import UniqueTracker
from slm_api.prompting.chat_format import ChatFormatter, formatter_for

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "gpu_offload_supported"]

# A vocabulary with this special token is Llama 3's, whatever the metadata says of its tokenizer.
LLAMA3_HINTS = ("<|start_header_id|>",)


def _check_header(path: Path) -> None:
    # Read by our bounded parser before llama.cpp's: a corrupt header is a clear 400 here,
    # never undefined behaviour in C.
    reason = unreadable(path)
    if reason is not None:
        raise ModelLoadError(f"{path.name} is not a readable GGUF file: {reason}",
                             param="model_path")


class LoadedModel:
    def __init__(self, path: Path, settings: Settings, options: LoadOptions):
        init_backend()
        _check_header(path)
        self.embedder: Embedder | None = None
        self._ctx = None
        self._scheduler: Scheduler | None = None
        self.projector: Projector | None = None
        self._longest_piece: int | None = None  # bytes, measured on the first long prompt
        self._n_ctx = 0  # set once the context exists; 0: no prompt check while loading
        n_gpu_layers = settings.n_gpu_layers if options.n_gpu_layers is None else \
            options.n_gpu_layers
        if n_gpu_layers != 0 and not gpu_offload_supported():
            log.warning("N_GPU_LAYERS=%s but this llama-cpp-python build cannot offload to a "
                        "GPU: running on the CPU", n_gpu_layers)
            n_gpu_layers = 0
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 999 if n_gpu_layers < 0 else n_gpu_layers
        if native.amx_kernels_built():
            mparams.use_extra_bufts = False
        take_recent_errors()
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            reason = take_recent_errors() or "llama.cpp could not load it"
            raise ModelLoadError(f"cannot load {path.name}: {reason}", param="model_path")
        self._model = model
        try:
            self._setup(path, settings, options, n_gpu_layers)
        except BaseException:
            self.close()
            raise

    def _setup(self, path: Path, settings: Settings, options: LoadOptions, gpu: int) -> None:
        self.metadata = native.read_metadata(self._model)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.fim = fim_tokens(self._vocab)
        self._threads = options.n_threads or settings.threads
        self._n_batch = options.n_batch or settings.n_batch
        self._budget = settings.structured_budget
        self._fast_forward = settings.structured_fast_forward
        self._draft_max = settings.lookup_draft_max
        self._spelling = Spelling(self._piece, lambda text: self.tokenize(
            text, add_special=False, parse_special=False, param=None))
        self._grammars: GrammarBackend | None = None
        n_ctx = options.n_ctx or settings.n_ctx
        n_parallel = options.n_parallel or settings.n_parallel
        n_train = int(llama_cpp.llama_model_n_ctx_train(self._model))
        if options.n_ctx and n_train and n_ctx > n_train:
            # A client-chosen context beyond training only costs memory and gives garbage.
            raise ModelLoadError(f"n_ctx {n_ctx} is above this model's trained context of "
                                 f"{n_train}", param="n_ctx")
        arch = self.metadata.get("general.architecture", "unknown")
        model_id = path.stem
        pooling = self.metadata.get(f"{arch}.pooling_type")
        kind = model_kind(model_id, self.metadata, settings.embedding_models,
                          int(pooling) if pooling and pooling.isdigit() else None)
        try:
            # An embedding model has no template: any format will do, its requests for text
            # are refused by _generator() once rendered.
            self.chat: ChatFormatter = formatter_for(
                self.metadata, options.chat_format or settings.chat_format or
                (None if kind == "chat" else "chatml"),
                bos=self._special_text(llama_cpp.llama_vocab_bos(self._vocab)),
                eos=self._special_text(llama_cpp.llama_vocab_eos(self._vocab)),
                add_bos=bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)),
                special_tokens=self._special_tokens(LLAMA3_HINTS),
                reasoning_format=settings.reasoning_format,
            )
        except ValueError as exc:
            raise ModelLoadError(f"{path.name}: {exc}", param="chat_format") from exc

        cache = None  # an embedding model's context keeps llama.cpp's defaults
        if kind == "chat":
            self._grammars = GrammarBackend(self._vocab, self.n_vocab, self._piece)
            cparams = llama_cpp.llama_context_default_params()
            # Each sequence its own KV stream of n_ctx cells, as llama-server's slots: attention
            # spans only the sequence's own cells (one pool shared by all eight decoded 6% fewer
            # tokens/s at 8 streams), and a prefix moves between sequences as a stream copy.
            cparams.n_ctx = n_ctx * n_parallel
            cparams.n_batch = max(self._n_batch, n_parallel)
            cparams.n_ubatch = cparams.n_batch
            cparams.n_seq_max = n_parallel
            cparams.n_threads = self._threads
            cparams.n_threads_batch = self._threads
            # One logits row per sequence per step, and a few shared by prompt-lookup drafts:
            # llama.cpp would otherwise reserve a vocabulary-sized row (1 MiB for Gemma) for every
            # token of a batch.
            cparams.n_outputs_max = n_parallel + self._draft_max * min(n_parallel, 4)
            cparams.kv_unified = False
            # Sliding-window layers keep only their window (Gemma 3: 4,608 cells instead of 32,768,
            # 360 MiB less), as in llama-server; the scheduler re-reads a prompt whose kept prefix
            # has lost its window.
            cparams.swa_full = False
            cparams.no_perf = True
            cache = kv_cache_for(settings.kv_cache, options)
            apply_kv_cache(cache, cparams)
            log.info("%s: KV cache K %s, V %s, flash attention %s", model_id, cache.type_k,
                     cache.type_v, cache.flash_attention)
            self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
            if not self._ctx:
                reason = take_recent_errors() or "out of memory?"
                raise ModelLoadError(f"cannot create a context for {path.name}: {reason}")
            self.projector = open_projector(path, settings, options, self._model,
                                            use_gpu=gpu != 0, n_threads=self._threads)
            self._scheduler = Scheduler(
                self._ctx, n_parallel=n_parallel, n_ctx=n_ctx, n_batch=self._n_batch,
                max_queue=settings.max_queue, n_vocab=self.n_vocab, piece=self._piece,
                is_eog=lambda t: bool(native.vocab_is_eog(self._vocab, t)),
                reuse_prefix=settings.prompt_cache != "off",
                disk=DiskPromptCache(settings.cache_dir / f"{model_id}-{path.stat().st_size}",
                                     settings.cache_size_bytes)
                if settings.prompt_cache == "disk" else None,
                draft_max=self._draft_max, n_outputs=cparams.n_outputs_max,
                n_swa=int(llama_cpp.llama_model_n_swa(self._model)),
                projector=self.projector,
            )
        elif n_train:
            # An embedding model gets no generation context or decode loop (nothing to sample)
            # and its context stops where its position table does (512 for BERT).
            n_ctx = min(n_ctx, n_train)
        self.embedder = Embedder(self._model, n_ctx, self._threads,
                                 declares_pooling(self.metadata),
                                 settings.embedding_decodes_per_turn)
        self._n_ctx = n_ctx
        self.info = ModelInfo(
            id=model_id, path=path, n_ctx=n_ctx, architecture=arch,
            chat_format=self.chat.name if kind == "chat" else "none", kind=kind,
            size_bytes=path.stat().st_size,
            n_params=int(llama_cpp.llama_model_n_params(self._model)), n_vocab=self.n_vocab,
            gpu_layers=gpu, n_batch=self._n_batch,
            mmproj=self.projector.path if self.projector else None,
            media_kinds=self.media_kinds,
            **({} if cache is None else {
                "kv_cache_type_k": cache.type_k, "kv_cache_type_v": cache.type_v,
                "flash_attention": cache.effective_flash_attention}),
        )

    @classmethod
    def load(cls, path: Path, settings: Settings, options: LoadOptions) -> LoadedModel:
        """Load the file; raise ModelLoadError with llama.cpp's reason if it cannot be loaded."""
        return cls(path, settings, options)

    # -- tokens ------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True,
                 param: str | None = "messages") -> list[int]:
        """Token ids of `text`. With `param` set (a prompt), text that cannot fit the context
        whatever its tokens are is refused before tokenizing (about 1 s per MB on 2 cores)."""
        if param is not None and self._n_ctx and len(text) > self._n_ctx * 4:
            self._check_prompt_chars(len(text), param)
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            buf = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, add_special,
                                         parse_special)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def _check_prompt_chars(self, n_chars: int, param: str) -> None:
        # No token is longer than the vocabulary's longest piece, so a text with more characters
        # than n_ctx times that length needs more tokens than the context holds.
        if self._longest_piece is None:
            self._longest_piece = max(1, max(len(self._piece(t)) for t in range(self.n_vocab)))
        limit = self._n_ctx * self._longest_piece
        if n_chars > limit:
            raise InvalidRequest(
                f"the prompt has {n_chars} characters; this model's context of {self._n_ctx} "
                f"tokens holds at most {limit} ({self._longest_piece} per token at most)",
                param=param, code="context_length_exceeded")

    def _piece(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = native.token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = native.token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def _special_tokens(self, texts: tuple[str, ...]) -> set[str]:
        """Those of `texts` that are one token of this vocabulary (its special tokens)."""
        return {t for t in texts if len(self.tokenize(t, add_special=False)) == 1}

    def _special_text(self, token: int) -> str:
        return self._piece(token, special=True).decode("utf-8", errors="replace") if token >= 0 \
            else ""

    def check_tokens(self, tokens: list[int], param: str = "prompt") -> None:
        bad = next((t for t in tokens if not 0 <= t < self.n_vocab), None)
        if bad is not None:
            raise InvalidRequest(
                f"token id {bad} is outside the vocabulary (0..{self.n_vocab - 1})", param=param)

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        """The text of `tokens`; `special`: control tokens (FIM, BOS) spelled out too."""
        self.check_tokens(tokens, "tokens")
        return b"".join(self._piece(t, special) for t in tokens).decode("utf-8",
                                                                         errors="replace")

    @property
    def media_kinds(self) -> frozenset[str]:
        """What besides text this model reads: {"image"}, {"image", "audio"}, or nothing."""
        return self.projector.kinds if self.projector is not None else frozenset()

    def tokenize_media(self, parts: list, *, param: str = "messages"
                       ) -> tuple[list[int], tuple[MediaSpan, ...]]:
        """A prompt given as text pieces and decoded media (slm_api.media.decode), in order:
        its token ids (each medium's places hold a placeholder id) and where its media sit."""
        if self.projector is None:
            raise InvalidRequest(f"{self.info.id} does not take images", param=param)
        return self.projector.tokenize(parts, param=param)

    # -- generation --------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> Generation:
        """Queue a generation. Raises InvalidRequest (prompt too long for n_ctx, grammar that
        llama.cpp cannot parse) or QueueFull, before any token is sampled."""
        scheduler = self._generator()
        self.check_tokens(without_media(request.prompt, request.media))
        check_fits(request, self._n_ctx)
        self._encode_media(scheduler, request, 1)
        job = self._job(request)
        scheduler.submit(job)
        return job

    def submit_choices(self, request: GenerationRequest, n: int) -> Choices:
        """Queue `n` generations of one prompt (a request's choices): the prompt is evaluated
        once and shared. With a seed, choice i samples with seed + i, so choices differ."""
        scheduler = self._generator()
        self.check_tokens(without_media(request.prompt, request.media))
        check_fits(request, self._n_ctx)
        self._encode_media(scheduler, request, n)
        out: queue.SimpleQueue = queue.SimpleQueue()
        jobs: list[Job] = []
        try:
            for i in range(n):
                sampling = request.sampling
                if i and sampling.seed is not None:
                    sampling = replace(sampling, seed=sampling.seed + i)
                jobs.append(self._job(replace(request, sampling=sampling), index=i, out=out,
                                      fork_of=jobs[0] if jobs else None))
        except BaseException:
            for job in jobs:
                job.finish(FinishCause.ABORT)
            raise
        scheduler.submit_all(jobs)
        return Choices(jobs, out)

    def _encode_media(self, scheduler: Scheduler, request: GenerationRequest, n: int) -> None:
        # Here, on the request's thread, not on the decode loop (engine/projector.py); and
        # only once the queue would take the request, so a refused one costs no encoder run.
        if request.media and self.projector is not None:
            scheduler.check_room(n)
            self.projector.encode(request.media)

    def _job(self, request: GenerationRequest, **placement: Any) -> Job:
        """One generation's job: its sampler (with the grammar's constraint), its budget guide
        and fast-forward, the same for a single request and for each of a request's choices."""
        grammar = request.sampling.grammar
        guide = self._guide(grammar, request.max_tokens) if grammar and self._budget else None
        constraint = (self._grammars.constraint(grammar)
                      if grammar is not None and self._grammars else None)
        sampler = Sampler(self.n_vocab, request.sampling, constraint, vocab=self._vocab,
                          n_ctx=self._n_ctx)
        lookup = PromptLookup(without_media(request.prompt, request.media), self._spelling) \
            if self._draft_max else None
        return Job(request, Decoding(sampler, request.stop, guide=guide,
                                     fast_forward=self._fast_forward, lookup=lookup),
                   **placement)

    def spell(self, text: str) -> list[int]:
        """Tokens whose pieces are exactly `text` (a tokenizer that adds a space prefix would
        change the text: then one token per character)."""
        ids = self.tokenize(text, add_special=False, parse_special=False)
        if b"".join(map(self._piece, ids)) == text.encode("utf-8"):
            return ids
        return [t for ch in text for t in self.tokenize(ch, add_special=False,
                                                         parse_special=False)]

    def _guide(self, grammar: str, max_tokens: int) -> BudgetGuide | None:
        try:
            return BudgetGuide(compiled(grammar), max_tokens, self.spell, self._piece,
                               unique=unique_spec_of(grammar))
        except GrammarSyntaxError as exc:  # llama.cpp has the last word on the grammar
            log.warning("budget guide off for a grammar it cannot read: %s", exc)
            return None

    def min_output_tokens(self, grammar: str) -> int:
        """Tokens of the shortest output `grammar` allows (0 when it cannot be told)."""
        try:
            g = compiled(grammar)
        except GrammarSyntaxError:
            return 0
        spec = unique_spec_of(grammar)
        text = completion(g, g.start(), UniqueTracker(spec) if spec else None)
        return len(self.spell(text or ""))

    def warm(self, prompt: list[int], media: tuple[MediaSpan, ...] = ()) -> int:
        """Evaluate `prompt` (its media included) into the prompt cache without generating;
        returns how many of its tokens the cache already held (as `cached_tokens` counts)."""
        scheduler = self._generator()
        request = GenerationRequest(prompt=prompt, max_tokens=1, media=media)
        self.check_tokens(without_media(prompt, media))
        check_fits(request, self._n_ctx)
        self._encode_media(scheduler, request, 1)
        return scheduler.warm(request)

    def _generator(self) -> Scheduler:
        if self._scheduler is None:
            raise InvalidRequest(f"{self.info.id} is an {self.info.kind} model: it does not "
                                 "generate text", param="model")
        return self._scheduler

    def stats(self) -> dict[str, int]:
        return self._scheduler.stats() if self._scheduler else {
            "active": 0, "queued": 0, "n_parallel": 0, "max_queue": 0,
            "tokens_sampled": 0, "draft_tokens": 0, "draft_tokens_accepted": 0}

    @property
    def loop_alive(self) -> bool:
        """False once the decode loop thread has died (an embedding model has none)."""
        return self._scheduler is None or self._scheduler.alive

    def drain(self, deadline: float) -> None:
        if self._scheduler is not None:
            self._scheduler.drain(deadline)

    # -- embeddings ------------------------------------------------------------------------

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """One L2-normalised pooled vector per token list, several inputs to a decode."""
        for tokens in inputs:
            self.check_tokens(tokens, "input")
        return self.embedder.embed(inputs)

    def rank(self, query: str, documents: list[str]) -> tuple[list[float], int]:
        """A cross-encoder's score for each document against `query`, and the tokens read.
        Each pair is `[CLS] query [SEP] document [SEP]` (BERT; `<s> q </s> d </s>` for XLM-R)."""
        q = self.tokenize(query, param="query")
        bos = llama_cpp.llama_vocab_bos(self._vocab)
        pairs = []
        for i, doc in enumerate(documents):
            d = self.tokenize(doc, param="documents")
            pair = q + (d[1:] if d and d[0] == bos else d)
            if len(pair) > self._n_ctx:
                raise InvalidRequest(f"query and document {i} have {len(pair)} tokens, more "
                                     f"than the model's context of {self._n_ctx}",
                                     param="documents", code="context_length_exceeded")
            pairs.append(pair)
        return self.embedder.rank(pairs), sum(len(p) for p in pairs)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = None
        if getattr(self, "projector", None) is not None:
            self.projector.close()
            self.projector = None
        if getattr(self, "_grammars", None) is not None:
            self._grammars.close()
        if getattr(self, "embedder", None) is not None:
            self.embedder.close()
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            llama_cpp.llama_model_free(self._model)
            self._model = None
