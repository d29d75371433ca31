"""A GBNF recognizer in pure Python: where a partial output stands in its grammar, and the
shortest text that completes it.

llama.cpp's grammar sampler says which tokens may come next, but not how far the output is
from a valid end. Budget-aware decoding needs exactly that, so this module runs the same
grammar (the text `schema_to_gbnf` produced) the way llama.cpp does: a set of pushdown stacks,
each a path through the rules, advanced one character at a time. Each stack knows the cheapest
way to finish (precomputed shortest expansions of every rule suffix), so the shortest valid
completion of any prefix is a minimum over the live stacks.

Grammars from `schema_to_gbnf` have no left recursion; a stack deeper than MAX_DEPTH is
dropped rather than followed, so a hostile grammar cannot hang the recognizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from .limits import MAX_REPEATS

MAX_DEPTH = 256
_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}
# Characters preferred when a class must be filled (short, tokenizer-friendly).
_PREFERRED = "a10A -_.x"

Frame = tuple[int, int]  # (alternative id, position in it)
Stack = tuple[Frame, ...]


class GrammarSyntaxError(ValueError):
    pass


class GrammarTooLarge(GrammarSyntaxError):
    """The grammar's repetitions expand past the bound the parser was given."""


@dataclass(frozen=True)
class CharClass:
    ranges: tuple[tuple[int, int], ...]
    negated: bool

    def matches(self, cp: int) -> bool:
        inside = any(lo <= cp <= hi for lo, hi in self.ranges)
        return inside != self.negated

    def cheapest(self) -> str:
        for ch in _PREFERRED:
            if self.matches(ord(ch)):
                return ch
        if not self.negated:
            return chr(self.ranges[0][0])
        cp = 0x20
        while not self.matches(cp):
            cp += 1
        return chr(cp)


