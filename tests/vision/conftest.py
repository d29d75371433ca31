"""The tiny vision model served for real, shared by the vision tests of one module: a
MODELS_DIR with tiny-vlm.gguf, its projector beside it (found by name) and the default
text-only model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.http_server import make_settings, running_server
from support.vision_gguf import write_tiny_vlm

VLM = "tiny-vlm"


@pytest.fixture(scope="module")
def vision_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vision-models")
    write_tiny_vlm(folder, model_path.parent)
    os.link(model_path, folder / model_path.name)
    return folder


@pytest.fixture(scope="module")
def vision_server(vision_dir: Path) -> Iterator[str]:
    settings = make_settings(vision_dir, model_path=vision_dir / f"{VLM}.gguf",
                             max_loaded_models=2, n_ctx=1024)
    with running_server(settings) as url:
        yield url
