"""A regex subset (JSON Schema `pattern`) compiled to a GBNF expression over JSON string content.

The expression matches the *encoded* string body (between the quotes), so characters that JSON
must escape (quote, backslash, control characters) appear in their escaped form.
Unanchored patterns mean "contains", as JSON Schema's `pattern` uses a regex search.
"""

from __future__ import annotations

import re

from .errors import SchemaError
from .gbnf import char_class, literal, normalize_ranges, repeat, subtract_ranges

# `{,n}` is no repetition in ECMA-262 (nor in RE2, which checks the output): literal text.
_BRACE = re.compile(r"\{([0-9]+)(,?)([0-9]*)\}")
MAX_CP = 0x10FFFF
# Repetition bounds above this are left unbounded (the post-generation check still applies).
MAX_BOUND = 1000

DIGIT = [(0x30, 0x39)]
WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE = [(0x09, 0x0D), (0x20, 0x20)]
_SHORT_ESC = {0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_JSON_SPECIAL = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]


def _negate(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return subtract_ranges([(0, MAX_CP)], normalize_ranges(ranges))


def json_chars(ranges: list[tuple[int, int]]) -> str:
    """GBNF for one JSON-encoded character whose decoded code point lies in `ranges`."""
    ranges = normalize_ranges(ranges)
    alts = []
    raw = subtract_ranges(ranges, _JSON_SPECIAL)
    if raw:
        alts.append(char_class(raw))
    inside = {cp for lo, hi in ranges for cp in range(lo, min(hi, 0x5C) + 1) if cp <= 0x5C}
    if 0x22 in inside:
        alts.append(literal('\\"'))
    if 0x5C in inside:
        alts.append(literal("\\\\"))
    controls = sorted(cp for cp in inside if cp < 0x20)
    if len(controls) == 32:
        alts.append('"\\\\" ([bfnrt] | "u00" [01] [0-9a-fA-F])')
    else:
        for cp in controls:
            alts.append(literal(_SHORT_ESC.get(cp, f"\\u{cp:04x}")))
    if not alts:
        raise SchemaError("pattern has a character class that matches nothing", param="pattern")
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


class _Parser:
    def __init__(self, src: str) -> None:
        self.s = src
        self.i = 0

    def fail(self, why: str) -> SchemaError:
        return SchemaError(f"pattern {self.s!r} is not supported: {why}", param="pattern")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def parse(self):
        node = self.alt()
        if self.i != len(self.s):
            raise self.fail(f"unbalanced ')' at {self.i}")
        return node

    def alt(self):
        branches = [self.seq()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.seq())
        return ("alt", branches)

    def seq(self):
        items = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            atom = self.quantifiers(atom)
            items.append(atom)
        return ("seq", items)

    def quantifiers(self, atom):
        while True:
            c = self.peek()
            if c in "*+?" and c:
                self.i += 1
                lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            elif c == "{" and (brace := self._brace()) is not None:
                lo, hi, self.i = brace
            else:
                return atom
            if atom[0] in ("bol", "eol"):
                raise self.fail("quantified anchor")
            if self.peek() in ("?", "+") and self.peek():
                self.i += 1  # lazy / possessive: same language
            atom = ("rep", atom, lo, hi)

    def _brace(self) -> tuple[int, int | None, int] | None:
        """(m, n, index after the `}`) of a `{m}` / `{m,}` / `{m,n}` at self.i, else None (a
        literal `{`). Matched in place: searching ahead for `}` made `a{a{a{...` quadratic."""
        m = _BRACE.match(self.s, self.i)
        if m is None:
            return None
        lo, comma, hi = m.groups()
        if max(len(lo), len(hi)) > 9:  # int() of 5,000 digits raises, of 4,000 is slow
            raise self.fail("a repetition count is too large")
        lo_n = int(lo)
        hi_n = int(hi) if hi else (None if comma else lo_n)
        if hi_n is not None and hi_n < lo_n:
            raise self.fail("repetition {m,n} with n < m")
        return lo_n, hi_n, m.end()

    def atom(self):
        c = self.peek()
        self.i += 1
        if c == "(":
            if self.peek() == "?":
                nxt = self.s[self.i : self.i + 3]
                if nxt.startswith("?:"):
                    self.i += 2
                elif nxt.startswith("?P<") or (nxt.startswith("?<") and nxt[2:3] not in "=!"):
                    self.i = self.s.index(">", self.i) + 1
                elif nxt[:2] in ("?=", "?!") or nxt in ("?<=", "?<!"):
                    raise self.fail("lookahead/lookbehind assertions")
                else:
                    raise self.fail(f"group construct '({nxt}'")
            inner = self.alt()
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.i += 1
            return inner
        if c == "[":
            return self.cls()
        if c == ".":
            return ("set", _negate([(0x0A, 0x0A)]))
        if c == "^":
            return ("bol",)
        if c == "$":
            return ("eol",)
        if c == "\\":
            return self.escape(in_class=False)
        if c in "*+?":
            raise self.fail(f"nothing to repeat at {self.i - 1}")
        if c == ")":
            raise self.fail("unbalanced ')'")
        return ("set", [(ord(c), ord(c))])

    def escape(self, in_class: bool):
        c = self.peek()
        if not c:
            raise self.fail("trailing backslash")
        self.i += 1
        classes = {"d": DIGIT, "w": WORD, "s": SPACE}
        if c in classes:
            return ("set", classes[c])
        if c.lower() in classes:
            return ("set", _negate(classes[c.lower()]))
        simple = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "0": 0x00}
        if c in simple:
            return ("set", [(simple[c], simple[c])])
        if c in "xu":
            width = 2 if c == "x" else 4
            digits = self.s[self.i : self.i + width]
            try:
                cp = int(digits, 16)
            except ValueError:
                raise self.fail(f"bad \\{c} escape") from None
            if len(digits) != width:
                raise self.fail(f"bad \\{c} escape")
            self.i += width
            return ("set", [(cp, cp)])
        if not in_class and c in "AZ":
            return ("bol",) if c == "A" else ("eol",)
        if c == "b" and in_class:
            return ("set", [(0x08, 0x08)])
        if c.isalnum():
            raise self.fail(f"escape \\{c} (word boundaries, backreferences, ...)")
        return ("set", [(ord(c), ord(c))])

    def cls(self):
        negate = False
        if self.peek() == "^":
            negate = True
            self.i += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            c = self.peek()
            if not c:
                raise self.fail("missing ']'")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            lo_set = self._class_atom()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi_set = self._class_atom()
                if len(lo_set) != 1 or len(hi_set) != 1 or lo_set[0][0] != lo_set[0][1]:
                    raise self.fail("bad character range")
                lo, hi = lo_set[0][0], hi_set[0][1]
                if hi_set[0][0] != hi or hi < lo:
                    raise self.fail("bad character range")
                ranges.append((lo, hi))
            else:
                ranges.extend(lo_set)
        ranges = normalize_ranges(ranges)
        return ("set", _negate(ranges) if negate else ranges)

    def _class_atom(self) -> list[tuple[int, int]]:
        c = self.peek()
        self.i += 1
        if c == "\\":
            return self.escape(in_class=True)[1]
        if c == "[" and self.peek() == ":":
            raise self.fail("POSIX classes")
        return [(ord(c), ord(c))]


