"""The FIM prompt builder and the editor stop rules as pure code: the layout of llama.cpp's
`format_prompt_infill`, its cuts, and llama-server's n_indent / t_max_predict_ms."""

from __future__ import annotations

import pytest

from slm_api.prompting.infill import ExtraChunk, FimTokens, Window, infill_tokens, repo_context
from slm_api.prompting.infill_stop import InfillStopper

pytestmark = pytest.mark.fast

PRE, SUF, MID, REP, SEP, BOS = 1001, 1002, 1003, 1004, 1005, 1000
FULL = FimTokens(pre=PRE, suf=SUF, mid=MID, rep=REP, sep=SEP)
seen: list[tuple[str, str | None]] = []


def tok(text: str, field: str | None) -> list[int]:
    """One id per character: a cut by tokens is a cut by characters, easy to read."""
    seen.append((text, field))
    return [ord(c) for c in text]


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_prefix_suffix_middle_in_order_with_the_prompt_after_the_prefix():
    out = infill_tokens(FimTokens(pre=PRE, suf=SUF, mid=MID), tok, "ab", "cd", prompt="x")
    assert out == [PRE, *ids("ab"), *ids("x"), SUF, *ids("cd"), MID]


def test_bos_goes_between_the_extra_context_and_the_fim_prefix():
    fim = FimTokens(pre=PRE, suf=SUF, mid=MID, bos=BOS)
    out = infill_tokens(fim, tok, "a", "b", extra=[ExtraChunk("T", "f")])
    assert out == [*ids("\n\n--- snippet ---\n\n"), *ids("T"), BOS, PRE, *ids("a"), SUF,
                   *ids("b"), MID]


def test_the_repo_level_pattern_with_rep_and_sep():
    out = infill_tokens(FULL, tok, "p", "s", extra=[ExtraChunk("one", "a.py"),
                                                    ExtraChunk("two", "b.py")])
    assert out == [REP, *ids("myproject\n"), SEP, *ids("a.py\n"), *ids("one"),
                   SEP, *ids("b.py\n"), *ids("two"), SEP, *ids("filename\n"),
                   PRE, *ids("p"), SUF, *ids("s"), MID]


def test_spm_puts_the_suffix_first():
    out = infill_tokens(FimTokens(pre=PRE, suf=SUF, mid=MID), tok, "p", "s", spm=True)
    assert out == [SUF, *ids("s"), PRE, *ids("p"), MID]


def test_window_keeps_the_prefix_end_the_suffix_start_and_the_last_extra_tokens():
    # n_batch 16: prefix keeps 12, suffix 4 - (2 + 1) = 1; extra keeps 40 - 16 - 2*4 = 16.
    w = Window(n_batch=16, n_ctx=40, n_predict=4)
    out = infill_tokens(FULL, tok, "A" * 20 + "0123456789ab", "XYZ", prompt="m",
                        extra=[ExtraChunk("old" * 50, "x"), ExtraChunk("abc", "c.py")], window=w)
    extra = [SEP, *ids("c.py\n"), *ids("abc"), SEP, *ids("filename\n")]
    assert len(extra) == 19
    assert out == [*extra[-16:], PRE, *ids("0123456789ab"), *ids("m"), SUF, *ids("X"), MID]


def test_without_n_predict_the_prompt_still_leaves_a_token_to_generate():
    # llama.cpp's share would be 40 - 16 = 24 extra tokens beside a batch of 17: 41 > 40.
    w = Window(n_batch=16, n_ctx=40, n_predict=0)
    out = infill_tokens(FULL, tok, "A" * 30, "B" * 30, extra=[ExtraChunk("c" * 60, "x")],
                        window=w)
    assert len(out) == 39 and out[-1] == MID


def test_extra_files_beyond_the_window_are_never_tokenized():
    seen.clear()
    big = [ExtraChunk(f"file {i}", f"f{i}") for i in range(2000)]
    infill_tokens(FULL, tok, "p", "s", extra=big, window=Window(512, 1024, 0))
    assert len([t for t, f in seen if f == "extra"]) < 2 * 100  # ~50 files fill 512 tokens
    assert ("file 1999", "extra") in seen and ("file 0", "extra") not in seen


def test_client_text_is_tokenized_under_its_field_and_fixed_text_under_none():
    seen.clear()
    infill_tokens(FULL, tok, "p", "s", prompt="m", extra=[ExtraChunk("t", "n")])
    assert {f for _, f in seen} == {"prefix", "suffix", "prompt", "extra", None}


def test_a_model_without_fim_tokens_is_refused():
    with pytest.raises(ValueError, match="FIM_PRE, FIM_SUF, FIM_MID"):
        infill_tokens(FimTokens(rep=REP), tok, "a", "b")
    assert FimTokens(pre=1, suf=2).missing == ["FIM_MID"]


def test_repo_context_without_rep_sep_or_files_is_empty():
    assert repo_context(FimTokens(pre=PRE, suf=SUF, mid=MID), tok, []) == []


def test_n_indent_ends_at_a_less_indented_line_keeping_its_indentation():
    s = InfillStopper(n_indent=4)
    out = s.feed("x = 1\n    y = 2\n") + s.feed("  z = 3\n")
    assert out == "x = 1\n    y = 2\n  " and s.done


def test_n_indent_leaves_the_first_line_and_blank_lines_alone():
    s = InfillStopper(n_indent=1)
    assert s.feed("ret\n\n\tpass") == "ret\n\n\tpass" and not s.done  # a tab counts one
    s = InfillStopper(n_indent=2)
    assert s.feed("a\n\tb") == "a\n\t" and s.done


def test_t_max_predict_ms_ends_at_the_first_newline_after_the_time():
    now = [0.0]
    s = InfillStopper(t_max_predict_ms=100, clock=lambda: now[0])
    assert s.feed("a") == "a"
    now[0] = 0.05
    assert s.feed("b\n") == "b\n" and not s.done  # a newline within the time
    now[0] = 0.5
    assert s.feed("cd") == "cd" and not s.done  # over time, but no newline yet
    assert s.feed("e\nf") == "e\nf" and s.done
    assert s.feed("more") == ""