class _Parser:
    """GBNF text (llama.cpp's syntax) to rules of alternatives of elements. An element is an int
    (a rule id) or a CharClass; groups and repetitions become synthetic rules, as llama.cpp
    does it."""

    def __init__(self, text: str, max_repeats: int | None) -> None:
        self.s = text
        self.i = 0
        # `x{m,n}` becomes m copies and n - m nested options, as llama.cpp expands it: the sum
        # over the grammar is what parsing and every later pass cost, so it is bounded.
        self.max_repeats = max_repeats
        self.repeats_left = math.inf if max_repeats is None else max_repeats
        self.names: dict[str, int] = {}
        self.rules: list[list[tuple[object, ...]] | None] = []

    def rule_id(self, name: str) -> int:
        if name not in self.names:
            self.names[name] = len(self.rules)
            self.rules.append(None)
        return self.names[name]

    def new_rule(self, alts: list[tuple[object, ...]]) -> int:
        self.rules.append(alts)
        return len(self.rules) - 1

    def ws(self, newlines: bool) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == "#":
                while self.i < len(s) and s[self.i] not in "\r\n":
                    self.i += 1
            elif c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            else:
                return

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] in "-_"):
            self.i += 1
        if start == self.i:
            raise GrammarSyntaxError(f"expected a name at {start}")
        return self.s[start:self.i]

    def parse(self) -> list[list[tuple[object, ...]]]:
        self.ws(True)
        while self.i < len(self.s):
            name = self.name()
            self.ws(False)
            if not self.s.startswith("::=", self.i):
                raise GrammarSyntaxError(f"expected ::= after {name!r}")
            self.i += 3
            self.ws(True)
            rid = self.rule_id(name)
            self.rules[rid] = self.alternatives(nested=False)
            self.ws(True)
        missing = [n for n, r in self.names.items() if self.rules[r] is None]
        if missing:
            raise GrammarSyntaxError(f"undefined rules: {', '.join(missing)}")
        return self.rules  # type: ignore[return-value]

    def alternatives(self, nested: bool) -> list[tuple[object, ...]]:
        alts = [self.sequence(nested)]
        while self.i < len(self.s) and self.s[self.i] == "|":
            self.i += 1
            self.ws(True)
            alts.append(self.sequence(nested))
        return alts

    def sequence(self, nested: bool) -> tuple[object, ...]:
        out: list[object] = []
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in "|)":
                break
            if c in "\r\n":
                if not nested:
                    break
                self.ws(True)
                continue
            start = self.i
            if c == '"':
                self.i += 1
                items: list[object] = []
                while s[self.i] != '"':
                    items.append(CharClass(((ord(self.char()),) * 2,), False))
                self.i += 1
            elif c == "[":
                items = [self.char_class()]
            elif c == ".":
                self.i += 1
                items = [CharClass(((0x0A, 0x0A),), True)]
            elif c == "(":
                self.i += 1
                self.ws(True)
                alts = self.alternatives(nested=True)
                if self.i >= len(s) or s[self.i] != ")":
                    raise GrammarSyntaxError(f"unclosed group at {start}")
                self.i += 1
                items = [self.new_rule(alts)]
            elif c.isalnum() or c in "-_":
                name = self.name()
                self.ws(False)
                if s.startswith("::=", self.i):  # the next rule's head: this rule is over
                    self.i = start
                    break
                items = [self.rule_id(name)]
            else:
                raise GrammarSyntaxError(f"unexpected {c!r} at {self.i}")
            self.ws(nested)
            out.extend(self.quantified(items))
            self.ws(nested)
        return tuple(out)

    def quantified(self, items: list[object]) -> list[object]:
        s = self.s
        if self.i >= len(s) or s[self.i] not in "*+?{":
            return items
        q = s[self.i]
        self.i += 1
        item = items[0] if len(items) == 1 else self.new_rule([tuple(items)])
        if q == "{":
            end = s.index("}", self.i)
            body = s[self.i:end]
            self.i = end + 1
            lo_s, _, hi_s = body.partition(",")
            lo = int(lo_s.strip())
            hi = lo if "," not in body else (int(hi_s) if hi_s.strip() else None)
        else:
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[q]
        self.repeats_left -= max(lo, hi or 0)
        if self.repeats_left < 0:
            raise GrammarTooLarge(f"repetitions expand past {self.max_repeats} elements")
        out = [item] * lo
        if hi is None:
            star = len(self.rules)
            self.rules.append([(item, star), ()])
            out.append(star)
        else:
            tail: int | None = None
            for _ in range(hi - lo):
                tail = self.new_rule([(item,) if tail is None else (item, tail), ()])
            if tail is not None:
                out.append(tail)
        return out

    def char(self) -> str:
        s = self.s
        c = s[self.i]
        if c != "\\":
            self.i += 1
            return c
        e = s[self.i + 1]
        if e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            cp = int(s[self.i + 2:self.i + 2 + n], 16)
            self.i += 2 + n
            return chr(cp)
        if e in _ESCAPES:
            self.i += 2
            return _ESCAPES[e]
        raise GrammarSyntaxError(f"unknown escape \\{e} at {self.i}")

    def char_class(self) -> CharClass:
        self.i += 1
        negated = self.s[self.i] == "^"
        if negated:
            self.i += 1
        ranges = []
        while self.s[self.i] != "]":
            lo = hi = ord(self.char())
            if self.s[self.i] == "-" and self.s[self.i + 1] != "]":
                self.i += 1
                hi = ord(self.char())
            ranges.append((lo, hi))
        self.i += 1
        return CharClass(tuple(ranges), negated)


