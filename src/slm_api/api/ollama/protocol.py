"""Ollama's request and reply bodies, with its field names (docs/api.md in ollama/ollama, and
what the `ollama` Python SDK sends and parses).

Requests are on the core's RequestBody: strict ("5" is not 5, as Ollama's Go decoder), unknown
fields ignored, as Ollama does. Durations in replies are nanoseconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_CTX,
    MAX_INPUTS,
    MAX_MESSAGES,
    MAX_TOOLS,
    Name,
    ReplyBody,
    RequestBody,
    TokenId,
)
from slm_api.api.ollama.options import Options
from slm_api.config import duration_seconds

# The Ollama version this server answers as: VS Code's Copilot Chat needs >= 0.6.4, and clients
# gate newer fields (tools, structured `format`, `think`) on the version.
VERSION = "0.12.0"
Format = Literal["", "json"] | dict[str, Any] | None
KeepAlive = int | float | str | None


class _ModelRequest(RequestBody):
    model: str = Field(min_length=1, max_length=512)

    @model_validator(mode="before")
    @classmethod
    def _name_alias(cls, data: Any) -> Any:
        # Older clients (and Ollama's own CLI until 0.5) send "name" where newer ones send
        # "model"; Ollama still reads both.
        if isinstance(data, dict) and "model" not in data and isinstance(data.get("name"), str):
            return {**data, "model": data["name"]}
        return data


class KeepAliveBody(_ModelRequest):
    keep_alive: KeepAlive = None

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, v: KeepAlive) -> KeepAlive:
        if v is not None:
            duration_seconds(v)  # ValueError -> 400 naming keep_alive
        return v

    def keep_alive_s(self) -> float | None:
        """keep_alive in seconds (None: forever); only when the request set it."""
        assert self.keep_alive is not None
        return duration_seconds(self.keep_alive)


class GeneratingBody(KeepAliveBody):
    format: Format = None
    options: Options | None = None
    stream: bool | None = True  # null: the default, a stream
    think: bool | Literal["high", "medium", "low"] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20, description=(
        "alternatives per token beside the chosen one; needs logprobs: true"))

    @property
    def opts(self) -> Options:
        return self.options or Options()

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> GeneratingBody:
        # As OpenAI: alternatives without the chosen token's logprob would be a knob ignored.
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def n_probs(self) -> int:
        """Alternatives the engine computes per token (0: no logprobs at all)."""
        return max(1, self.top_logprobs or 0) if self.logprobs else 0


class ToolCallFunction(RequestBody):
    name: Name = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    index: int | None = Field(None, ge=0, le=INT32_MAX)


class ToolCall(RequestBody):
    id: Name | None = None
    function: ToolCallFunction


class Message(RequestBody):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    thinking: str | None = None
    images: list[str] | None = Field(None, max_length=MAX_INPUTS)
    tool_calls: list[ToolCall] | None = Field(None, max_length=MAX_TOOLS)
    tool_name: Name | None = None
    tool_call_id: Name | None = None


class ToolFunction(RequestBody):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(RequestBody):
    type: Literal["function"] = "function"
    function: ToolFunction


class ChatRequest(GeneratingBody):
    messages: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    # Not Ollama's: slm-api's extension, OpenAI's values ("auto", "none", "required", or
    # {"type": "function", "function": {"name": ...}}). A small model rarely calls a tool of
    # its own accord; a forced call is one in the model's markup, grammar-constrained.
    tool_choice: str | dict[str, Any] | None = None


class GenerateRequest(GeneratingBody):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: Annotated[list[TokenId], Field(max_length=MAX_CTX)] | None = None
    raw: bool | None = False
    images: list[str] | None = Field(None, max_length=MAX_INPUTS)


class EmbedRequest(KeepAliveBody):
    input: str | list[str] = ""  # at most MAX_EMBEDDING_INPUTS, checked before any work
    truncate: bool | None = True
    dimensions: int | None = Field(None, gt=0, le=65536)
    options: Options | None = None


class EmbeddingsRequest(KeepAliveBody):
    prompt: str = ""
    options: Options | None = None


class ShowRequest(_ModelRequest):
    verbose: bool | None = False


class PullRequest(_ModelRequest):
    insecure: bool | None = False
    stream: bool | None = True


class DeleteRequest(_ModelRequest):
    pass


class CopyRequest(RequestBody):
    source: str = Field(min_length=1, max_length=512)
    destination: str = Field(min_length=1, max_length=512)


class CreateRequest(RequestBody):
    """Accepted only to be refused clearly: slm-api has no Modelfiles."""

    model: str | None = None


# -- replies -------------------------------------------------------------------------------


class OllamaError(ReplyBody):
    """Every error on the /api routes: Ollama's shape, the status tells the kind."""

    error: str


class Version(ReplyBody):
    version: str


class ModelDetails(ReplyBody):
    parent_model: str = ""
    format: str = "gguf"
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str


class ListedModel(ReplyBody):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    error: str | None = Field(None, description="why the file cannot be read (truncated, "
                              "corrupt, not GGUF); absent when it can")


class ModelList(ReplyBody):
    models: list[ListedModel]


class RunningModel(ReplyBody):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class RunningList(ReplyBody):
    models: list[RunningModel]


class ShowResponse(ReplyBody):
    modelfile: str
    parameters: str
    template: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str
    license: str | None = None


class _Timings(ReplyBody):
    model: str
    created_at: str
    done: bool
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    # On each object of a stream: the tokens behind its text (logprobs: true only).
    logprobs: list[Logprob] | None = None


class TokenLogprob(ReplyBody):
    token: str
    logprob: float
    bytes: list[int] | None = None


class Logprob(TokenLogprob):
    """One generated token's log-probability, with the most likely alternatives."""

    top_logprobs: list[TokenLogprob] | None = None


class ReplyMessage(ReplyBody):
    role: Literal["assistant"] = "assistant"
    content: str
    tool_calls: list[ToolCall] | None = None


class ChatResponse(_Timings):
    """A /api/chat reply, and each line of its stream."""

    message: ReplyMessage


class GenerateResponse(_Timings):
    """A /api/generate reply, and each line of its stream."""

    response: str
    context: list[int] | None = None


class EmbedResponse(ReplyBody):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class EmbeddingsResponse(ReplyBody):
    embedding: list[float]


class Progress(ReplyBody):
    """One line of a /api/pull stream (the reply without streaming: {"status": "success"})."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class Status(ReplyBody):
    status: str
