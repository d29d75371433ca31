"""The shortest completion of a constrained output that keeps unique arrays unique.

The recognizer's shortest completion fills a short array with copies of the cheapest item
(`,"",""]` when minItems asks for two more strings), which `uniqueItems` forbids. When that
happens, a bounded best-first search over the grammar's next characters, each step checked by
the uniqueness tracker, finds a completion whose items differ (`,"","a"]`): the budget guide
forces it when max_tokens runs out, and the server's up-front "max_tokens too small" check
measures it.
"""

from __future__ import annotations

from .recognizer import CharClass, Grammar, Stack
from .unique_track import UniqueTracker

# Characters tried where a class allows them, after its cheapest one: short, and many, so
# that distinct fillers are found one character apart.
_FILLERS = "a10A-_.xbcdefgh23456789"
FANOUT = 4  # fillers tried per class
MAX_STEPS = 3000  # recognizer advances per search: a few ms, bounded whatever the grammar
MAX_SLACK = 64  # bytes beyond twice the plain shortest completion a distinct one may take


def completion(grammar: Grammar, stacks: frozenset[Stack],
               tracker: UniqueTracker | None, pending: bytes = b"") -> str | None:
    """The shortest text that completes the grammar from `stacks` and, fed to `tracker` after
    `pending` (bytes it has not seen yet), completes no duplicate item; None when no stack
    is alive or no such text was found within the search's bounds."""
    text = grammar.completion(stacks)
    if text is None or tracker is None or not tracker.active:
        return text
    saved = tracker.save(branch=True)
    try:
        tracker.feed(pending)
        if tracker.violated:
            return None
        if tracker.probe(text.encode("utf-8")):
            return text
        size = len(text.encode("utf-8"))
        return _search(grammar, stacks, tracker, 2 * size + MAX_SLACK)
    finally:
        tracker.restore(saved)


def _next_chars(grammar: Grammar, stacks: frozenset[Stack]) -> list[str]:
    """A few characters the grammar takes next: each class's cheapest and some fillers;
    optional whitespace only where nothing else goes (it never makes an item distinct)."""
    out: dict[str, None] = {}
    for st in stacks:
        if not st:
            continue
        alt, pos = st[-1]
        el = grammar.alts[alt][pos]
        if isinstance(el, CharClass):
            out[el.cheapest()] = None
            out.update(dict.fromkeys([ch for ch in _FILLERS if el.matches(ord(ch))][:FANOUT]))
    solid = [ch for ch in out if not ch.isspace()]
    return solid or list(out)


def _search(grammar: Grammar, stacks: frozenset[Stack], tracker: UniqueTracker,
            limit: int) -> str | None:
    """Depth first, cheapest character first: a duplicate is mended where it arose (the item
    being written takes its next cheapest spelling) before anything earlier changes."""
    start = tracker.save(branch=True)
    todo: list[tuple[str, frozenset[Stack], tuple]] = [("", stacks, start)]
    steps = 0
    try:
        while todo and steps < MAX_STEPS:
            text, cur, state = todo.pop()
            if grammar.is_complete(cur):
                tracker.restore(state)
                if tracker.probe(b" "):  # a number at the end is whole once something follows
                    return text
            children = []
            for ch in _next_chars(grammar, cur):
                steps += 1
                nxt = grammar.advance(cur, ch)
                if not nxt:
                    continue
                tracker.restore(state)
                tracker.feed(ch.encode("utf-8"))
                if tracker.violated:
                    continue
                new = text + ch
                est = len(new.encode("utf-8")) + min(map(grammar.stack_cost, nxt))
                if est <= limit:
                    children.append((est, new, nxt, tracker.save(branch=True)))
            children.reverse()  # among equal estimates the class's cheapest character wins
            children.sort(key=lambda c: -c[0])  # the cheapest is popped first
            todo.extend((new, nxt, st) for _, new, nxt, st in children)
        return None
    finally:
        tracker.restore(start)