class Grammar:
    """A compiled GBNF grammar: alternatives, and for every (alternative, position) the
    shortest text (in UTF-8 bytes) that finishes it."""

    def __init__(self, text: str, root: str = "root", *,
                 max_repeats: int | None = MAX_REPEATS) -> None:
        parser = _Parser(text, max_repeats)
        try:
            rules = parser.parse()
        except RecursionError:  # groups nested past Python's stack (a 300-digit range does)
            raise GrammarSyntaxError("groups nested too deeply to follow") from None
        if root not in parser.names:
            raise GrammarSyntaxError(f"no rule {root!r}")
        self.root = parser.names[root]
        self.alts: list[tuple[object, ...]] = []
        self.rule_alts: list[list[int]] = []
        for alts in rules:
            ids = []
            for alt in alts:
                ids.append(len(self.alts))
                self.alts.append(alt)
            self.rule_alts.append(ids)
        self._shortest_rules()
        self._suffix: dict[Frame, str] = {}
        self._suffix_cost: dict[Frame, int] = {}

    def _cost(self, el: object) -> float:
        if isinstance(el, CharClass):
            return len(el.cheapest().encode("utf-8"))
        return self._rule_cost[el]  # type: ignore[index]

    def _shortest_rules(self) -> None:
        # Bellman-Ford style: costs only ever fall, and a rule takes a new best alternative only
        # on a strict improvement, so the chosen alternatives form a finite derivation.
        n = len(self.rule_alts)
        self._rule_cost = [math.inf] * n
        self._best_alt = [-1] * n
        changed = True
        while changed:
            changed = False
            for r in range(n):
                for a in self.rule_alts[r]:
                    cost = sum(self._cost(el) for el in self.alts[a])
                    if cost < self._rule_cost[r]:
                        self._rule_cost[r] = cost
                        self._best_alt[r] = a
                        changed = True
        self._rule_text: dict[int, str] = {}

    def shortest_bytes(self) -> float:
        """UTF-8 bytes of the shortest text the grammar allows (inf: none), known before any
        text is built."""
        return self._rule_cost[self.root]

    def rule_text(self, rule: int) -> str:
        """The shortest text the rule derives."""
        text = self._rule_text.get(rule)
        if text is None:
            text = self.suffix_text(self._best_alt[rule], 0)
            self._rule_text[rule] = text
        return text

    def suffix_text(self, alt: int, pos: int) -> str:
        key = (alt, pos)
        text = self._suffix.get(key)
        if text is None:
            parts = []
            for el in self.alts[alt][pos:]:
                parts.append(el.cheapest() if isinstance(el, CharClass) else self.rule_text(el))
            text = "".join(parts)
            self._suffix[key] = text
        return text

    # -- stacks -------------------------------------------------------------------------------

    def start(self) -> frozenset[Stack]:
        out: set[Stack] = set()
        for a in self.rule_alts[self.root]:
            self._expand(((a, 0),), out)
        return frozenset(out)

    def _expand(self, stack: Stack, out: set[Stack]) -> None:
        """Add to `out` every stack reachable from `stack` without reading a character whose
        top is a character class (or the empty stack: the grammar is complete)."""
        todo = [stack]
        seen = set()
        while todo:
            st = todo.pop()
            while st:
                alt, pos = st[-1]
                if pos < len(self.alts[alt]):
                    break
                st = st[:-1]
            if not st:
                out.add(st)
                continue
            alt, pos = st[-1]
            el = self.alts[alt][pos]
            if isinstance(el, CharClass):
                out.add(st)
                continue
            if len(st) > MAX_DEPTH:
                continue
            base = st[:-1] if pos + 1 == len(self.alts[alt]) else st[:-1] + ((alt, pos + 1),)
            for a in self.rule_alts[el]:  # type: ignore[index]
                nxt = base + ((a, 0),)
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)

    def advance(self, stacks: frozenset[Stack], text: str) -> frozenset[Stack]:
        """The stacks after reading `text`; empty when the grammar does not allow it."""
        for ch in text:
            cp = ord(ch)
            out: set[Stack] = set()
            for st in stacks:
                if not st:
                    continue
                alt, pos = st[-1]
                el = self.alts[alt][pos]
                if el.matches(cp):  # type: ignore[union-attr]
                    self._expand(st[:-1] + ((alt, pos + 1),), out)
            stacks = frozenset(out)
            if not stacks:
                break
        return stacks

    def stack_cost(self, stack: Stack) -> int:
        """Bytes of the shortest text that empties `stack`."""
        total = 0
        costs = self._suffix_cost
        for frame in stack:
            cost = costs.get(frame)
            if cost is None:
                cost = costs[frame] = len(self.suffix_text(*frame).encode("utf-8"))
            total += cost
        return total

    def completion(self, stacks: frozenset[Stack]) -> str | None:
        """The shortest text (in bytes) that completes the grammar from `stacks`; "" when it
        is already complete, None when no stack is alive."""
        best: Stack | None = None
        best_cost = math.inf
        for st in stacks:
            cost = self.stack_cost(st)
            if cost < best_cost:
                best, best_cost = st, cost
        if best is None:
            return None
        return "".join(self.suffix_text(a, p) for a, p in reversed(best))

    def is_complete(self, stacks: frozenset[Stack]) -> bool:
        return () in stacks

    def accepts(self, text: str) -> bool:
        return self.is_complete(self.advance(self.start(), text))


@lru_cache(maxsize=64)
def compiled(text: str) -> Grammar:
    """The compiled grammar of `text`, shared by requests with the same schema."""
    return Grammar(text)
