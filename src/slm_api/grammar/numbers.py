"""Exact digit-range grammars for integers, and bounded grammars for numbers."""

from __future__ import annotations

import math

# Unbounded integers get at most this many digits: plenty for JSON, and a small model cannot
# run on forever emitting digits.
MAX_DIGITS = 18
FRAC = '"." [0-9]{1,15}'
EXP = "([eE] [-+]? [0-9]{1,3})"


def _same_len(lo: str, hi: str) -> str:
    """Decimal strings of len(lo) == len(hi) digits, lexicographically within [lo, hi]."""
    if not lo:
        return ""
    if lo == hi:
        return f'"{lo}"'
    if lo[0] == hi[0]:
        return f'"{lo[0]}" ' + _same_len(lo[1:], hi[1:])
    n = len(lo) - 1
    tail_any = f" [0-9]{{{n}}}" if n else ""
    alts = []
    first, last = int(lo[0]), int(hi[0])
    if lo[1:] != "0" * n:
        alts.append(f'"{lo[0]}" ({_same_len(lo[1:], "9" * n)})')
        first += 1
    tail = None
    if hi[1:] != "9" * n:
        tail = f'"{hi[0]}" ({_same_len("0" * n, hi[1:])})'
        last -= 1
    if first <= last:
        alts.append((f"[{first}-{last}]" if first < last else f'"{first}"') + tail_any)
    if tail:
        alts.append(tail)
    return "(" + " | ".join(alts) + ")"


def _decades(first: int, last: int) -> str:
    """The integers of `first` to `last` digits, all of them: one alternative, not one per
    length (300 lengths, one per alternative, expanded to 45,000 grammar elements)."""
    if last == 1:
        return "[1-9]"
    lo, hi = first - 1, last - 1
    return f"[1-9] [0-9]{{{lo}}}" if lo == hi else f"[1-9] [0-9]{{{lo},{hi}}}"


def _nonneg(lo: int, hi: int | None) -> list[str]:
    """Alternatives for the non-negative integers in [lo, hi] (hi None: up to MAX_DIGITS)."""
    out = []
    if hi is not None and hi >= 10**MAX_DIGITS:
        # Every integer of MAX_DIGITS digits fits under hi: stop there, as unbounded ranges do
        # (a subset, so the output still fits). Each digit of hi cost about as many grammar
        # elements as there are digits: a bound of 1e308 made 150,000.
        hi = None
    top_len = len(str(hi)) if hi is not None else MAX_DIGITS
    lo_len = len(str(lo))
    whole: list[int] = []  # digit counts whose every integer is in range, in a row
    for d in range(lo_len, top_len + 1):
        a = lo if d == lo_len else 10 ** (d - 1)
        if hi is None and d > lo_len:
            # Everything from here up is unconstrained: one alternative covers it.
            whole += [d, MAX_DIGITS]
            break
        b = hi if (hi is not None and d == top_len) else 10**d - 1
        if a > b:
            continue
        if a == 10 ** (d - 1) and b == 10**d - 1:
            whole.append(d)
            continue
        if whole:
            out.append(_decades(whole[0], whole[-1]))
            whole = []
        out.append(_same_len(str(a), str(b)))
    if whole:
        out.append(_decades(whole[0], whole[-1]))
    return out


def int_range(lo: int | None, hi: int | None) -> str:
    """GBNF for JSON integers (no leading zeros, no "-0") within [lo, hi] (None: unbounded)."""
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("empty range")
    alts = []
    if lo is None or lo < 0:
        # Negative part: "-" then magnitudes in [max(1, -hi), -lo].
        mag_lo = 1 if hi is None or hi >= 0 else -hi
        mag_hi = None if lo is None else -lo
        alts += [f'"-" {a}' for a in _nonneg(mag_lo, mag_hi)]
    if hi is None or hi >= 0:
        alts += _nonneg(max(lo or 0, 0), hi)
    return "(" + " | ".join(alts) + ")"


def int_bounds(schema: dict) -> tuple[int | None, int | None]:
    """Inclusive integer bounds from minimum/maximum/exclusive* (draft 4 booleans too)."""
    lo = hi = None
    if "minimum" in schema:
        lo = math.ceil(schema["minimum"])
        if schema.get("exclusiveMinimum") is True and lo == schema["minimum"]:
            lo += 1
    em = schema.get("exclusiveMinimum")
    if isinstance(em, (int, float)) and not isinstance(em, bool):
        v = math.floor(em) + 1
        lo = v if lo is None else max(lo, v)
    if "maximum" in schema:
        hi = math.floor(schema["maximum"])
        if schema.get("exclusiveMaximum") is True and hi == schema["maximum"]:
            hi -= 1
    ex = schema.get("exclusiveMaximum")
    if isinstance(ex, (int, float)) and not isinstance(ex, bool):
        v = math.ceil(ex) - 1
        hi = v if hi is None else min(hi, v)
    return lo, hi


def number_grammar(schema: dict) -> str:
    """JSON numbers; with bounds, the integer part is exact and the fraction is free.

    Values at the edge (e.g. 5.5 when maximum is 5) can slip through the grammar; the
    post-generation check catches them.
    """
    keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    if not any(k in schema for k in keys):
        return f'"-"? ("0" | [1-9] [0-9]{{0,{MAX_DIGITS - 1}}}) ({FRAC})? {EXP}?'
    lo, hi = _real_bounds(schema)
    alts = []
    ilo, ihi = int_bounds(schema)
    if ilo is None or ihi is None or ilo <= ihi:
        alts.append(int_range(ilo, ihi))
    # Non-integers t.f (t >= 0) lie in (t, t+1): it meets [lo, hi] when lo-1 < t < hi.
    pos_lo = 0 if lo is None else max(0, math.floor(lo))
    pos_hi = None if hi is None else math.ceil(hi) - 1
    if pos_hi is None or pos_lo <= pos_hi:
        alts.append(f"{int_range(pos_lo, pos_hi)} {FRAC}")
    # -t.f lies in (-t-1, -t): it meets [lo, hi] when -hi-1 < t < -lo.
    neg_lo = 0 if hi is None else max(0, math.floor(-hi))
    neg_hi = None if lo is None else math.ceil(-lo) - 1
    if neg_hi is None or neg_lo <= neg_hi:
        alts.append(f'"-" {int_range(neg_lo, neg_hi)} {FRAC}')
    if not alts:
        raise ValueError("empty range")
    return "(" + " | ".join(alts) + ")"


def _real_bounds(schema: dict) -> tuple[float | None, float | None]:
    lo = schema.get("minimum")
    em = schema.get("exclusiveMinimum")
    if isinstance(em, (int, float)) and not isinstance(em, bool):
        lo = em if lo is None else max(lo, em)
    hi = schema.get("maximum")
    ex = schema.get("exclusiveMaximum")
    if isinstance(ex, (int, float)) and not isinstance(ex, bool):
        hi = ex if hi is None else min(hi, ex)
    return lo, hi
