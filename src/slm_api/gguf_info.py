"""What a GGUF file says about itself, read from its header without loading it.

Array values (a 262k-token vocabulary) are skipped unless asked for: listing a folder of models
must stay fast. Every length and count in the header is checked against the bytes left in the
file before it is used, so a truncated, corrupt or hostile file is refused (GGUFError, with the
reason) rather than read into memory, looped over or recursed into; listings show such a file as
unreadable instead of failing.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

# GGUF value types -> struct format (8: string, 9: array are variable).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays of arrays are legal GGUF; no real file nests them deeper than this.
_MAX_ARRAY_NESTING = 8


class GGUFError(ValueError):
    """The file is not a GGUF header this server can read; the message says why."""


class _Reader:
    """Reads a GGUF header, refusing any length that runs past the end of the file."""

    def __init__(self, f: BinaryIO, size: int):
        self.f, self.size = f, size

    def _room(self, n: int, what: str) -> None:
        pos = self.f.tell()
        if n > self.size - pos:
            raise GGUFError(f"truncated or corrupt: {what} of {n} bytes at byte {pos} runs "
                            f"past the end of the file ({self.size} bytes)")

    def take(self, n: int, what: str) -> bytes:
        self._room(n, what)
        return self.f.read(n)

    def skip(self, n: int, what: str) -> None:
        self._room(n, what)
        self.f.seek(n, 1)

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4, "a number"))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8, "a number"))[0]

    def string(self, what: str = "a string") -> str:
        return self.take(self.u64(), what).decode("utf-8", errors="replace")

    def value(self, kind: int, full_arrays: bool, nesting: int = 0) -> object:
        if kind in _SCALARS:
            fmt = _SCALARS[kind]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt), "a value"))[0]
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise GGUFError(f"corrupt: unknown GGUF value type {kind}")
        if nesting >= _MAX_ARRAY_NESTING:
            raise GGUFError("corrupt: arrays nested more than "
                            f"{_MAX_ARRAY_NESTING} deep")
        inner, count = self.u32(), self.u64()
        if inner not in _SCALARS and inner not in (_STRING, _ARRAY):
            raise GGUFError(f"corrupt: unknown GGUF value type {inner}")
        # Each item takes at least this many bytes: a count the file cannot hold is refused
        # before any loop over it.
        least = struct.calcsize(_SCALARS[inner]) if inner in _SCALARS else \
            8 if inner == _STRING else 12
        self._room(least * count, f"an array of {count} items")
        if full_arrays:
            return [self.value(inner, True, nesting + 1) for _ in range(count)]
        if inner in _SCALARS:
            self.f.seek(least * count, 1)
        else:
            for _ in range(count):
                if inner == _STRING:
                    self.skip(self.u64(), "a string")
                else:
                    self.value(inner, False, nesting + 1)
        return ArrayValue(count)


class ArrayValue(list):
    """An array value left unread (`count` items): listing a vocabulary of 262k tokens would
    cost seconds and megabytes on every /api/show."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count


class Header:
    """A GGUF file's metadata (key -> value, arrays unread unless asked for) and the number of
    parameters its tensors hold."""

    def __init__(self, metadata: dict[str, object], n_params: int):
        self.metadata = metadata
        self.n_params = n_params


def read_header(path: Path, *, full_arrays: bool = False) -> Header:
    """Metadata values and the parameter count (from the tensor shapes), without loading.
    Raises GGUFError (a ValueError) for a file that is not a readable GGUF."""
    with path.open("rb") as f:
        r = _Reader(f, path.stat().st_size)
        if f.read(4) != b"GGUF":
            raise GGUFError("not a GGUF file (bad magic number)")
        r.u32()  # version
        n_tensors, n_keys = r.u64(), r.u64()
        meta: dict[str, object] = {}
        for _ in range(n_keys):
            key = r.string("a metadata key")
            meta[key] = r.value(r.u32(), full_arrays)
        n_params = 0
        for _ in range(n_tensors):
            r.skip(r.u64(), "a tensor name")
            n_dims = r.u32()
            if n_dims > 8:  # GGML_MAX_DIMS is 4
                raise GGUFError(f"corrupt: a tensor with {n_dims} dimensions")
            count = 1
            for _ in range(n_dims):
                count *= r.u64()
            r.skip(12, "a tensor's type and offset")
            n_params += count
        return Header(meta, n_params)


def metadata_keys(path: Path) -> list[str]:
    return list(read_header(path).metadata)


def _pooling(metadata: dict[str, object]) -> int | None:
    """The value of `<arch>.pooling_type`, when the file has one."""
    for key, value in metadata.items():
        if key.endswith(".pooling_type") and isinstance(value, int):
            return value
    return None


def declares_pooling(keys: Iterable[str]) -> bool:
    """Embedding models state a pooling type (BERT-style encoders and converted embedders)."""
    return any(k.endswith(".pooling_type") for k in keys)


RANK_POOLING = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK: a cross-encoder's score head
UNREADABLE = "unreadable"  # the kind listings give a file whose header cannot be read


def model_kind(model_id: str, keys: Iterable[str], embedding_ids: Iterable[str],
               pooling: int | None = None) -> str:
    """"rerank" for rank pooling; "embedding" when EMBEDDING_MODELS names the model or its
    metadata declares another pooling; else "chat"."""
    if pooling == RANK_POOLING:
        return "rerank"
    return "embedding" if model_id in embedding_ids or declares_pooling(keys) else "chat"


@lru_cache(maxsize=256)
def _parsed(path: str, mtime_ns: int, size: int) -> Header | str:
    try:
        return read_header(Path(path))
    except (OSError, ValueError, struct.error, MemoryError, OverflowError) as exc:
        return str(exc) or type(exc).__name__


def header(path: Path) -> Header | None:
    """read_header() of a file, cached by modification time; None when it cannot be read."""
    parsed = _parsed(*_key(path))
    return parsed if isinstance(parsed, Header) else None


def unreadable(path: Path) -> str | None:
    """Why `path` is not a readable GGUF header (cached like header()); None when it is."""
    parsed = _parsed(*_key(path))
    return parsed if isinstance(parsed, str) else None


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def file_kind(path: Path, embedding_ids: Iterable[str]) -> str:
    """model_kind() of a file on disk, from its header alone; UNREADABLE when it has none."""
    meta = header(path)
    if meta is None:
        return UNREADABLE
    return model_kind(path.stem, meta.metadata, embedding_ids, _pooling(meta.metadata))


_FINGERPRINT_SPAN = 1 << 20


def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    return _digest(path, size, mtime_ns)[:16]


def fingerprint(path: Path) -> str:
    """A cheap identity of a model file (SHA-256 of its size, first and last MiB): replicas that
    report the same model id with different fingerprints serve different files. Not a checksum
    of the whole file (that would read gigabytes on every start)."""
    stat = path.stat()
    return _fingerprint(str(path), stat.st_size, stat.st_mtime_ns)


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
