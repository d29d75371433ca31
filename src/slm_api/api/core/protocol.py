"""Wire models every family shares: the request base, the chat messages and response formats
the core turns into prompts and grammars, the usage block, and the base error envelope.

Requests ignore unknown fields rather than refuse them: SDKs and LangChain send fields (user,
n=1, parallel_tool_calls, ...) that change nothing for a local model. Replies are typed for
/openapi.json only; views build plain dicts (speed, and the field order clients print), and
schemathesis checks every documented response against the models (tests/core/test_contract.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slm_api.engine.types import LoadOptions

# Largest context a client may ask a model to be loaded with; the engine also refuses more
# than the model was trained for.
MAX_CTX = 131072

# What the JSON Schema can say is said there, so the document and the validation agree.
TokenId = Annotated[int, Field(ge=0)]
TokenIds = Annotated[list[TokenId], Field(min_length=1)]
NonEmptyText = Annotated[str, Field(min_length=1)]
TokenIdKey = Annotated[str, Field(pattern=r"^[0-9]+$")]


class RequestBody(BaseModel):
    # strict: "5" is not 5 and 1.0 is not an integer, as the document says (OpenAI refuses both).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)


class LoadModelConfigs(RequestBody):
    """Context options used when a request's model has to be loaded first."""

    n_ctx: int | None = Field(None, ge=16, le=MAX_CTX)
    n_threads: int | None = Field(None, ge=1, le=256)
    n_batch: int | None = Field(None, ge=1, le=8192)
    n_gpu_layers: int | None = Field(None, ge=-1)
    n_parallel: int | None = Field(None, ge=1, le=64)
    chat_format: str | None = None

    def to_load_options(self) -> LoadOptions:
        # Only these fields: subclasses (reload, load) add the model they name.
        fields = set(LoadModelConfigs.model_fields)
        return LoadOptions(**self.model_dump(exclude_none=True, include=fields))


class FunctionCall(RequestBody):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(RequestBody):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(RequestBody):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

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

    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None


class JSONSchemaFormat(RequestBody):
    name: str = "response"
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


