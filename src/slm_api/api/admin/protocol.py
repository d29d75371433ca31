"""The server's own endpoints' bodies: admin (downloads, loads, reloads), the llama.cpp-style
extras (tokenize, detokenize, apply-template) and the probes (/health, /ready)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from slm_api.api.core.planner import Turn
from slm_api.api.core.protocol import (
    INT32_MAX,
    MAX_CTX,
    LoadModelConfigs,
    MessagesBody,
    Name,
    ReplyBody,
    RequestBody,
    ResponseFormat,
    TokenId,
)
from slm_api.engine.types import LoadOptions


class LoadRequest(RequestBody):
    repo_id: str = Field(min_length=1, max_length=200)
    filename: str = Field(min_length=1, max_length=255)
    revision: str | None = Field(None, max_length=200)
    async_: bool = Field(False, alias="async")


class ReloadRequest(LoadModelConfigs):
    model_path: str = Field(min_length=1, max_length=1024)


class ModelLoadRequest(LoadModelConfigs):
    model: str = Field(min_length=1, max_length=255)


class SetModelRequest(RequestBody):
    model_name: str = Field(min_length=1, max_length=255)
    load_model_configs: LoadModelConfigs | None = None

    def to_load_options(self) -> LoadOptions | None:
        return self.load_model_configs.to_load_options() if self.load_model_configs else None




class TokenizeRequest(RequestBody):
    model: Name | None = None
    input: str
    add_special: bool = True


class DetokenizeRequest(RequestBody):
    model: Name | None = None
    tokens: list[TokenId] = Field(max_length=MAX_CTX)


class ApplyTemplateRequest(MessagesBody):
    """A chat request's prompt-shaping fields (those of /v1/chat/completions): the prompt shown,
    or cached, is the one a chat request with them reads, its tools and thinking included."""

    model: Name | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    chat_template_kwargs: dict[str, Any] | None = Field(None, max_length=64)
    thinking_budget: int | None = Field(None, ge=0, le=INT32_MAX)

    def to_turn(self) -> Turn:
        return Turn(self.model, self.message_dicts(), tools=self.tool_dicts(),
                    tool_choice=self.tool_choice, response_format=self.response_format,
                    reasoning_effort=self.reasoning_effort,
                    template_kwargs=self.chat_template_kwargs,
                    thinking_budget=self.thinking_budget)


class RestoreCacheRequest(ApplyTemplateRequest):
    pass


class ModelDeleted(ReplyBody):
    id: str
    object: Literal["model"]
    deleted: bool


# -- admin ----------------------------------------------------------------------------------


class AdminResult(ReplyBody):
    """What an admin route did (`status`) and the model it concerns."""

    status: str
    model: Any = None


class DownloadJob(ReplyBody):
    job_id: str | None = None
    status: str


# -- probes ---------------------------------------------------------------------------------


class Health(ReplyBody):
    status: Literal["ok", "no_model", "engine_loop_dead"]
    model_loaded: bool
    model: str | None
    model_path: str | None
    n_ctx: int | None
    chat_format: str | None
    mmproj: str | None = Field(None, description="the active model's projector file (images "
                               "in), null for a text-only model")
    input_modalities: list[str] | None = None
    kv_cache_type_k: str | None = None
    kv_cache_type_v: str | None = None
    flash_attention: str | None = None
    loaded_models: list[str]
    requests_in_flight: int
    draining: bool
    gpu_offload: bool
    uptime_s: float


class Ready(ReplyBody):
    status: Literal["ready", "no_model", "queue_full", "draining", "engine_loop_dead"]
    model: str | None


# -- extras -----------------------------------------------------------------------------


class TokenizeResult(ReplyBody):
    tokens: list[int]


class CountResult(ReplyBody):
    count: int


class DetokenizeResult(ReplyBody):
    text: str


class AppliedTemplate(ReplyBody):
    prompt: str
    chat_format: str


