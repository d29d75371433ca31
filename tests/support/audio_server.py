"""The settings the audio tests serve the tiny audio model with (tests/audio/conftest.py), and
the names the tests call it by."""

from __future__ import annotations

from pathlib import Path

from slm_api.config import Settings
from support.audio_gguf import TEXT_NAME as ALM_FILE
from support.http_server import make_settings
from support.vision_gguf import TEXT_NAME as VLM_FILE

ALM = Path(ALM_FILE).stem
VLM = Path(VLM_FILE).stem
# Low enough that a clip past it is cheap to send, high enough for a clip of two 30 s windows.
MAX_SECONDS = 40
MAX_AUDIO_BYTES = 1_500_000  # 46 s of 16 kHz 16-bit mono


def audio_settings(folder: Path) -> Settings:
    return make_settings(folder, model_path=folder / ALM_FILE, max_loaded_models=2,
                         n_ctx=2048, max_audio_seconds=MAX_SECONDS,
                         max_audio_bytes=MAX_AUDIO_BYTES)
