"""Request bodies, with the OpenAI API's field names and defaults.

Unknown fields are ignored rather than refused: SDKs and LangChain send fields (user, n=1,
parallel_tool_calls, ...) that change nothing for a local model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slm_api.engine.types import LoadOptions, SamplingParams
from slm_api.errors import APIError

# Largest context a client may ask a model to be loaded with; the engine also refuses more
# than the model was trained for.
MAX_CTX = 131072

# What the JSON Schema can say is said there, so the document and the validation agree.
TokenId = Annotated[int, Field(ge=0)]
TokenIds = Annotated[list[TokenId], Field(min_length=1)]
NonEmptyText = Annotated[str, Field(min_length=1)]
TokenIdKey = Annotated[str, Field(pattern=r"^[0-9]+$")]


class _Body(BaseModel):
    # strict: "5" is not 5 and 1.0 is not an integer, as the document says (OpenAI refuses both).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)


class LoadModelConfigs(_Body):
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


class SamplingFields(_Body):
    model: str | None = None
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    seed: int | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    repeat_penalty: float = Field(1.0, gt=0.0)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    logit_bias: dict[TokenIdKey, float] | None = None
    n: int = Field(1, ge=1, description="Choices to generate, side by side (up to MAX_N)")
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
        return bool((self.stream_options or {}).get("include_usage"))

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
        )


class FunctionCall(_Body):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Body):
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


class FunctionDef(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"] = "function"
    function: FunctionDef


class _MessagesBody(_Body):
    """A body that carries chat messages and tools, as plain dicts for the chat formatter."""

    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None


class JSONSchemaFormat(_Body):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | bool = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return self


class ChatCompletionRequest(SamplingFields, _MessagesBody):
    max_completion_tokens: int | None = Field(None, gt=0)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingFields):
    prompt: str | Annotated[list[str], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    max_tokens: int | None = Field(16, gt=0)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("prompt must not be an empty list")
        return v


class EmbeddingRequest(_Body):
    model: str | None = None
    input: NonEmptyText | Annotated[list[NonEmptyText], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, gt=0)

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if v == "" or v == [] or (isinstance(v, list) and any(x in ("", []) for x in v)):
            raise ValueError("input must not be empty")
        return v


class ExtractRequest(_Body):
    model: str | None = None
    text: str = Field(min_length=1)
    schema_: dict[str, Any] | bool | None = Field(None, alias="schema")
    instructions: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, gt=0)
    seed: int | None = None


class LoadRequest(_Body):
    repo_id: str = Field(min_length=1, max_length=200)
    filename: str = Field(min_length=1, max_length=255)
    revision: str | None = Field(None, max_length=200)
    async_: bool = Field(False, alias="async")


class ReloadRequest(LoadModelConfigs):
    model_path: str = Field(min_length=1, max_length=1024)


class ModelLoadRequest(LoadModelConfigs):
    model: str = Field(min_length=1, max_length=255)


class SetModelRequest(_Body):
    model_name: str = Field(min_length=1, max_length=255)
    load_model_configs: LoadModelConfigs | None = None

    def to_load_options(self) -> LoadOptions | None:
        return self.load_model_configs.to_load_options() if self.load_model_configs else None


class TokenizeRequest(_Body):
    model: str | None = None
    input: str
    add_special: bool = True


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: list[TokenId]


class ApplyTemplateRequest(_MessagesBody):
    model: str | None = None


class RestoreCacheRequest(ApplyTemplateRequest):
    pass
