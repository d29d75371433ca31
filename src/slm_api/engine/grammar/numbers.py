"""Exact grammars for integers within bounds (minimum, maximum, exclusive forms)."""

from __future__ import annotations

import math

MAX_DIGITS = 18  # JSON integers past this are not worth a grammar; bounds beyond are open


def _digit(lo: int, hi: int) -> str:
    return f"[{lo}]" if lo == hi else f"[{lo}-{hi}]"


def _same_length(lo: str, hi: str) -> list[str]:
    """Alternatives matching decimal strings of len(lo) digits between lo and hi inclusive."""
    if lo == hi:
        return [f'"{lo}"']
    if len(lo) == 1:
        return [_digit(int(lo), int(hi))]
    if lo[0] == hi[0]:
        return [f'"{lo[0]}" ( {" | ".join(_same_length(lo[1:], hi[1:]))} )']
    out = []
    rest = len(lo) - 1
    # lo[0] followed by anything >= lo[1:]
    out.append(f'"{lo[0]}" ( {" | ".join(_same_length(lo[1:], "9" * rest))} )')
    if int(hi[0]) - int(lo[0]) > 1:
        out.append(f"{_digit(int(lo[0]) + 1, int(hi[0]) - 1)} [0-9]{{{rest}}}")
    out.append(f'"{hi[0]}" ( {" | ".join(_same_length("0" * rest, hi[1:]))} )')
    return out


def _non_negative(lo: int, hi: int | None) -> str:
    """Canonical decimal (no leading zeros) for lo <= n <= hi; hi None means unbounded."""
    alts: list[str] = []
    if hi is None:
        width = len(str(lo))
        alts.extend(_same_length(str(lo), "9" * width))
        alts.append(f"[1-9] [0-9]{{{width},{MAX_DIGITS - 1}}}")
        return " | ".join(alts)
    for width in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (width - 1) if width > 1 else 0)
        b = min(hi, 10**width - 1)
        if a <= b:
            alts.extend(_same_length(str(a), str(b)))
    return " | ".join(alts)


def integer_range(lo: float | None, hi: float | None) -> str:
    """GBNF for the JSON integers n with lo <= n <= hi (None: unbounded on that side)."""
    lo_i = None if lo is None else math.ceil(lo)
    hi_i = None if hi is None else math.floor(hi)
    if lo_i is not None and hi_i is not None and lo_i > hi_i:
        raise ValueError(f"no integer lies between {lo} and {hi}")
    parts: list[str] = []
    # Non-negative side.
    if hi_i is None or hi_i >= 0:
        parts.append(_non_negative(max(lo_i or 0, 0), hi_i))
    # Negative side, as "-" followed by the magnitude range.
    if lo_i is None or lo_i < 0:
        mag_lo = max(1, -(hi_i if hi_i is not None and hi_i < 0 else -1))
        mag_hi = None if lo_i is None else -lo_i
        parts.append(f'"-" ( {_non_negative(mag_lo, mag_hi)} )')
    return "( " + " | ".join(f"( {p} )" for p in parts) + " )"
