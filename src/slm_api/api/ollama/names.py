"""The names /api/pull and /api/copy give model files, kept in MODELS_DIR/.ollama-names.json.

Ollama's names (`hf.co/owner/repo:Q4_K_M`, `team/model:v2`) are not file names, and a copy
should not hold a second copy of gigabytes, nor load the same weights twice under two ids: so a
name is a record pointing at a file, not a hard link. The record lives beside the files, so it
survives a restart and moves with MODELS_DIR, and a file lock keeps two workers (gunicorn) from
losing each other's writes.

A file with records is known by those names only; one without, by `<stem>:latest`. Deleting a
file's last name deletes the file, as Ollama frees a blob with its last manifest.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from slm_api.errors import APIError

log = logging.getLogger(__name__)

STORE = ".ollama-names.json"
_LOCK = ".ollama-names.lock"
MAX_NAMES = 10_000
MAX_STORE_BYTES = 4 * 1024**2
# Ollama's name grammar: host/namespace/model parts, then an optional tag. No "..", no empty
# part, no leading "/" or ".": a name never becomes a path, but it is listed and logged.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}(/[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}){0,3}"
                   r"(:[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127})?$")


def valid_name(name: str, param: str) -> str:
    """`name` as stored (`:latest` added when untagged), or a 400 that says what is allowed."""
    if len(name) > 512 or ".." in name or not _NAME.match(name):
        raise APIError(400, f"invalid model name {name[:100]!r}: use letters, digits, '_', '-', "
                       "'.', '/' between parts and an optional ':tag'", param=param)
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"


def _read(models_dir: Path) -> dict[str, str]:
    path = models_dir / STORE
    try:
        if path.stat().st_size > MAX_STORE_BYTES:
            raise ValueError(f"larger than {MAX_STORE_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}
    names = data.get("names") if isinstance(data, dict) else None
    if not isinstance(names, dict):
        return {}
    return {k: v for k, v in names.items() if isinstance(k, str) and isinstance(v, str)
            and v.endswith(".gguf") and "/" not in v and not v.startswith(".")}


def load(models_dir: Path) -> dict[str, str]:
    """Every recorded name -> the file name (in MODELS_DIR) it points at."""
    return _read(models_dir)


@contextmanager
def _locked(models_dir: Path) -> Iterator[None]:
    with (models_dir / _LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(models_dir: Path, change: Callable[[dict[str, str]], None]) -> dict[str, str]:
    """Read, `change` in place, write back atomically (temporary file, then rename)."""
    with _locked(models_dir):
        names = _read(models_dir)
        change(names)
        if len(names) > MAX_NAMES:
            raise APIError(400, f"at most {MAX_NAMES} model names can be recorded")
        tmp = models_dir / f"{STORE}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps({"names": names}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, models_dir / STORE)
        return names


def names_of(names: dict[str, str], filename: str) -> list[str]:
    """The names a file is known by: its records, else `<stem>:latest`."""
    recorded = sorted(n for n, f in names.items() if f == filename)
    return recorded or [f"{Path(filename).stem}:latest"]
