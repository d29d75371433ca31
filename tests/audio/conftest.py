"""One real server for the audio tests: the tiny audio model the suite writes
(tests/support/audio_gguf.py) as the default model, with the tiny vision model beside it (a
projector that takes images only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from support.audio_gguf import write_tiny_alm
from support.audio_server import audio_settings
from support.http_server import running_server
from support.vision_gguf import write_tiny_vlm


@pytest.fixture(scope="session")
def audio_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audio-models")
    write_tiny_alm(folder, model_path.parent)
    write_tiny_vlm(folder, model_path.parent)
    return folder


@pytest.fixture(scope="session")
def audio_server(audio_dir: Path) -> Iterator[str]:
    with running_server(audio_settings(audio_dir)) as url:
        yield url


@pytest.fixture(scope="session")
def aclient(audio_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{audio_server}/v1", api_key="unused", max_retries=0,
                         timeout=120)
