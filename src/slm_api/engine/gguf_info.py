"""What a GGUF file says about itself, read from its header without loading it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=256)
def _kind(path: str, mtime_ns: int) -> str:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception:  # an unreadable file is listed; loading it reports the real reason
        return "chat"
    keys = set(reader.fields)
    # Embedding models state a pooling type (BERT-style encoders and converted embedders).
    return "embedding" if any(k.endswith(".pooling_type") for k in keys) else "chat"


def model_kind(path: Path) -> str:
    """"embedding" when the file's metadata says it pools token vectors, else "chat"."""
    return _kind(str(path), path.stat().st_mtime_ns)
