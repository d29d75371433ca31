"""The disk side of the prompt cache (PROMPT_CACHE=disk): evaluated prefixes that survive a
restart.

A sequence's KV state is saved after a request over a long prompt (and by /restore_cache), next
to the token list it encodes. After a restart, a request whose prompt starts with a saved token
list loads that state instead of evaluating the prefix again. Files are kept per model file and
the oldest are deleted once the folder is over CACHE_SIZE_BYTES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
from pathlib import Path

from slm_api.engine.slots import common_prefix

log = logging.getLogger(__name__)

MIN_TOKENS = 128  # shorter prompts are cheaper to evaluate than to load


def _key(tokens: list[int]) -> str:
    return hashlib.sha256(struct.pack(f"<{len(tokens)}i", *tokens)).hexdigest()[:32]


class DiskPromptCache:
    def __init__(self, folder: Path, cap_bytes: int):
        self.folder = folder
        self.cap = cap_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, list[int]] = {}
        for meta in folder.glob("*.json"):
            try:
                self._entries[meta.stem] = json.loads(meta.read_text())["tokens"]
            except (OSError, ValueError, KeyError):
                continue

    def best(self, prompt: list[int]) -> tuple[str | None, int]:
        """The saved entry sharing the longest prefix with `prompt`, and that length."""
        best_key, best_n = None, 0
        with self._lock:
            for key, tokens in self._entries.items():
                n = common_prefix(tokens, prompt)
                if n > best_n:
                    best_key, best_n = key, n
        return best_key, best_n

    def tokens(self, key: str) -> list[int]:
        with self._lock:
            return list(self._entries[key])

    def read(self, key: str) -> bytes | None:
        try:
            return (self.folder / f"{key}.state").read_bytes()
        except OSError:
            return None

    def save(self, tokens: list[int], state: bytes) -> None:
        """Write in a background thread: the decode loop must not wait on the disk."""
        threading.Thread(target=self._write, args=(list(tokens), state), daemon=True).start()

    def _write(self, tokens: list[int], state: bytes) -> None:
        key = _key(tokens)
        try:
            tmp = self.folder / f".{key}.tmp"
            tmp.write_bytes(state)
            os.replace(tmp, self.folder / f"{key}.state")
            (self.folder / f"{key}.json").write_text(json.dumps({"tokens": tokens}))
        except OSError as exc:
            log.warning("prompt cache: could not save %s: %s", key, exc)
            return
        with self._lock:
            self._entries[key] = tokens
        self._evict()

    def _evict(self) -> None:
        files = sorted(self.folder.glob("*.state"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and total > self.cap:
            victim = files.pop(0)
            total -= victim.stat().st_size
            with self._lock:
                self._entries.pop(victim.stem, None)
            victim.unlink(missing_ok=True)
            victim.with_suffix(".json").unlink(missing_ok=True)