def _emit(node) -> str:
    kind = node[0]
    if kind == "set":
        return json_chars(node[1])
    if kind == "seq":
        parts = [_emit(n) for n in node[1]]
        return " ".join(parts) if parts else '""'
    if kind == "alt":
        if len(node[1]) == 1:
            return "(" + _emit(node[1][0]) + ")"
        return "(" + " | ".join(_emit(b) for b in node[1]) + ")"
    if kind == "rep":
        _, inner, lo, hi = node
        if hi is not None and hi > MAX_BOUND:
            hi = None
        lo = min(lo, MAX_BOUND)
        return repeat(_emit(inner), lo, hi)
    raise SchemaError("pattern anchors (^, $) are only supported at the start/end", param="pattern")


def pattern_body(pattern: str, any_char: str) -> str:
    """GBNF for the string body of strings that `pattern` matches (by search semantics).

    `any_char` is the rule name of one arbitrary JSON string character.
    """
    top = _Parser(pattern).parse()
    alts = []
    for branch in top[1]:
        items = list(branch[1])
        start = bool(items) and items[0][0] == "bol"
        if start:
            items = items[1:]
        end = bool(items) and items[-1][0] == "eol"
        if end:
            items = items[:-1]
        parts = [] if start else [f"{any_char}*"]
        parts.append(_emit(("seq", items)))
        if not end:
            parts.append(f"{any_char}*")
        alts.append(" ".join(p for p in parts if p != '""') or '""')
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"
