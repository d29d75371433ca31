"""When an editor's completion should end, besides tokens and stop strings: llama-server's
`n_indent` (a later line indented less than the cursor's column leaves the block being
completed) and `t_max_predict_ms` (past that time the completion ends at the next newline, so
an editor gets whole lines within its latency budget). Pure: the clock comes in as a function.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class InfillStopper:
    """Feed it the generated text piece by piece; it returns what may go out, and `done` turns
    true once the completion must end (the caller aborts the generation then)."""

    def __init__(self, n_indent: int = 0, t_max_predict_ms: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        self.n_indent = n_indent
        self.t_max_s = t_max_predict_ms / 1000.0
        self._clock = clock
        self._started: float | None = None
        self.done = False
        self.seen_newline = False
        self._indent: int | None = None  # spaces so far at the start of a line after the first

    def feed(self, text: str) -> str:
        if self.done or not text:
            return ""
        if self._started is None:
            # As llama.cpp's t_gen_ms: generation time, from the first token on.
            self._started = self._clock()
        out = self._cut_by_indent(text)
        if "\n" in out and self.t_max_s > 0 and self._clock() - self._started > self.t_max_s:
            self.done = True
        if "\n" in out:
            self.seen_newline = True
        return out

    def _cut_by_indent(self, text: str) -> str:
        if self.n_indent <= 0:
            return text
        for i, ch in enumerate(text):
            if ch == "\n":
                self._indent = 0  # a new line starts: count its indentation
            elif self._indent is not None:
                if ch in " \t":
                    self._indent += 1
                    continue
                if self._indent < self.n_indent:
                    # The line starts less indented than the cursor: the block has ended. Its
                    # indentation stays, its text goes (as llama-server cuts it).
                    self.done = True
                    return text[:i]
                self._indent = None  # indented enough: the rest of this line is free
        return text
