"""The engine: the only package that imports llama_cpp.

HTTP code talks to `Engine` (a registry of loaded models) and to the `LoadedModel` it hands out
for the duration of one request (`with engine.use(model_id) as model:`).
"""

from slm_api.engine.engine import Engine
from slm_api.engine.job import Choices
from slm_api.engine.llama_model import gpu_offload_supported
from slm_api.engine.types import (
    Chunk,
    FinishCause,
    Finished,
    Generation,
    GenerationRequest,
    LoadOptions,
    MediaSpan,
    ModelInfo,
    SamplingParams,
    TokenLogprob,
)
from slm_api.errors import (
    EngineError,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    NoModelLoaded,
    QueueFull,
)

__all__ = [
    "Choices",
    "Chunk",
    "Engine",
    "EngineError",
    "FinishCause",
    "Finished",
    "Generation",
    "GenerationRequest",
    "InvalidRequest",
    "LoadOptions",
    "MediaSpan",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFound",
    "NoModelLoaded",
    "QueueFull",
    "SamplingParams",
    "TokenLogprob",
    "gpu_offload_supported",
]
