"""llama-server's /infill request and reply, by its own field names (what llama.vscode and
llama.vim send and read). Fields llama-server takes that change nothing here (`cache_prompt`:
the prompt cache is always on; `id_slot`, `t_max_prompt_ms`, `samplers`) are ignored, as every
request model here ignores unknown fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_STOPS,
    Name,
    ReplyBody,
    RequestBody,
    Seed,
    StopText,
)
from slm_api.engine import SamplingParams

# Files of context in one request: llama.vscode and llama.vim send their ring buffer of 16
# chunks by default; their text is only read back from the last file until the context is full.
MAX_EXTRA_FILES = 256
MAX_FILENAME_CHARS = 1024  # a path, longer than a name
MAX_INDENT = 1024  # columns; an editor's cursor column
MAX_PREDICT_MS = 600_000  # ten minutes: beyond it REQUEST_TIMEOUT_S ends the request anyway
MAX_RESPONSE_FIELDS = 64


class ExtraFile(RequestBody):
    text: str
    filename: Annotated[str, Field(max_length=MAX_FILENAME_CHARS)] = "tmp"


class InfillRequest(RequestBody):
    model: Name | None = None
    input_prefix: str
    input_suffix: str
    input_extra: Annotated[list[ExtraFile], Field(max_length=MAX_EXTRA_FILES)] = []
    prompt: str = ""  # after FIM_MID: the start of the cursor's line the model must continue
    n_predict: int = Field(-1, ge=-1, le=INT32_MAX)  # -1: until the context (MAX_TOKENS_CAP)
    n_indent: int = Field(0, ge=0, le=MAX_INDENT)
    t_max_predict_ms: int = Field(0, ge=0, le=MAX_PREDICT_MS)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_k: int = Field(40, ge=0, le=INT32_MAX)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    seed: Seed | None = None
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stop: Annotated[list[StopText], Field(max_length=MAX_STOPS)] = []
    stream: bool = False
    return_tokens: bool = False
    response_fields: Annotated[list[Name], Field(max_length=MAX_RESPONSE_FIELDS)] = []

    @field_validator("seed")
    @classmethod
    def _no_random_seed(cls, v: int | None) -> int | None:
        # llama-server's -1 (and any 0xFFFFFFFF) means "random": no seed.
        return None if v is not None and v < 0 else v

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
            min_p=self.min_p, seed=self.seed, repeat_penalty=self.repeat_penalty,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty)


class Timings(ReplyBody):
    cache_n: int
    prompt_n: int
    prompt_ms: float
    prompt_per_token_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_token_ms: float
    predicted_per_second: float


class InfillReply(ReplyBody):
    """llama-server's completion object. Streamed, each event has `content`, `tokens`,
    `stop: false`; the last has `stop: true` and the rest. With `response_fields`, only those
    paths (`timings/prompt_n`) come back, under their path."""

    index: int = 0
    content: str = ""
    tokens: list[int] = []
    stop: bool = True
    model: str | None = None
    tokens_predicted: int | None = None
    tokens_evaluated: int | None = None
    prompt: str | None = None
    prompt_tokens: list[int] | None = None
    has_new_line: bool | None = None
    truncated: bool | None = None
    stop_type: str | None = None
    stopping_word: str | None = None
    tokens_cached: int | None = None
    timings: Timings | None = None
    generation_settings: dict[str, Any] | None = None
