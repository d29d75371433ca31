"""Anthropic Messages API bodies, with Anthropic's field names: requests in, replies out.

Unknown fields are ignored (like api/core/protocol.py): SDKs send `metadata`, `thinking`,
`service_tier` and the like, which change nothing for a local model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_MESSAGES,
    MAX_METADATA,
    MAX_STOPS,
    MAX_TOOLS,
    JSONSchemaFormat,
    Name,
    RequestBody,
    ResponseFormat,
    StopText,
)
from slm_api.engine import SamplingParams

_TOOL_NAME = r"^[A-Za-z0-9_.-]+$"


class TextBlock(RequestBody):
    type: Literal["text"]
    text: str


class ToolUseBlock(RequestBody):
    type: Literal["tool_use"]
    id: Name
    name: Name
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(RequestBody):
    type: Literal["tool_result"]
    tool_use_id: Name
    content: str | Annotated[list[TextBlock], Field(max_length=MAX_MESSAGES)] | None = None
    is_error: bool | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(block.text for block in self.content)


class ThinkingBlock(RequestBody):
    """A reasoning model's thinking (docs/reasoning.md). Sent back in an assistant turn it is
    accepted and left out of the prompt; the signature is empty (nothing here verifies it)."""

    type: Literal["thinking"]
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(RequestBody):
    type: Literal["redacted_thinking"]
    data: str


class Base64ImageSource(RequestBody):
    type: Literal["base64"]
    media_type: Name  # checked with the data (api/core/media_parts.py), naming this field
    data: str


class URLImageSource(RequestBody):
    type: Literal["url"]
    url: str


class FileImageSource(RequestBody):
    """The Files API's images: refused (this server keeps no files), by name."""

    type: Literal["file"]
    file_id: Name


class ImageBlock(RequestBody):
    type: Literal["image"]
    source: Annotated[Base64ImageSource | URLImageSource | FileImageSource,
                      Field(discriminator="type")]


UserBlock = Annotated[TextBlock | ImageBlock | ToolResultBlock, Field(discriminator="type")]
AssistantBlock = Annotated[TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock,
                           Field(discriminator="type")]


class UserMessage(RequestBody):
    role: Literal["user"]
    content: str | Annotated[list[UserBlock], Field(max_length=MAX_MESSAGES)]


class AssistantMessage(RequestBody):
    role: Literal["assistant"]
    content: str | Annotated[list[AssistantBlock], Field(max_length=MAX_MESSAGES)]


MessageParam = Annotated[UserMessage | AssistantMessage, Field(discriminator="role")]


class ToolParam(RequestBody):
    name: str = Field(min_length=1, max_length=64, pattern=_TOOL_NAME)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ToolChoiceMode(RequestBody):
    type: Literal["auto", "any", "none"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(RequestBody):
    type: Literal["tool"]
    name: Name
    disable_parallel_tool_use: bool | None = None


ToolChoice = Annotated[ToolChoiceMode | ToolChoiceTool, Field(discriminator="type")]


class ThinkingConfig(RequestBody):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=0, le=INT32_MAX)


class MessagesPrompt(RequestBody):
    """What the prompt is made of: shared by /v1/messages and /v1/messages/count_tokens."""

    model: Name | None = None
    messages: list[MessageParam] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: str | Annotated[list[TextBlock], Field(max_length=MAX_MESSAGES)] | None = None
    tools: list[ToolParam] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None

    @property
    def thinking_switch(self) -> bool | None:
        """The core's switch: enabled on, disabled off, unset the model's default (its
        thinking then left out of the reply)."""
        if self.thinking is None:
            return None
        return self.thinking.type != "disabled"



class JSONOutputFormat(RequestBody):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(RequestBody):
    """Structured output: `format` constrains the reply to the JSON Schema (same decoding as
    chat's response_format)."""

    format: JSONOutputFormat | None = None


class MessagesRequest(MessagesPrompt):
    max_tokens: int = Field(gt=0, le=INT32_MAX)
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=INT32_MAX)
    stop_sequences: list[StopText] | None = Field(None, max_length=MAX_STOPS)
    stream: bool = False
    # Anthropic documents one key (user_id); any others are ignored, but bounded.
    metadata: dict[Name, Any] | None = Field(None, max_length=MAX_METADATA)
    output_config: OutputConfig | None = None

    def response_format(self) -> ResponseFormat | None:
        fmt = self.output_config.format if self.output_config else None
        if fmt is None:
            return None
        return ResponseFormat(type="json_schema",
                              json_schema=JSONSchemaFormat(schema=fmt.schema_))

    def to_sampling_params(self) -> SamplingParams:
        """The engine's sampling: what the client set, the server's defaults for the rest."""
        given = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        return SamplingParams(**{k: v for k, v in given.items() if v is not None})


class CountTokensRequest(MessagesPrompt):
    pass


# -- replies -------------------------------------------------------------------------------


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class Message(BaseModel):
    """A /v1/messages reply."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ThinkingBlock | TextBlock | ToolUseBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage


class TokenCount(BaseModel):
    """A /v1/messages/count_tokens reply."""

    input_tokens: int


class MessageStreamEvent(BaseModel):
    """One streamed event (`event: <type>`): message_start, content_block_start,
    content_block_delta, content_block_stop, message_delta, message_stop, ping or error."""

    model_config = ConfigDict(extra="allow")
    type: str


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    """Every error on the /v1/messages routes: Anthropic's envelope."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail
