"""Wire models every family shares: the request base, the chat messages and response formats
the core turns into prompts and grammars, the usage block, and the base error envelope.

Requests ignore unknown fields rather than refuse them: SDKs and LangChain send fields (user,
n=1, service_tier, ...) that change nothing for a local model. Replies are typed for
/openapi.json only; views build plain dicts (speed, and the field order clients print), and
schemathesis checks every documented response against the models (tests/core/test_contract.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slm_api.config import KV_CACHE_TYPES
from slm_api.engine.types import LoadOptions

# Largest context a client may ask a model to be loaded with; the engine also refuses more
# than the model was trained for.
MAX_CTX = 131072

# Bounds on what a client may send (docs/security-and-operations.md, "Limits on client input").
# The body size (MAX_REQUEST_BYTES) bounds the total; these bound what costs per item: a stop
# string is matched at every token, a tool is rendered into every prompt, a message list is
# walked by every template. The numbers are the APIs' own where they document one.
INT32_MAX = 2**31 - 1  # llama.cpp takes token counts, top_k and thread counts as int32
MAX_STOP_CHARS = 512  # one stop string
MAX_STOPS = 16  # Anthropic-style lists (stop_sequences, Ollama's stop); OpenAI's `stop` is 4
MAX_MESSAGES = 2048  # messages or input items in one request
MAX_TOOLS = 128  # OpenAI: "A max of 128 functions are supported"
MAX_INPUTS = 2048  # OpenAI embeddings: at most 2048 inputs per request
MAX_LOGIT_BIAS = 1024  # tokens biased in one request
MAX_METADATA = 16  # OpenAI metadata: 16 pairs, keys of 64 characters, values of 512
MAX_NAME_CHARS = 256  # ids, names and other labels

# What the JSON Schema can say is said there, so the document and the validation agree.
TokenId = Annotated[int, Field(ge=0, le=INT32_MAX)]
TokenIds = Annotated[list[TokenId], Field(min_length=1, max_length=MAX_CTX)]
NonEmptyText = Annotated[str, Field(min_length=1)]
TokenIdKey = Annotated[str, Field(pattern=r"^[0-9]+$", max_length=10)]
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # OpenAI's seed is an int64
StopText = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
LogitBias = Annotated[
    dict[TokenIdKey, Annotated[float, Field(ge=-100.0, le=100.0)]],
    Field(max_length=MAX_LOGIT_BIAS),
]
Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
    Field(max_length=MAX_METADATA),
]


class RequestBody(BaseModel):
    # strict: "5" is not 5 and 1.0 is not an integer, as the document says (OpenAI refuses both).
    # allow_inf_nan=False: Python's JSON reads NaN, Infinity and 1e999 as floats; no sampler
    # parameter has a meaning for them, and a NaN compares false with every bound.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True,
                              allow_inf_nan=False)


class LoadModelConfigs(RequestBody):
    """Context options used when a request's model has to be loaded first."""

    n_ctx: int | None = Field(None, ge=16, le=MAX_CTX)
    n_threads: int | None = Field(None, ge=1, le=256)
    n_batch: int | None = Field(None, ge=1, le=8192)
    n_gpu_layers: int | None = Field(None, ge=-1, le=INT32_MAX)
    n_parallel: int | None = Field(None, ge=1, le=64)
    chat_format: Name | None = None
    # The projector (images in), a path inside MODELS_DIR; default: `mmproj-<model>.gguf`
    # beside the model, found by name.
    mmproj: str | None = Field(None, min_length=1, max_length=4096)
    # KV_CACHE_TYPE(_K/_V) and FLASH_ATTENTION for this load (docs/concurrency.md, memory).
    kv_cache_type: str | None = Field(None, description="K and V cache type: f16, q8_0, q4_0, ...")
    kv_cache_type_k: str | None = None
    kv_cache_type_v: str | None = None
    flash_attention: Literal["auto", "on", "off"] | None = None

    @field_validator("kv_cache_type", "kv_cache_type_k", "kv_cache_type_v")
    @classmethod
    def _cache_type(cls, v: str | None) -> str | None:
        if v is not None and v not in KV_CACHE_TYPES:
            raise ValueError(f"unknown KV cache type {v!r} (one of {', '.join(KV_CACHE_TYPES)})")
        return v

    def to_load_options(self) -> LoadOptions:
        # Only these fields: subclasses (reload, load) add the model they name.
        fields = set(LoadModelConfigs.model_fields)
        return LoadOptions(**self.model_dump(exclude_none=True, include=fields))


class FunctionCall(RequestBody):
    name: Name
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(RequestBody):
    id: Name | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(RequestBody):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | Annotated[list[dict[str, Any]], Field(max_length=MAX_MESSAGES)] | None = None
    name: Name | None = None
    tool_calls: Annotated[list[ToolCallIn], Field(max_length=MAX_TOOLS)] | None = None
    tool_call_id: Name | None = None

    @model_validator(mode="after")
    def _content_present(self) -> ChatMessage:
        # The document allows null content on every role; null reads as an empty message
        # (only an assistant turn with tool calls keeps it null).
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            self.content = ""
        return self


class FunctionDef(RequestBody):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(RequestBody):
    type: Literal["function"] = "function"
    function: FunctionDef


class MessagesBody(RequestBody):
    """A body that carries chat messages and tools, as plain dicts for the chat formatter."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None


class JSONSchemaFormat(RequestBody):
    name: Name = "response"
    description: str | None = None
    schema_: dict[str, Any] | bool = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(RequestBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return self




class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(ReplyBody):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(ReplyBody):
    """Every 4xx and 5xx, OpenAI's error envelope."""

    error: ErrorDetail


# -- shared ---------------------------------------------------------------------------------


class PromptTokensDetails(ReplyBody):
    cached_tokens: int


class CompletionTokensDetails(ReplyBody):
    reasoning_tokens: int  # of completion_tokens, the thinking (docs/reasoning.md)


class Usage(ReplyBody):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


FinishReason = Literal["stop", "length", "tool_calls"]


class TopLogprob(ReplyBody):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(ReplyBody):
    content: list[TokenLogprobOut] | None
    refusal: str | None = None


