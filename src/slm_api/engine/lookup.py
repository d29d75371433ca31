"""Prompt-lookup drafts: guesses of the next tokens, copied from the request's own prompt.

Extraction, summaries and code edits copy long runs of their input. Where the end of the
output also occurs in the prompt, what followed it there is a cheap guess of what comes next:
matched on text when the vocabulary's spelling is given (the server's case), else on token
ids. The scheduler decodes the guesses together with the sampled token and keeps the ones the
model would have produced anyway (see Committer.commit), so the output is the one plain
decoding gives; a good guess saves a whole decode step per token. Pure: no llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Longest and shortest output tail looked up. A single token is enough to find a copy (in JSON
# a value's first token rarely matches the document's spelling of the run before it), but it is
# looked up only when no longer tail matches.
MAX_NGRAM = 3
MIN_NGRAM = 1
# The same in characters, when drafts are matched on text (see Spelling).
MAX_CHARS = 24
MIN_CHARS = 3
TAIL_TOKENS = 8  # output tokens whose text is matched
# Longest pause of drafting, in steps, after repeated outright misses.
MAX_PAUSE = 64


@dataclass(frozen=True)
class Spelling:
    """A vocabulary's text: each token's bytes, and the tokens of a text (no special tokens).
    With it, drafts are matched on text rather than on token ids: a copied value is often
    spelt with other tokens than in the prompt (JSON's `"Alice` against the document's
    ` Alice`), so only its text is found there."""

    piece: Callable[[int], bytes]
    tokenize: Callable[[str], list[int]]

    def text(self, tokens: Sequence[int]) -> str:
        return b"".join(map(self.piece, tokens)).decode("utf-8", errors="ignore")


class PromptLookup:
    """Where each short run of the prompt was last seen, and what followed it."""

    def __init__(self, prompt: Sequence[int], spelling: Spelling | None = None) -> None:
        self._prompt = list(prompt)
        self._spelling = spelling
        self._text = spelling.text(self._prompt) if spelling is not None else ""
        # How many tokens to guess next: each rejected guess costs a row of a decode (on two
        # CPU cores a decode of 2 tokens takes 1.85x one of 1), so the length follows how the
        # last guesses fared (doubling while all were right, back to just past the agreed ones
        # after a miss), and after guesses the model refused outright, drafting pauses for a
        # number of steps that doubles with each such miss: free text costs next to nothing.
        self.limit = 1
        self._pause = 0  # steps to skip after the last outright miss
        self._skip = 0  # steps still skipped
        self._follow: dict[tuple[int, ...], int] = {}  # token n-grams: without a spelling
        for n in range(MIN_NGRAM, MAX_NGRAM + 1) if spelling is None else ():
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
        if self._spelling is not None:
            return self._draft_text(tail, limit)
        for n in range(min(MAX_NGRAM, len(tail)), MIN_NGRAM - 1, -1):
            at = self._follow.get(tuple(tail[len(tail) - n:]))
            if at is not None:
                return self._prompt[at:at + limit]
        return []

    def _draft_text(self, tail: Sequence[int], limit: int) -> list[int]:
        """The tokens of the prompt's text after the longest end of the output's text found
        there (its latest occurrence)."""
        assert self._spelling is not None
        said = self._spelling.text(tail[-TAIL_TOKENS:])
        for n in range(min(MAX_CHARS, len(said)), MIN_CHARS - 1, -1):
            at = self._text.rfind(said[-n:])
            if at < 0:
                continue
            # Enough text for `limit` tokens and one more.
            follow = self._text[at + n:at + n + 8 * (limit + 1)]
            tokens = self._spelling.tokenize(follow)
            if self._spelling.text(tokens) != follow:
                return []  # a tokenizer that adds a leading space: no exact spelling
            # The last token may be cut mid-word, unless the prompt ends there.
            whole = at + n + len(follow) == len(self._text)
            return tokens[:limit] if whole or len(tokens) > limit else tokens[:-1]
        return []

    def judge(self, drafted: int, accepted: int) -> None:
        """Set the next guess length from how the last guess of `drafted` tokens fared."""
        self.limit = 2 * drafted if accepted == drafted else accepted + 1
        if accepted:
            self._pause = 0
        else:
            self._pause = min(2 * self._pause or 1, MAX_PAUSE)
            self._skip = self._pause
