"""One GGUF file in memory: llama.cpp model + context(s), tokenizer, scheduler. (STUB: to be built)"""

from __future__ import annotations

from pathlib import Path

from slm_api.config import Settings
from slm_api.engine.chat_format import ChatFormatter
from slm_api.engine.types import Generation, GenerationRequest, LoadOptions, ModelInfo


class LoadedModel:
    info: ModelInfo
    chat: ChatFormatter  # renders messages (+ tools) into this model's prompt format
    metadata: dict[str, str]  # GGUF metadata, key -> value as text

    @classmethod
    def load(cls, path: Path, settings: Settings, options: LoadOptions) -> LoadedModel:
        """Load the file; raise ModelLoadError with llama.cpp's reason if it cannot be loaded."""
        raise NotImplementedError

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        raise NotImplementedError

    def detokenize(self, tokens: list[int]) -> str:
        raise NotImplementedError

    def submit(self, request: GenerationRequest) -> Generation:
        """Queue a generation. Raises InvalidRequest (prompt too long for n_ctx, grammar that
        llama.cpp cannot parse) or QueueFull, before any token is sampled."""
        raise NotImplementedError

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """One L2-normalised, pooled vector per token list."""
        raise NotImplementedError

    def warm(self, prompt: list[int]) -> int:
        """Evaluate `prompt` into the prompt cache without generating; returns tokens cached."""
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """{"active": sequences generating, "queued": requests waiting, "n_parallel": slots}"""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def gpu_offload_supported() -> bool:
    raise NotImplementedError
