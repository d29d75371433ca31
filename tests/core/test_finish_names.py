"""The engine's finish causes by each API family's name: one table (api/core/reply.py)."""

from __future__ import annotations

import pytest

from slm_api.api.core.reply import FINISH_NAMES, cut, finish_names, finish_reason
from slm_api.engine import FinishCause, Finished

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`

LIMITS = (FinishCause.MAX_TOKENS, FinishCause.CONTEXT_FULL, FinishCause.DEADLINE,
          FinishCause.DRAIN)


def ended(cause: FinishCause, stop: str | None = None) -> Finished:
    return Finished(cause, prompt_tokens=3, completion_tokens=2, stop_sequence=stop)


def test_every_cause_has_a_name_in_every_family():
    assert set(FINISH_NAMES) == set(FinishCause)


@pytest.mark.parametrize("cause", LIMITS)
def test_a_limit_is_a_cut_reply_in_every_family(cause):
    names = finish_names(ended(cause))
    assert (names.openai, names.anthropic, names.responses, names.ollama) == (
        "length", "max_tokens", "max_output_tokens", "length")
    assert cut(ended(cause)) and ended(cause).finish_reason == "length"
    # A call cut by a limit is no call to run: the cut wins.
    assert finish_names(ended(cause), called=True).openai == "length"


def test_the_model_ending_its_turn_or_a_stop_string_completes_the_reply():
    for cause in (FinishCause.STOP, FinishCause.STOP_SEQUENCE):
        names = finish_names(ended(cause, "END" if cause is FinishCause.STOP_SEQUENCE else None))
        assert names.openai == names.ollama == "stop" and names.responses is None
        assert not cut(ended(cause))
    assert finish_names(ended(FinishCause.STOP_SEQUENCE, "END")).anthropic == "stop_sequence"
    assert finish_names(ended(FinishCause.STOP)).anthropic == "end_turn"


def test_tool_calls_and_an_abort_keep_the_fields_valid():
    called = finish_names(ended(FinishCause.STOP), called=True)
    assert (called.openai, called.anthropic) == ("tool_calls", "tool_use")
    assert finish_reason(ended(FinishCause.ABORT)) == "stop"
    assert finish_reason(None) == "stop"
