"""The KV cache settings (config.KvCacheConfig: KV_CACHE_TYPE, KV_CACHE_TYPE_K/_V,
FLASH_ATTENTION, or a load's options) onto llama.cpp's context parameters, as llama-server's
-ctk/-ctv/-fa: type_k, type_v, flash_attn_type."""

from __future__ import annotations

import llama_cpp

from slm_api.config import KvCacheConfig
from slm_api.engine.types import LoadOptions
from slm_api.errors import ModelLoadError

GGML_TYPES = {
    "f32": llama_cpp.GGML_TYPE_F32, "f16": llama_cpp.GGML_TYPE_F16,
    "bf16": 30,  # GGML_TYPE_BF16 (ggml.h); the Python binding does not name it
    "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q5_1": llama_cpp.GGML_TYPE_Q5_1,
    "q5_0": llama_cpp.GGML_TYPE_Q5_0, "q4_1": llama_cpp.GGML_TYPE_Q4_1,
    "iq4_nl": llama_cpp.GGML_TYPE_IQ4_NL, "q4_0": llama_cpp.GGML_TYPE_Q4_0,
}
FLASH_ATTN_TYPES = {"auto": -1, "off": 0, "on": 1}  # enum llama_flash_attn_type


def kv_cache_for(configured: KvCacheConfig, options: LoadOptions) -> KvCacheConfig:
    """The settings' cache with a load's options over them; a combination llama.cpp would
    refuse is a 400 naming the option."""
    both = options.kv_cache_type
    cache = KvCacheConfig(options.kv_cache_type_k or both or configured.type_k,
                          options.kv_cache_type_v or both or configured.type_v,
                          options.flash_attention or configured.flash_attention)
    problem = cache.problem()
    if problem:
        raise ModelLoadError(problem, param="flash_attention" if options.flash_attention
                             else "kv_cache_type")
    return cache


def apply(cache: KvCacheConfig, cparams: llama_cpp.llama_context_params) -> None:
    cparams.type_k = GGML_TYPES[cache.type_k]
    cparams.type_v = GGML_TYPES[cache.type_v]
    cparams.flash_attn_type = FLASH_ATTN_TYPES[cache.flash_attention]
