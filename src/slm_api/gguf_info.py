"""What a GGUF file says about itself, read from its header without loading it.

Only the metadata keys are read, skipping values: listing a folder of models must stay fast,
and a full parse of a 262k-token vocabulary takes seconds.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

# GGUF value types -> fixed size in bytes (8: string, 9: array are variable).
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def _u64(f: BinaryIO) -> int:
    return struct.unpack("<Q", f.read(8))[0]


def _skip_value(f: BinaryIO, kind: int) -> None:
    if kind in _SIZES:
        f.seek(_SIZES[kind], 1)
    elif kind == _STRING:
        f.seek(_u64(f), 1)
    elif kind == _ARRAY:
        inner = struct.unpack("<I", f.read(4))[0]
        count = _u64(f)
        if inner in _SIZES:
            f.seek(_SIZES[inner] * count, 1)
        else:
            for _ in range(count):
                _skip_value(f, inner)
    else:
        raise ValueError(f"unknown GGUF value type {kind}")


def metadata_keys(path: Path) -> list[str]:
    return _read_header(path)[0]


def _read_header(path: Path) -> tuple[list[str], int | None]:
    """The metadata keys, and the value of `<arch>.pooling_type` when there is one."""
    pooling = None
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        f.read(4)  # version
        _u64(f)  # tensor count
        keys = []
        for _ in range(_u64(f)):
            key = f.read(_u64(f)).decode("utf-8", errors="replace")
            kind = struct.unpack("<I", f.read(4))[0]
            if key.endswith(".pooling_type") and kind in (4, 5):  # uint32 / int32
                pooling = struct.unpack("<i" if kind == 5 else "<I", f.read(4))[0]
            else:
                _skip_value(f, kind)
            keys.append(key)
        return keys, pooling


def declares_pooling(keys: Iterable[str]) -> bool:
    """Embedding models state a pooling type (BERT-style encoders and converted embedders)."""
    return any(k.endswith(".pooling_type") for k in keys)


RANK_POOLING = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK: a cross-encoder's score head


def model_kind(model_id: str, keys: Iterable[str], embedding_ids: Iterable[str],
               pooling: int | None = None) -> str:
    """"rerank" for rank pooling; "embedding" when EMBEDDING_MODELS names the model or its
    metadata declares another pooling; else "chat"."""
    if pooling == RANK_POOLING:
        return "rerank"
    return "embedding" if model_id in embedding_ids or declares_pooling(keys) else "chat"


@lru_cache(maxsize=256)
def _header(path: str, mtime_ns: int) -> tuple[tuple[str, ...], int | None]:
    try:
        keys, pooling = _read_header(Path(path))
        return tuple(keys), pooling
    except (OSError, ValueError, struct.error):
        return (), None  # unreadable files are still listed; loading one reports the reason


def file_kind(path: Path, embedding_ids: Iterable[str]) -> str:
    """model_kind() of a file on disk, from its header alone."""
    keys, pooling = _header(str(path), path.stat().st_mtime_ns)
    return model_kind(path.stem, keys, embedding_ids, pooling)


_FINGERPRINT_SPAN = 1 << 20


def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    return _digest(path, size, mtime_ns)[:16]


def fingerprint(path: Path) -> str:
    """A cheap identity of a model file (SHA-256 of its size, first and last MiB): replicas that
    report the same model id with different fingerprints serve different files. Not a checksum
    of the whole file (that would read gigabytes on every start)."""
    stat = path.stat()
    return _fingerprint(str(path), stat.st_size, stat.st_mtime_ns)


# -- values ----------------------------------------------------------------------------------

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}


class ArrayValue(list):
    """An array value left unread (`count` items): listing a vocabulary of 262k tokens would
    cost seconds and megabytes on every /api/show."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count


def _read_value(f: BinaryIO, kind: int, full_arrays: bool) -> object:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return f.read(_u64(f)).decode("utf-8", errors="replace")
    if kind == _ARRAY:
        inner = struct.unpack("<I", f.read(4))[0]
        count = _u64(f)
        if not full_arrays:
            pos = f.tell()
            f.seek(pos - 12)
            _skip_value(f, _ARRAY)
            return ArrayValue(count)
        return [_read_value(f, inner, True) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {kind}")


class Header:
    """A GGUF file's metadata (key -> value, arrays unread unless asked for) and the number of
    parameters its tensors hold."""

    def __init__(self, metadata: dict[str, object], n_params: int):
        self.metadata = metadata
        self.n_params = n_params


def read_header(path: Path, *, full_arrays: bool = False) -> Header:
    """Metadata values and the parameter count (from the tensor shapes), without loading."""
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        f.read(4)  # version
        n_tensors = _u64(f)
        meta: dict[str, object] = {}
        for _ in range(_u64(f)):
            key = f.read(_u64(f)).decode("utf-8", errors="replace")
            kind = struct.unpack("<I", f.read(4))[0]
            meta[key] = _read_value(f, kind, full_arrays)
        n_params = 0
        for _ in range(n_tensors):
            f.seek(_u64(f), 1)  # name
            n_dims = struct.unpack("<I", f.read(4))[0]
            count = 1
            for _ in range(n_dims):
                count *= _u64(f)
            f.seek(12, 1)  # type, offset
            n_params += count
        return Header(meta, n_params)


@lru_cache(maxsize=64)
def _cached_header(path: str, mtime_ns: int) -> Header | None:
    try:
        return read_header(Path(path))
    except (OSError, ValueError, struct.error):
        return None


def header(path: Path) -> Header | None:
    """read_header() of a file, cached by modification time; None when it cannot be read."""
    return _cached_header(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_FINGERPRINT_SPAN))
        f.seek(max(size - _FINGERPRINT_SPAN, 0))
        digest.update(f.read(_FINGERPRINT_SPAN))
    return digest.hexdigest()


def identity_digest(path: Path) -> str:
    """fingerprint()'s whole SHA-256 (64 hex digits, the width of an Ollama digest)."""
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)
