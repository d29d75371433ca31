"""Prompt-lookup drafts: guesses of the next tokens, copied from the request's own prompt.

Extraction, summaries and code edits copy long runs of their input. Where the last few tokens
of the output also occur in the prompt, the tokens that followed them there are a cheap guess
of what comes next. The scheduler decodes the guesses together with the sampled token and keeps
the ones the model would have produced anyway (see Scheduler._sample), so the output is the one
plain decoding gives; a good guess saves a whole decode step per token. Pure: no llama.cpp.
"""

from __future__ import annotations

from collections.abc import Sequence

# Longest and shortest output tail looked up. A single token is enough to find a copy (in JSON
# a value's first token rarely matches the document's spelling of the run before it), but it is
# looked up only when no longer tail matches.
MAX_NGRAM = 3
MIN_NGRAM = 1
# Longest pause of drafting, in steps, after repeated outright misses.
MAX_PAUSE = 64


class PromptLookup:
    """Where each short run of the prompt was last seen, and what followed it."""

    def __init__(self, prompt: Sequence[int]) -> None:
        self._prompt = list(prompt)
        # How many tokens to guess next: each rejected guess costs a row of a decode (on two
        # CPU cores a decode of 2 tokens takes 1.85x one of 1), so the length follows how the
        # last guesses fared (doubling while all were right, back to just past the agreed ones
        # after a miss), and after guesses the model refused outright, drafting pauses for a
        # number of steps that doubles with each such miss: free text costs next to nothing.
        self.limit = 1
        self._pause = 0  # steps to skip after the last outright miss
        self._skip = 0  # steps still skipped
        self._follow: dict[tuple[int, ...], int] = {}
        for n in range(MIN_NGRAM, MAX_NGRAM + 1):
            for end in range(n, len(self._prompt)):
                # The latest occurrence wins: it is the nearest context to the output.
                self._follow[tuple(self._prompt[end - n:end])] = end

    def draft(self, tail: Sequence[int], limit: int) -> list[int]:
        """Up to `limit` (and this request's current guess length) tokens that followed the
        longest suffix of `tail` found in the prompt; [] when no suffix occurs there."""
        limit = min(limit, self.limit)
        if self._skip:
            self._skip -= 1
            return []
        if limit <= 0:
            return []
        for n in range(min(MAX_NGRAM, len(tail)), MIN_NGRAM - 1, -1):
            at = self._follow.get(tuple(tail[len(tail) - n:]))
            if at is not None:
                return self._prompt[at:at + limit]
        return []

    def judge(self, drafted: int, accepted: int) -> None:
        """Set the next guess length from how the last guess of `drafted` tokens fared."""
        self.limit = 2 * drafted if accepted == drafted else accepted + 1
        if accepted:
            self._pause = 0
        else:
            self._pause = min(2 * self._pause or 1, MAX_PAUSE)
            self._skip = self._pause
