"""The scheduler's choices without a model: which sequence a request takes, what it keeps."""

from __future__ import annotations

import pytest

from slm_api.engine.slots import DONOR_MIN_GAIN, Placement, Slot, common_prefix, place
from slm_api.prompting.stops import partial_suffix

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`


@pytest.mark.parametrize(
    "a, b, n",
    [([], [1], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 2], [2, 1], 0),
     ([5, 6, 7, 8], [5, 6, 9, 8], 2)],
)
def test_common_prefix(a: list[int], b: list[int], n: int):
    assert common_prefix(a, b) == n


def slots(*cached: list[int], used: tuple[float, ...] = ()) -> list[Slot]:
    return [Slot(i, list(c), last_used=used[i] if used else float(i))
            for i, c in enumerate(cached)]


def test_a_prompt_nobody_has_seen_takes_the_least_recently_used_sequence():
    all_ = slots([1, 2], [3, 4], [5, 6], used=(5.0, 1.0, 3.0))
    assert place([9, 9, 9], all_, all_, reuse=True) == Placement(all_[1], 0)


def test_the_longest_shared_prefix_wins():
    all_ = slots([1, 2, 3, 4], [1, 2, 3, 9, 9], [1, 7])
    assert place([1, 2, 3, 4, 5], all_, all_, reuse=True) == Placement(all_[0], 4)


def test_a_tie_goes_to_the_least_recently_used():
    all_ = slots([1, 2, 8], [1, 2, 9], used=(4.0, 2.0))
    assert place([1, 2, 3], all_, all_, reuse=True) == Placement(all_[1], 2)


def test_without_reuse_nothing_is_kept():
    all_ = slots([1, 2, 3], [4], used=(1.0, 2.0))
    assert place([1, 2, 3], all_, all_, reuse=False) == Placement(all_[0], 0)


def test_a_busy_sequence_with_a_much_longer_prefix_donates_its_cells():
    prompt = list(range(100))
    busy, idle = slots(prompt[:60], prompt[:10])
    free = [idle]
    placement = place(prompt, free, [busy, idle], reuse=True)
    assert placement == Placement(idle, 60, busy)


def test_a_small_gain_is_not_worth_a_copy():
    prompt = list(range(100))
    busy, idle = slots(prompt[: 10 + DONOR_MIN_GAIN], prompt[:10])
    assert place(prompt, [idle], [busy, idle], reuse=True) == Placement(idle, 10)


@pytest.mark.parametrize(
    "text, tags, n",
    [("Hello <tool", ("<tool_call>",), 5), ("Hello", ("<tool_call>",), 0),
     ("ab<tool_call>", ("<tool_call>",), 0),  # a whole tag is not a partial one
     ("xx\nUs", ("\nUser:", "Usage"), 3), ("xx Us", ("\nUser:", "Usage"), 2), ("", ("a",), 0)],
)
def test_partial_suffix(text: str, tags: tuple[str, ...], n: int):
    assert partial_suffix(text, tags) == n
