"""Response bodies, typed: the source of /openapi.json's response schemas.

Field names and shapes follow the OpenAI API. Views still build plain dicts (speed, and the
field order clients print), so the models are kept honest from the outside: schemathesis checks
every documented response against them (tests/test_contract.py). Models of this server's own
routes allow extra fields, so adding one to a reply never breaks the contract.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(_Out):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(_Out):
    """Every 4xx and 5xx, OpenAI's error envelope."""

    error: ErrorDetail


# -- shared ---------------------------------------------------------------------------------


class PromptTokensDetails(_Out):
    cached_tokens: int


class Usage(_Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


FinishReason = Literal["stop", "length", "tool_calls"]


class TopLogprob(_Out):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(_Out):
    content: list[TokenLogprobOut] | None
    refusal: str | None = None


# -- chat -----------------------------------------------------------------------------------


class FunctionCallOut(_Out):
    name: str
    arguments: str


class ToolCallOut(_Out):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class AssistantMessage(_Out):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[ToolCallOut] | None = None


class ChatChoice(_Out):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason


class ChatCompletion(_Out):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ToolCallDelta(_Out):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict[str, Any] | None = None


class ChatDelta(_Out):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(_Out):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None


class ChatCompletionChunk(_Out):
    """One `data:` event of a chat stream (the last one carries `usage` when
    stream_options.include_usage is set; an error mid-stream is an ErrorEnvelope event)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# -- completions ----------------------------------------------------------------------------


class CompletionLogprobs(_Out):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(_Out):
    text: str
    index: int
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class Completion(_Out):
    """A text completion; each streamed event has this shape too (without `usage`)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# -- embeddings -----------------------------------------------------------------------------


class Embedding(_Out):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 little-endian float32")


class EmbeddingUsage(_Out):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Out):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# -- models ---------------------------------------------------------------------------------


class Model(_Out):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    kind: Literal["chat", "embedding", "rerank"] | None = None
    loaded: bool | None = None
    size_bytes: int | None = None


class ModelList(_Out):
    object: Literal["list"]
    data: list[Model]


class ModelDeleted(_Out):
    id: str
    object: Literal["model"]
    deleted: bool


class LocalModel(_Out):
    name: str
    id: str
    size_bytes: int
    loaded: bool


class ActiveModel(_Out):
    name: str
    path: str
    n_ctx: int


class LocalModels(_Out):
    active: ActiveModel | None
    models: list[LocalModel]


# -- extract and extras ---------------------------------------------------------------------


class ExtractResult(_Out):
    object: Literal["extract.result"]
    created: int
    model: str
    latency_ms: float
    data: Any = Field(description="JSON that fits the request's schema")
    usage: Usage


class TokenizeResult(_Out):
    tokens: list[int]


class CountResult(_Out):
    count: int


class DetokenizeResult(_Out):
    text: str


class AppliedTemplate(_Out):
    prompt: str
    chat_format: str


# -- admin ----------------------------------------------------------------------------------


class AdminResult(_Out):
    """What an admin route did (`status`) and the model it concerns."""

    status: str
    model: Any = None


class DownloadJob(_Out):
    job_id: str | None = None
    status: str


# -- probes ---------------------------------------------------------------------------------


class Health(_Out):
    status: Literal["ok", "no_model", "engine_loop_dead"]
    model_loaded: bool
    model: str | None
    model_path: str | None
    n_ctx: int | None
    chat_format: str | None
    loaded_models: list[str]
    requests_in_flight: int
    draining: bool
    gpu_offload: bool
    uptime_s: float


class Ready(_Out):
    status: Literal["ready", "no_model", "queue_full", "draining", "engine_loop_dead"]
    model: str | None
