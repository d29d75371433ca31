"""OpenAI Responses API bodies, with its field names: the request, and the response object.

Unknown fields are ignored (like api/core/protocol.py): SDKs and the Agents SDK send `include`,
`truncation`, `reasoning`, `parallel_tool_calls`, `prompt_cache_key` and the like.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_MESSAGES,
    MAX_TOOLS,
    JSONSchemaFormat,
    Metadata,
    Name,
    RequestBody,
    ResponseFormat,
)
from slm_api.engine import SamplingParams

_NAME = r"^[A-Za-z0-9_.-]+$"


# -- input items ---------------------------------------------------------------------------


class TextPart(RequestBody):
    """input_text in user/system turns; output_text when an earlier reply is sent back."""

    type: Literal["input_text", "output_text", "text"]
    text: str


class ImagePart(RequestBody):
    """input_image: a data URL (or an http(s) URL where the operator allows remote images);
    `file_id` is refused, naming the field (this server keeps no files)."""

    type: Literal["input_image"]
    image_url: str | None = None
    file_id: Name | None = None
    detail: Literal["auto", "low", "high"] | None = None


InputPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class MessageItem(RequestBody):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | Annotated[list[InputPart], Field(max_length=MAX_MESSAGES)]
    id: Name | None = None


class FunctionCallItem(RequestBody):
    type: Literal["function_call"]
    call_id: Name = Field(min_length=1)
    name: Name
    arguments: str = "{}"
    id: Name | None = None


class FunctionCallOutputItem(RequestBody):
    type: Literal["function_call_output"]
    call_id: Name = Field(min_length=1)
    output: str | Annotated[list[TextPart], Field(max_length=MAX_MESSAGES)]

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "\n".join(p.text for p in self.output)


class ReasoningItem(RequestBody):
    """An earlier reply's thinking sent back (as the Agents SDK does): accepted, and left out
    of the prompt (the templates drop earlier turns' thinking too)."""

    type: Literal["reasoning"]
    id: Name | None = None
    summary: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_MESSAGES)
    content: list[dict[str, Any]] | None = Field(None, max_length=MAX_MESSAGES)
    encrypted_content: str | None = None
    status: Name | None = None


def _item_type(value: Any) -> str:
    # A message may leave out its type ({"role": "user", "content": "..."}).
    if isinstance(value, dict):
        return value.get("type", "message")
    return getattr(value, "type", "message")


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]


# -- options -------------------------------------------------------------------------------


class FunctionTool(RequestBody):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def to_chat(self) -> dict[str, Any]:
        fn = {"name": self.name, "description": self.description or "",
              "parameters": self.parameters or {"type": "object"}}
        return {"type": "function", "function": fn}


class FunctionChoice(RequestBody):
    type: Literal["function"]
    name: Name


class TextFormat(RequestBody):
    type: Literal["text", "json_object", "json_schema"]
    name: Name = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> TextFormat:
        if self.type == "json_schema" and self.schema_ is None:
            raise ValueError("text.format of type json_schema needs a schema")
        return self


class TextOptions(RequestBody):
    format: TextFormat | None = None


class ReasoningOptions(RequestBody):
    # "none" turns a reasoning model's thinking off (docs/reasoning.md); `summary` is accepted
    # and the thinking sent whole as reasoning_text (a small model's summary would be noise).
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponseRequest(RequestBody):
    model: Name | None = None
    input: str | Annotated[list[InputItem], Field(max_length=MAX_MESSAGES)]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, gt=0, le=INT32_MAX)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    tools: list[FunctionTool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    text: TextOptions | None = None
    reasoning: ReasoningOptions | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: Name | None = None
    metadata: Metadata | None = None
    parallel_tool_calls: bool = True

    def to_sampling_params(self) -> SamplingParams:
        given = {"temperature": self.temperature, "top_p": self.top_p}
        return SamplingParams(**{k: v for k, v in given.items() if v is not None})

    def response_format(self) -> ResponseFormat | None:
        fmt = self.text.format if self.text else None
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return ResponseFormat(type="json_object")
        assert fmt.schema_ is not None
        return ResponseFormat(type="json_schema", json_schema=JSONSchemaFormat(
            name=fmt.name, description=fmt.description, schema=fmt.schema_, strict=fmt.strict))

    def chat_tool_choice(self) -> Any:
        if not self.tools:
            return None  # no tools: nothing to choose from, nothing to force
        if isinstance(self.tool_choice, FunctionChoice):
            return {"type": "function", "function": {"name": self.tool_choice.name}}
        return self.tool_choice


# -- the response object -------------------------------------------------------------------


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class OutputReasoning(BaseModel):
    """A reasoning model's thinking, the item before the answer's message."""

    id: str
    type: Literal["reasoning"] = "reasoning"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText]


class OutputFunctionCall(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    call_id: str
    name: str
    arguments: str


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseObject(BaseModel):
    """A /v1/responses response (also what GET /v1/responses/{id} returns)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: dict[str, Any] | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputReasoning | OutputMessage | OutputFunctionCall]
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] = Field(default_factory=lambda: {"effort": None, "summary": None})
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: Any = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class ResponseStreamEvent(BaseModel):
    """One streamed event (`event: <type>`), numbered: response.created, .in_progress,
    .output_item.added, .content_part.added, .output_text.delta, ..., .completed."""

    model_config = ConfigDict(extra="allow")
    type: str
    sequence_number: int
