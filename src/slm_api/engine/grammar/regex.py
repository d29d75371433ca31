"""A JSON Schema `pattern` (a regex subset) as GBNF over the *JSON text* of a string.

The grammar matches the characters between the quotes as they appear in JSON, so a `"` in the
value is `\\"` in the text and control characters are escapes. Supported: anchors, groups
(capturing and `(?:...)`), alternation, classes with ranges and escapes, `.`, `\\d \\w \\s` and
their negations, quantifiers `? * + {m} {m,} {m,n}` (lazy forms read as greedy). Unanchored
patterns mean "contains". Lookarounds and backreferences are refused.
"""

from __future__ import annotations

from slm_api.engine.grammar.gbnf import class_char, literal

ANY_JSON_CHAR = "char"  # the primitive rule: one JSON string character, escapes included
_JSON_ESCAPES = {'"': '"\\\\\\""', "\\": '"\\\\\\\\"', "\n": '"\\\\n"', "\r": '"\\\\r"',
                 "\t": '"\\\\t"', "\b": '"\\\\b"', "\f": '"\\\\f"'}
_CLASS_ESCAPES = {
    "d": [("0", "9")],
    "w": [("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")],
    "s": [(" ", " "), ("\t", "\t"), ("\n", "\n"), ("\r", "\r"), ("\f", "\f"), ("\v", "\v")],
}
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v", "0": "\0"}


class PatternError(ValueError):
    pass


def _char_text(ch: str) -> str:
    """GBNF for one value character as it is written in JSON."""
    if ch in _JSON_ESCAPES:
        return _JSON_ESCAPES[ch]
    if ord(ch) < 0x20:
        return literal(f"\\u{ord(ch):04x}")
    return literal(ch)


def _ranges_gbnf(ranges: list[tuple[str, str]], negated: bool) -> str:
    """A character class over JSON text. Characters that JSON escapes (quote, backslash,
    controls) cannot sit in a plain [...] class; they become escape-sequence alternatives."""
    plain: list[str] = []
    escaped: list[str] = []
    for lo, hi in ranges:
        for special in ('"', "\\"):
            if lo <= special <= hi:
                escaped.append(special)
        if ord(lo) < 0x20:
            for code in range(ord(lo), min(ord(hi), 0x1F) + 1):
                escaped.append(chr(code))
            lo = chr(0x20)
            if lo > hi:
                continue
        plain.append(class_char(lo) if lo == hi else f"{class_char(lo)}-{class_char(hi)}")
    if negated:
        # Any JSON char except the listed ones; escapes only for quote/backslash not excluded.
        alts = [f'[^"\\\\\\x00-\\x1F{"".join(plain)}]']
        for special in ('"', "\\"):
            if special not in escaped:
                alts.append(_JSON_ESCAPES[special])
        return "( " + " | ".join(alts) + " )"
    alts = []
    if plain:
        alts.append("[" + "".join(plain) + "]")
    alts.extend(_char_text(c) for c in dict.fromkeys(escaped))
    if not alts:
        raise PatternError("empty character class")
    return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"


