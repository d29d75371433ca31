"""Turning sampled tokens into text a client may see: whole UTF-8 characters only, and nothing
that could still turn out to be the start of a stop string."""

from __future__ import annotations

import codecs
from collections.abc import Iterable


def partial_suffix(text: str, tags: Iterable[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `tags`: how much
    to hold back while it could still become that tag (a stop string, `<tool_call>`)."""
    best = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), best, -1):
            if text.endswith(tag[:n]):
                best = n
                break
    return best


class TextAssembler:
    def __init__(self, stops: tuple[str, ...]):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # which stop string ended the text (Anthropic says)

    def feed(self, piece: bytes) -> str:
        """Add a token's bytes; return the text now safe to emit. Sets `stopped` when a stop
        string appeared (the stop string and anything after it are dropped)."""
        self._held += self._decoder.decode(piece)
        if not self._stops:
            out, self._held = self._held, ""
            return out
        found = [(i, s) for s in self._stops if (i := self._held.find(s)) >= 0]
        if found:
            first, self.matched = min(found, key=lambda f: f[0])
            out, self._held = self._held[:first], ""
            self.stopped = True
            return out
        keep = partial_suffix(self._held, self._stops)
        cut = len(self._held) - keep
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def flush(self) -> str:
        """Whatever is held back, at the end of a generation that did not stop on a string."""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out
