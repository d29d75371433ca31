"""The engine's narrow interface: what a blueprint hands in and what it gets back.

Nothing here imports llama_cpp, so the HTTP layer can import these types freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    # GBNF text with a `root` rule; None means unconstrained.
    grammar: str | None = None
    # Token id -> bias added to its logit.
    logit_bias: dict[int, float] | None = None
    # Report this many top alternatives per sampled token (0: no logprobs at all).
    n_probs: int = 0
    # llama.cpp's other samplers, with llama-server's defaults (each off unless set);
    # api/core/samplers.py bounds them. -1 for a window means the whole context.
    repeat_last_n: int = 64
    typical_p: float = 1.0
    top_n_sigma: float = -1.0
    mirostat: int = 0  # 1: Mirostat, 2: Mirostat 2.0 (they replace top-k/top-p/min-p)
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1


@dataclass(frozen=True, eq=False)
class MediaSpan:
    """An image's (or a sound's) place in a prompt: `n_tokens` placeholder ids from `start`
    (engine/projector.py), evaluated by the projector when the scheduler reaches them."""

    start: int
    n_tokens: int
    digest: str
    chunk: Any  # libmtmd's chunk, freed once no request holds it
    # Positions it takes in the sequence: n_tokens, except with M-RoPE (Qwen2-VL family), where
    # an image's tokens share 2-D positions and take only max(rows, cols) of them.
    n_pos: int = -1

    def __post_init__(self) -> None:
        if self.n_pos < 0:
            object.__setattr__(self, "n_pos", self.n_tokens)


@dataclass
class GenerationRequest:
    prompt: list[int]
    max_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    # time.monotonic() after which generation ends (FinishCause.DEADLINE).
    deadline: float | None = None
    # The prompt's images and sounds, in order (empty for a text prompt).
    media: tuple[MediaSpan, ...] = ()


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float]]  # (token text, logprob), best first


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text. Text is held back while it could still become a stop string,
    and while it ends inside a multi-byte UTF-8 character."""

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


class FinishCause(StrEnum):
    """Why a generation ended, as the engine decided it (api/core/reply.py maps it onto each
    API family's own name)."""

    STOP = "stop"  # the model ended its turn (end-of-generation token, or its grammar is done)
    STOP_SEQUENCE = "stop_sequence"  # a stop string (`Finished.stop_sequence` says which)
    MAX_TOKENS = "max_tokens"  # the request's max_tokens
    CONTEXT_FULL = "context_full"  # no room left in the context
    DEADLINE = "deadline"  # the request's deadline (REQUEST_TIMEOUT_S)
    DRAIN = "drain"  # the server's shutdown drain deadline
    ABORT = "abort"  # the client went away (or the job was aborted)

    @property
    def cut(self) -> bool:
        """The reply was cut short by a limit, not ended by the model or a stop string."""
        return self in _CUT

    @property
    def coarse(self) -> str:
        """"stop" | "length" | "abort": the metrics label and OpenAI's two reasons."""
        return "length" if self.cut else "abort" if self is FinishCause.ABORT else "stop"


_CUT = frozenset({FinishCause.MAX_TOKENS, FinishCause.CONTEXT_FULL, FinishCause.DEADLINE,
                  FinishCause.DRAIN})


@dataclass(frozen=True)
class Finished:
    cause: FinishCause
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens reused from the cache
    time_to_first_token_s: float | None = None
    stop_sequence: str | None = None  # the stop string that ended it, if one did

    @property
    def finish_reason(self) -> str:
        """"stop" | "length" | "abort" (see FinishCause.coarse)."""
        return self.cause.coarse


class Generation(Protocol):
    """One submitted request. Iterate it for chunks; `result` is set once iteration ends."""

    result: Finished | None

    def __iter__(self) -> Iterator[Chunk]: ...

    def abort(self) -> None:
        """Stop generating soon (within a few tokens) and free the sequence."""


@dataclass(frozen=True)
class ModelInfo:
    id: str  # file stem
    path: Path
    n_ctx: int  # tokens one request may use (prompt + completion)
    architecture: str
    chat_format: str  # "jinja" (template from metadata) or a named fallback such as "gemma"
    kind: str = "chat"  # "chat" | "embedding" | "rerank"
    size_bytes: int = 0
    n_params: int = 0
    n_vocab: int = 0
    gpu_layers: int = 0
    n_batch: int = 512  # tokens one decode takes (llama.cpp's FIM prompt fits its gap in one)
    mmproj: Path | None = None  # the projector file, when the model takes media
    media_kinds: frozenset[str] = frozenset()  # {"image"}, {"image", "audio"}, or none
    # The KV cache's element types and flash attention ("on" where llama.cpp turns "auto" on).
    kv_cache_type_k: str = "f16"
    kv_cache_type_v: str = "f16"
    flash_attention: str = "auto"


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int | None = None
    n_threads: int | None = None
    n_batch: int | None = None
    n_gpu_layers: int | None = None
    n_parallel: int | None = None
    chat_format: str | None = None
    mmproj: Path | None = None  # the projector; None: settings' MMPROJ or found by name
    kv_cache_type: str | None = None  # K and V, unless _k / _v name one
    kv_cache_type_k: str | None = None
    kv_cache_type_v: str | None = None
    flash_attention: str | None = None