class _Parser:
    def __init__(self, pattern: str):
        self.p = pattern
        self.i = 0

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self) -> str:
        ch = self.p[self.i]
        self.i += 1
        return ch

    def alternation(self) -> str:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else "( " + " | ".join(branches) + " )"

    def sequence(self) -> str:
        items: list[str] = []
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            if atom is None:
                continue
            items.append(self.quantified(atom))
        return " ".join(items) if items else '""'

    def quantified(self, atom: str) -> str:
        ch = self.peek()
        if ch in ("?", "*", "+"):
            self.take()
            out = f"{atom}{ch}"
        elif ch == "{" and self._looks_like_bounds():
            self.take()
            end = self.p.index("}", self.i)
            spec = self.p[self.i:end]
            self.i = end + 1
            lo, _, hi = spec.partition(",")
            if "," not in spec:
                out = f"{atom}{{{int(lo)}}}"
            else:
                out = f"{atom}{{{int(lo or 0)},{hi.strip()}}}"
        else:
            return atom
        if self.peek() == "?":  # lazy: the language is the same
            self.take()
        if self.peek() in ("?", "*", "+"):
            raise PatternError("nested quantifier")
        return out

    def _looks_like_bounds(self) -> bool:
        end = self.p.find("}", self.i)
        spec = self.p[self.i + 1:end] if end > 0 else ""
        lo, _, hi = spec.partition(",")
        return end > 0 and lo.strip().isdigit() and (not hi.strip() or hi.strip().isdigit())

    def atom(self) -> str | None:
        ch = self.take()
        if ch == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise PatternError("lookarounds and named groups are not supported")
            inner = self.alternation()
            if self.peek() != ")":
                raise PatternError("unbalanced parenthesis")
            self.take()
            return f"( {inner} )"
        if ch == "[":
            return self.char_class()
        if ch == ".":
            return _ranges_gbnf([("\n", "\n")], negated=True)
        if ch == "\\":
            return self.escape()
        if ch in "^$":
            raise PatternError("anchors are only supported at the start and end")
        if ch in "*+?{":
            if ch == "{" and not self._looks_like_bounds():
                return _char_text(ch)
            raise PatternError(f"quantifier {ch!r} with nothing to repeat")
        if ch == ")":
            raise PatternError("unbalanced parenthesis")
        return _char_text(ch)

    def escape(self) -> str:
        if self.peek() is None:
            raise PatternError("pattern ends with a backslash")
        ch = self.take()
        if ch.lower() in _CLASS_ESCAPES:
            return _ranges_gbnf(_CLASS_ESCAPES[ch.lower()], negated=ch.isupper())
        if ch.isdigit() and ch != "0":
            raise PatternError("backreferences are not supported")
        if ch in "bB":
            raise PatternError("word boundaries are not supported")
        if ch == "u":
            code = self.p[self.i:self.i + 4]
            self.i += 4
            return _char_text(chr(int(code, 16)))
        return _char_text(_SIMPLE_ESCAPES.get(ch, ch))

    def class_item(self) -> str | list[tuple[str, str]]:
        ch = self.take()
        if ch == "\\":
            esc = self.take()
            if esc.lower() in _CLASS_ESCAPES and not esc.isupper():
                return _CLASS_ESCAPES[esc.lower()]
            if esc.lower() in _CLASS_ESCAPES:
                raise PatternError("negated class escapes inside [...] are not supported")
            return _SIMPLE_ESCAPES.get(esc, esc)
        return ch

    def char_class(self) -> str:
        negated = self.peek() == "^"
        if negated:
            self.take()
        ranges: list[tuple[str, str]] = []
        first = True
        while True:
            if self.peek() is None:
                raise PatternError("unterminated character class")
            if self.peek() == "]" and not first:
                self.take()
                break
            first = False
            item = self.class_item()
            if isinstance(item, list):
                ranges.extend(item)
                continue
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.take()
                hi = self.class_item()
                if isinstance(hi, list) or hi < item:
                    raise PatternError("bad range in character class")
                ranges.append((item, hi))
            else:
                ranges.append((item, item))
        return _ranges_gbnf(ranges, negated)


def pattern_to_gbnf(pattern: str) -> str:
    """GBNF for the JSON text between the quotes of a string that matches `pattern`
    (re.search semantics: unanchored ends may have any characters)."""
    body = pattern
    anchored_start = body.startswith("^")
    if anchored_start:
        body = body[1:]
    anchored_end = body.endswith("$") and not body.endswith("\\$")
    if anchored_end:
        body = body[:-1]
    parser = _Parser(body)
    expr = parser.alternation()
    if parser.i != len(body):
        raise PatternError("unbalanced parenthesis")
    parts = []
    if not anchored_start:
        parts.append(f"{ANY_JSON_CHAR}*")
    parts.append(f"( {expr} )")
    if not anchored_end:
        parts.append(f"{ANY_JSON_CHAR}*")
    return " ".join(parts)
