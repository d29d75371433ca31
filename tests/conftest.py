"""Shared fixtures: the real default model, and a real server serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def embedded_model(file: str) -> Path:
    """One of the two models slm-api writes from PyPI, in the repo's models/ (sha256-checked)."""
    from slm_api.default_model import write_embedded_model

    return write_embedded_model(REPO / "models", file)


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The default model, the one a fresh `make run` serves."""
    from slm_api.config import DEFAULT_MODEL_FILE

    return embedded_model(DEFAULT_MODEL_FILE)


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """Gemma 3 270M Q4_K_M: no chat template in its metadata (the built-in format fallback)."""
    from slm_api.config import GEMMA_MODEL_FILE

    return embedded_model(GEMMA_MODEL_FILE)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2 135M Instruct Q4_1: a ChatML Jinja template in its metadata."""
    from slm_api.config import SMOLLM2_MODEL_FILE

    return embedded_model(SMOLLM2_MODEL_FILE)


@pytest.fixture(scope="session")
def models_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODELS_DIR of the suite's own holding the default model (hard link: no copy)."""
    folder = tmp_path_factory.mktemp("models")
    target = folder / model_path.name
    try:
        os.link(model_path, target)
    except OSError:
        import shutil

        shutil.copyfile(model_path, target)
    return folder


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[str]:
    """Base URL of a server with the default model loaded, shared by the whole session."""
    from support.http_server import make_settings, running_server

    with running_server(make_settings(models_dir)) as url:
        yield url


@pytest.fixture(scope="session")
def client(server: str):
    """The official openai SDK pointed at the server."""
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch):
    """A local stand-in for the Hugging Face Hub; HF_ENDPOINT points at it for the test."""
    from support.fakehub import FakeHub

    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    hub.close()


@pytest.fixture(scope="session")
def keyed_server(models_dir: Path) -> Iterator[str]:
    """A server that needs API keys: `sk-alice` (client id alice) and `sk-bob` (bob)."""
    from support.http_server import make_settings, running_server

    keys = ("sk-alice:alice", "sk-bob:bob")
    with running_server(make_settings(models_dir, openai_api_keys=keys)) as url:
        yield url


@pytest.fixture(scope="session")
def audio_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODELS_DIR with the tiny audio model (support/audio_gguf.py, a projector that takes
    audio only) and the tiny vision model (one that takes images only)."""
    from support.audio_gguf import write_tiny_alm
    from support.vision_gguf import write_tiny_vlm

    folder = tmp_path_factory.mktemp("audio-models")
    write_tiny_alm(folder, model_path.parent)
    write_tiny_vlm(folder, model_path.parent)
    return folder


@pytest.fixture(scope="session")
def audio_server(audio_dir: Path) -> Iterator[str]:
    """A server with the tiny audio model as its default model (tests/audio/)."""
    from support.audio_server import audio_settings
    from support.http_server import running_server

    with running_server(audio_settings(audio_dir)) as url:
        yield url


@pytest.fixture(scope="session")
def aclient(audio_server: str):
    """The openai SDK pointed at the audio server."""
    from openai import OpenAI

    return OpenAI(base_url=f"{audio_server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def vision_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODELS_DIR with the tiny vision model (support/vision_gguf.py), its projector beside
    it (found by name) and the default text-only model (tests/vision/)."""
    import os

    from support.vision_gguf import write_tiny_vlm

    folder = tmp_path_factory.mktemp("vision-models")
    write_tiny_vlm(folder, model_path.parent)
    os.link(model_path, folder / model_path.name)
    return folder


@pytest.fixture(scope="module")
def vision_server(vision_dir: Path) -> Iterator[str]:
    """A server with the tiny vision model as its default model."""
    from support.http_server import make_settings, running_server

    settings = make_settings(vision_dir, model_path=vision_dir / "tiny-vlm.gguf",
                             max_loaded_models=2, n_ctx=1024)
    with running_server(settings) as url:
        yield url


# A `fast` test promises to need no model (`make test-fast` runs them alone in seconds).
MODEL_FIXTURES = frozenset({"model_path", "gemma_path", "smollm2_path", "models_dir", "server",
                            "client"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("fast") and used:
            raise pytest.UsageError(f"{item.nodeid} is marked fast but uses {sorted(used)}")
