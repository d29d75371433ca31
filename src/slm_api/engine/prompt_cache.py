"""The disk side of the prompt cache (PROMPT_CACHE=disk): evaluated prefixes that survive a
restart.

A sequence's KV state is saved after a request over a long prompt (and by /restore_cache), next
to the token list it encodes and the logits after its prompt's last token. After a restart, a
request whose prompt starts with a saved token list loads that state instead of evaluating the
prefix again; one whose prompt is exactly the saved prompt also starts from the saved logits,
so it answers as the first request did. Files are kept per model file and the oldest are
deleted once the folder is over CACHE_SIZE_BYTES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
from pathlib import Path

import numpy as np

from slm_api.engine.slots import EndLogits, common_prefix

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
        self._ends: dict[str, int] = {}  # entry -> the prompt length its saved logits follow
        for meta in folder.glob("*.json"):
            try:
                entry = json.loads(meta.read_text())
                self._entries[meta.stem] = entry["tokens"]
            except (OSError, ValueError, KeyError):
                continue
            if isinstance(entry.get("logits_after"), int):
                self._ends[meta.stem] = entry["logits_after"]

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

    def end(self, key: str) -> EndLogits | None:
        """The logits saved after the prompt of entry `key`, if any were."""
        with self._lock:
            n = self._ends.get(key)
        if n is None:
            return None
        try:
            row = np.fromfile(self.folder / f"{key}.logits", dtype=np.float32)
        except (OSError, ValueError):
            return None
        return EndLogits(n, row)

    def save(self, tokens: list[int], state: bytes, end: EndLogits | None = None) -> None:
        """Write in a background thread: the decode loop must not wait on the disk."""
        threading.Thread(target=self._write, args=(list(tokens), state, end),
                         daemon=True).start()

    def _write(self, tokens: list[int], state: bytes, end: EndLogits | None) -> None:
        key = _key(tokens)
        meta: dict[str, object] = {"tokens": tokens}
        try:
            self._replace(f"{key}.state", state)
            if end is not None:
                self._replace(f"{key}.logits", end.row.astype(np.float32).tobytes())
                meta["logits_after"] = end.n
            # Written last: an entry is listed only once its files are whole.
            self._replace(f"{key}.json", json.dumps(meta).encode())
        except OSError as exc:
            log.warning("prompt cache: could not save %s: %s", key, exc)
            return
        with self._lock:
            self._entries[key] = tokens
            if end is not None:
                self._ends[key] = end.n
        self._evict()

    def _replace(self, name: str, data: bytes) -> None:
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / name)

    def _evict(self) -> None:
        files = sorted(self.folder.glob("*.state"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and total > self.cap:
            victim = files.pop(0)
            total -= victim.stat().st_size
            with self._lock:
                self._entries.pop(victim.stem, None)
                self._ends.pop(victim.stem, None)
            victim.with_suffix(".json").unlink(missing_ok=True)
            victim.unlink(missing_ok=True)
            victim.with_suffix(".logits").unlink(missing_ok=True)
