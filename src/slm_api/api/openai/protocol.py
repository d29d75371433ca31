"""OpenAI's chat, completions and embeddings wire format: request bodies with its field names
and defaults, and the typed replies behind /openapi.json's response schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_INPUTS,
    ChatLogprobs,
    FinishReason,
    LoadModelConfigs,
    LogitBias,
    MessagesBody,
    Name,
    NonEmptyText,
    ReplyBody,
    RequestBody,
    ResponseFormat,
    Seed,
    StopText,
    TokenIds,
    Usage,
)
from slm_api.api.core.samplers import SamplerFields
from slm_api.engine.types import LoadOptions, SamplingParams
from slm_api.errors import APIError


class StreamOptions(RequestBody):
    include_usage: bool = False


class SamplingFields(SamplerFields):
    """OpenAI's sampling fields, and llama.cpp's other samplers as llama-server takes them
    (mirostat, dry_*, xtc_*, typical_p, ...: api/core/samplers.py)."""

    model: Name | None = None
    max_tokens: int | None = Field(None, gt=0, le=INT32_MAX)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, le=INT32_MAX)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    seed: Seed | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    # llama.cpp's own scale (1: off); above 10 every repeated token is as good as banned.
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0)
    stop: StopText | Annotated[list[StopText], Field(max_length=4)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: LogitBias | None = None
    # MAX_N (a setting) is the real cap, checked by choice_count with a message naming it.
    n: int = Field(1, ge=1, le=INT32_MAX,
                   description="Choices to generate, side by side (up to MAX_N)")
    load_model_configs: LoadModelConfigs | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> list[str] | None:
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else v
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return [s for s in stops if s]

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def to_load_options(self) -> LoadOptions | None:
        return self.load_model_configs.to_load_options() if self.load_model_configs else None

    def to_sampling_params(self, *, grammar: str | None = None, n_probs: int = 0) -> SamplingParams:
        bias = None
        if self.logit_bias:
            try:
                bias = {int(k): float(v) for k, v in self.logit_bias.items()}
            except ValueError as exc:
                raise APIError(
                    400, "logit_bias keys must be token ids", param="logit_bias"
                ) from exc
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repeat_penalty=self.repeat_penalty,
            grammar=grammar,
            logit_bias=bias,
            n_probs=n_probs,
            **self.sampler_values(),
        )


class ChatCompletionRequest(SamplingFields, MessagesBody):
    max_completion_tokens: int | None = Field(None, gt=0, le=INT32_MAX)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # A reasoning model's thinking (docs/reasoning.md): "none" turns it off; the template's own
    # variables as vLLM and llama-server take them ({"enable_thinking": false}).
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    chat_template_kwargs: dict[str, Any] | None = Field(None, max_length=64)
    thinking_budget: int | None = Field(None, ge=0, le=INT32_MAX, description=(
        "at most this many tokens of thinking, then the server closes the block; 0: none"))

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class MediaPrompt(RequestBody):
    """llama-server's multimodal prompt (api/openai/raw_media.py): text with one `<__media__>`
    marker per item of `multimodal_data` (bare base64 images), in order."""

    prompt_string: str
    multimodal_data: list[str] | None = None


class CompletionRequest(SamplingFields):
    prompt: str | MediaPrompt \
        | Annotated[list[str | MediaPrompt], Field(min_length=1, max_length=MAX_INPUTS)] \
        | TokenIds | Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_INPUTS)]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    max_tokens: int | None = Field(16, gt=0, le=INT32_MAX)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("prompt must not be an empty list")
        return v


class EmbeddingRequest(RequestBody):
    model: Name | None = None
    # How many inputs: MAX_EMBEDDING_INPUTS (a setting, 2048 as OpenAI by default), checked
    # before any is tokenized (api/core/body.py embedding_inputs), so no fixed bound here.
    input: NonEmptyText | Annotated[list[NonEmptyText], Field(min_length=1)] | TokenIds \
        | Annotated[list[TokenIds], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, gt=0, le=65536)

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if v == "" or v == [] or (isinstance(v, list) and any(x in ("", []) for x in v)):
            raise ValueError("input must not be empty")
        return v




# -- chat -----------------------------------------------------------------------------------


class FunctionCallOut(ReplyBody):
    name: str
    arguments: str


class ToolCallOut(ReplyBody):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class AssistantMessage(ReplyBody):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[ToolCallOut] | None = None
    # A reasoning model's thinking, under llama-server's name and vLLM's (the same text).
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChoice(ReplyBody):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason


class ChatCompletion(ReplyBody):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ToolCallDelta(ReplyBody):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict[str, Any] | None = None


class ChatDelta(ReplyBody):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChunkChoice(ReplyBody):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None


class ChatCompletionChunk(ReplyBody):
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


class CompletionLogprobs(ReplyBody):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(ReplyBody):
    text: str
    index: int
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class Completion(ReplyBody):
    """A text completion; each streamed event has this shape too (without `usage`)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# -- embeddings -----------------------------------------------------------------------------


class Embedding(ReplyBody):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 little-endian float32")


class EmbeddingUsage(ReplyBody):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(ReplyBody):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# -- models ---------------------------------------------------------------------------------


class Model(ReplyBody):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    kind: Literal["chat", "embedding", "rerank", "unreadable"] | None = None
    loaded: bool | None = None
    size_bytes: int | None = None
    input_modalities: list[Literal["text", "image", "audio"]] | None = Field(
        None, description="what a chat model reads: `image` with a projector (mmproj)")
    error: str | None = Field(None, description="why the file cannot be read (kind "
                              "`unreadable`: truncated, corrupt, not GGUF); absent otherwise")


class ModelList(ReplyBody):
    object: Literal["list"]
    data: list[Model]


class LocalModel(ReplyBody):
    name: str
    id: str
    size_bytes: int
    loaded: bool
    error: str | None = Field(None, description="why the file cannot be read; absent when it "
                              "can")


class ActiveModel(ReplyBody):
    name: str
    path: str
    n_ctx: int


class LocalModels(ReplyBody):
    active: ActiveModel | None
    models: list[LocalModel]




# -- audio ----------------------------------------------------------------------------------


class TranscriptionRequest(RequestBody):
    """/v1/audio/transcriptions' form fields (multipart/form-data, with the audio as `file`).
    Form fields arrive as text, so this model is not strict about numbers."""

    model_config = ConfigDict(extra="ignore", strict=False, allow_inf_nan=False)

    file: bytes = Field(description="the audio: WAV or MP3 (MAX_AUDIO_BYTES at most)")
    model: Name
    language: Annotated[str, Field(max_length=16)] | None = None
    prompt: Annotated[str, Field(max_length=4096)] | None = None
    response_format: Literal["json", "text", "verbose_json"] = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0)


class Transcription(ReplyBody):
    text: str
    task: Literal["transcribe"] | None = None  # verbose_json only
    language: str | None = None
    duration: float | None = None
