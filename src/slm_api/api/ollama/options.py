"""Ollama's `options` (the Modelfile parameters a request may set): each one maps onto this
server's llama.cpp samplers or load options, or asks for what the server does anyway, or is a
400 naming it. None is accepted and then ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_CTX,
    MAX_STOPS,
    LoadModelConfigs,
    Seed,
    StopText,
)
from slm_api.api.core.samplers import SamplerFields
from slm_api.engine import SamplingParams

# Options Ollama documents that have no knob here: the one value each may take (what this
# server does regardless), and why any other is refused.
FIXED: dict[str, tuple[Any, str]] = {
    "tfs_z": (1.0, "llama.cpp has no tail-free sampling (removed upstream); 1.0 is off"),
    "penalize_newline": (True, "llama.cpp penalizes a newline as any other token "
                         "(penalize_nl was removed upstream)"),
    "numa": (False, "NUMA placement is per process, not per request"),
    "main_gpu": (0, "the GPU is chosen when the server starts"),
    "low_vram": (False, "llama.cpp has no low-VRAM mode"),
    "f16_kv": (True, "the KV cache type is the server's KV_CACHE_TYPE setting, or a /load "
               "option for admins"),
    "logits_all": (False, "logits are kept for the sampled positions only (use logprobs)"),
    "vocab_only": (False, "a generating request needs the weights"),
    "use_mmap": (True, "models are always memory-mapped"),
    "use_mlock": (False, "models are never locked in RAM"),
    "embedding_only": (False, "chat models are loaded for generation"),
}


class Options(SamplerFields):
    """Ranges as the OpenAI routes' (the same sampler runs both); Ollama documents none, and
    its runner clamps or misbehaves outside them. num_keep is accepted with any value: this
    server never shifts the context (a prompt that does not fit is a 400), so there is
    nothing to keep."""

    num_ctx: int | None = Field(None, ge=16, le=MAX_CTX)
    num_batch: int | None = Field(None, ge=1, le=8192)
    num_gpu: int | None = Field(None, ge=-1, le=INT32_MAX)
    num_thread: int | None = Field(None, ge=1, le=256)
    num_keep: int | None = Field(None, ge=-1, le=INT32_MAX)
    seed: Seed | None = None
    num_predict: int | None = Field(None, ge=-2, le=INT32_MAX)
    top_k: int | None = Field(None, ge=0, le=INT32_MAX)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    # Each stop string is matched at every token: 60,000 of them made each token 4.5x slower.
    stop: list[StopText] | None = Field(None, max_length=MAX_STOPS)
    tfs_z: float | None = None
    penalize_newline: bool | None = None
    numa: bool | None = None
    main_gpu: int | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None

    @field_validator(*FIXED)
    @classmethod
    def _only_what_is_done(cls, v: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None
        allowed, why = FIXED[info.field_name]
        if v is not None and v != allowed:
            raise ValueError(f"not supported: {why}; only {str(allowed).lower()} is accepted")
        return v

    def sampling(self, n_probs: int = 0) -> SamplingParams:
        """The engine's sampling: what the client set, this server's defaults (the OpenAI
        routes' defaults, so both routes sample alike) for the rest; `n_probs` alternatives
        per token for logprobs."""
        given: dict[str, Any] = {
            "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
            "min_p": self.min_p, "repeat_penalty": self.repeat_penalty,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "seed": self.seed if self.seed is not None and self.seed >= 0 else None,
        }
        given = {k: v for k, v in given.items() if v is not None}
        return SamplingParams(**given, **self.sampler_values(), n_probs=n_probs)

    def max_tokens(self) -> int | None:
        """num_predict: -1 (Ollama's default) and -2 fill the context; else a token budget."""
        return self.num_predict if self.num_predict is not None and self.num_predict > 0 \
            else None

    def load_configs(self) -> LoadModelConfigs | None:
        """Load-time options, used when the request's model has to be loaded first."""
        given = {"n_ctx": self.num_ctx, "n_batch": self.num_batch, "n_gpu_layers": self.num_gpu,
                 "n_threads": self.num_thread}
        given = {k: v for k, v in given.items() if v is not None}
        return LoadModelConfigs(**given) if given else None
