"""Prompt-lookup drafts, without a model: what follows the output's tail in the prompt."""

import pytest

from slm_api.engine.lookup import PromptLookup, Spelling

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

PROMPT = [5, 6, 7, 8, 9, 1, 2, 3, 7, 8, 4, 4]


def test_the_longest_matching_tail_picks_the_copy() -> None:
    lookup = PromptLookup(PROMPT)
    lookup.limit = 8
    # [7, 8] occurs twice; the tail [6, 7, 8] only once, before 9.
    assert lookup.draft([6, 7, 8], 3) == [9, 1, 2]
    # Two tokens of tail: the latest occurrence, nearest the output.
    assert lookup.draft([0, 7, 8], 3) == [4, 4]
    assert lookup.draft([0, 0, 2], 2) == [3, 7]


def test_no_match_and_no_room_guess_nothing() -> None:
    lookup = PromptLookup(PROMPT)
    lookup.limit = 8
    assert lookup.draft([42], 4) == []
    assert lookup.draft([6], 0) == []
    assert lookup.draft([4], 4) == [4]  # the prompt's end: nothing beyond it


def test_the_guess_length_follows_how_guesses_fared() -> None:
    lookup = PromptLookup(PROMPT)
    assert lookup.draft([5], 8) == [6]  # a new request guesses one token
    lookup.judge(1, 1)
    assert lookup.draft([5], 8) == [6, 7]
    lookup.judge(2, 2)
    lookup.judge(4, 4)
    assert len(lookup.draft([5], 8)) == 8  # doubled while every guess was right
    lookup.judge(8, 3)
    assert lookup.draft([5], 8) == [6, 7, 8, 9]  # back to just past the agreed ones
    lookup.judge(4, 0)
    assert lookup.draft([5], 8) == []  # an outright miss pauses a step (see below)
    assert lookup.draft([5], 8) == [6]


def test_outright_misses_pause_drafting_for_longer_each_time() -> None:
    lookup = PromptLookup(PROMPT)
    assert lookup.draft([5], 8) == [6]
    lookup.judge(1, 0)
    assert lookup.draft([5], 8) == []  # one step paused
    assert lookup.draft([5], 8) == [6]
    lookup.judge(1, 0)
    assert [lookup.draft([5], 8) for _ in range(3)] == [[], [], [6]]  # two steps paused
    lookup.judge(1, 1)  # a guess the model took: no more pauses
    assert lookup.draft([5], 8) == [6, 7]
    lookup.judge(2, 0)
    assert lookup.draft([5], 8) == []
    assert lookup.draft([5], 8) == [6]


VOCAB = ["Name", ":", " Alice", " Martin", ".", '"', "Alice", " ", "a", "b"]


def _tokenize(text: str) -> list[int]:
    """Longest match first over VOCAB, like a BPE vocabulary's merges would give here."""
    out, i = [], 0
    while i < len(text):
        best = max((t for t, s in enumerate(VOCAB) if text.startswith(s, i)),
                   key=lambda t: len(VOCAB[t]))
        out.append(best)
        i += len(VOCAB[best])
    return out


SPELLING = Spelling(lambda t: VOCAB[t].encode(), _tokenize)


def test_drafts_match_text_where_the_copy_is_spelt_with_other_tokens() -> None:
    prompt = _tokenize("Name: Alice Martin. ab")
    tail = [5, 6]  # the output so far ends `"Alice`: no-space "Alice" is not in the prompt
    assert PromptLookup(prompt).draft(tail, 1) == []  # by token ids, nothing is found
    lookup = PromptLookup(prompt, SPELLING)
    lookup.limit = 8
    assert [VOCAB[t] for t in lookup.draft(tail, 2)] == [" Martin", "."]
    # Up to the prompt's end; a guess that could be cut mid-word is left out elsewhere.
    assert [VOCAB[t] for t in lookup.draft(tail, 8)] == [" Martin", ".", " ", "a", "b"]
    assert lookup.draft([8, 8, 8, 8], 4) == []  # "aaaa" is nowhere in the prompt
