"""Client-given regular expressions (JSON Schema `pattern`, `patternProperties`), matched in
linear time.

Python's `re` backtracks: `^(a+)+$` against 25 a's and a `!` ran for a second with the GIL
held (the whole server stalled, /health included) and each extra character doubled it, and no
timeout can interrupt it. RE2 (google-re2) runs in time linear in the text, refuses what it
cannot run that way (backreferences, lookaround: the grammar converter refuses them anyway) and
bounds the compiled program: a repetition over 1,000, nested counts whose product passes 1,000
and programs over MAX_PROGRAM_BYTES are refused when the schema is checked.

ECMA-262 spellings RE2 lacks are rewritten first: `\\uXXXX` is `\\x{XXXX}`. `\\d`, `\\w` and `$`
already mean what ECMA-262 (and the grammar converter) means: ASCII digits and word characters,
the very end of the text.
"""

from __future__ import annotations

from functools import lru_cache

import re2

from .errors import SchemaError

# RE2's memory budget for one compiled pattern (its own default is 8 MiB): enough for any
# pattern the grammar converter can honour, small enough that compiling stays in milliseconds.
MAX_PROGRAM_BYTES = 2 << 20

PatternError = re2.error
# RE2 reads UTF-8, which has no lone surrogates; JSON text may hold them ("\ud800"). Each
# becomes U+FFFD: still one character, so `.` and lengths keep their meaning.
_SURROGATES = {cp: 0xFFFD for cp in range(0xD800, 0xE000)}


def _utf8_safe(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.translate(_SURROGATES)
    return text


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False  # a refused pattern is the client's 400, not a server log line
    return options


def _to_re2(pattern: str) -> str:
    """`pattern` with ECMA-262's escapes RE2 lacks rewritten: `\\uXXXX` becomes `\\x{XXXX}`."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c != "\\" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = pattern[i + 1]
        hexes = pattern[i + 2 : i + 6]
        if nxt == "u" and len(hexes) == 4 and all(h in "0123456789abcdefABCDEF" for h in hexes):
            out.append(f"\\x{{{hexes}}}")
            i += 6
        elif nxt == "Z":  # Python's end of text, which the converter honours; RE2 spells it \z
            out.append("\\z")
            i += 2
        else:
            out.append(c + nxt)
            i += 2
    return "".join(out)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The linear-time matcher of a client's pattern; raises PatternError (re2.error) when
    RE2 cannot run it in linear time and bounded memory."""
    return re2.compile(_to_re2(_utf8_safe(pattern)), _options())


def why_refused(pattern: str) -> str | None:
    """None when `pattern` compiles, else why not (for the client's 400)."""
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return refusal(exc)
    return None


def refusal(exc: Exception) -> str:
    """RE2's reason for refusing a pattern, as a sentence for the client."""
    reason = exc.args[0] if exc.args else exc
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return f"not a pattern RE2 can match in linear time: {text}"


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (JSON Schema's `pattern` semantics), in time
    linear in `text`. A pattern RE2 refuses is the client's error (SchemaError, a 400)."""
    try:
        matcher = compile_pattern(pattern)
    except PatternError:
        raise SchemaError(f"pattern {pattern!r} is refused: {why_refused(pattern)}",
                          param="pattern") from None
    return matcher.search(_utf8_safe(text)) is not None
