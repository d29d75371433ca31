"""Follow a constrained output byte by byte and tell when an item of a `uniqueItems` array
completes equal to an earlier item of the same array.

The grammar already keeps the text valid JSON, so this is a lenient incremental JSON scanner,
not a validator: it only has to know where values start and end, which object key or array
index each one sits at (to walk the UniqueSpec), and the item texts of unique arrays (to
compare them as JSON Schema does: parsed, 1 == 1.0, key order ignored). A value completes at
its last byte, except a number: at the byte after it (`,` `]` `}` or whitespace), since `1`
may still become `12`. Text it cannot follow (a grammar that is not plain JSON) makes it give
up, allowing everything: the validator after generation still has the last word.

`probe(data)` answers "would these bytes complete a duplicate?" without changing the state,
which is what the engine asks of each candidate token.
"""

from __future__ import annotations

import json
from typing import Any

from .unique import UniqueSpec, canonical

PRE, VALUE, AFTER, KEY, COLON, STR, NUM, LIT, DONE, LOST = range(10)
_WS = frozenset(b" \t\r\n")
_NUM = frozenset(b"0123456789+-.eE")
LONG_DIGITS = 15  # the fewest digits at which the converter's grammar may allow no more
_LITERALS = {ord("t"): b"rue", ord("f"): b"alse", ord("n"): b"ull"}


class _Frame:
    __slots__ = ("array", "nodes", "unique", "seen", "start", "index", "child", "texts",
                 "item", "max_len")

    def __init__(self, array: bool, nodes: frozenset[int], unique: bool, start: int) -> None:
        self.array = array
        self.nodes = nodes
        self.unique = unique
        self.seen: frozenset[Any] = frozenset()
        self.start = start
        self.index = 0
        self.child: frozenset[int] = frozenset()
        # A unique array with few possible items: (compact text, key) of each, and where the
        # item being written starts (-1: none is).
        self.texts: tuple[tuple[bytes, Any], ...] | None = None
        self.item = -1
        self.max_len = -1  # string items' maxLength

    def copy(self) -> _Frame:
        f = _Frame(self.array, self.nodes, self.unique, self.start)
        f.seen, f.index, f.child, f.texts, f.item, f.max_len = (
            self.seen, self.index, self.child, self.texts, self.item, self.max_len)
        return f


class UniqueTracker:
    """One generation's view of its JSON output, as far as uniqueItems needs it."""

    def __init__(self, spec: UniqueSpec) -> None:
        self.spec = spec
        self._closure: dict[frozenset[int], frozenset[int]] = {}
        self.buf = bytearray()  # the JSON text since its first byte
        self.pre = bytearray()  # text before it not yet placed (a stage still open)
        self.stage = 0
        self.opened = False  # inside an optional stage's block
        self.stack: list[_Frame] = []
        self.unique_open = 0  # unique arrays on the stack
        self.mode = PRE if spec.stages else VALUE
        self.child = self._expand(frozenset((spec.root,)))  # nodes of the next value
        self.vstart = 0
        self.key = False  # the string being read is an object key
        self.esc = False
        self.lit = b""
        self.violated = False

    # -- questions ---------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any later byte could still complete a duplicate."""
        return self.mode not in (DONE, LOST) and not self.violated

    def may_open_unique(self) -> bool:
        """Whether a unique array is open, or the next bytes could open one."""
        return self.unique_open > 0 or bool(self.child) or any(f.nodes for f in self.stack)

    @property
    def finite_open(self) -> bool:
        """Whether a unique array of few possible items is open: then any byte (not only one
        that completes a value) can make its item certain to repeat."""
        return any(f.texts is not None for f in self.stack)

    def string_item(self) -> tuple[bytes, list[bytes], int] | None:
        """Inside a string that is itself an item of a unique array: its bytes so far (after
        the quote), the earlier string items (UTF-8), and the items' maxLength (-1: none)."""
        if self.mode != STR or self.key or not self.stack or not self.stack[-1].unique:
            return None
        top = self.stack[-1]
        taken = [k[1].encode() for k in top.seen if k[0] == "s"]
        return bytes(self.buf[self.vstart + 1:]), taken, top.max_len

    def probe(self, data: bytes) -> bool:
        """True when feeding `data` completes no duplicate item (state unchanged)."""
        if not self.active:
            return True
        saved = self.save()
        try:
            self.feed(data)
            return not self.violated
        finally:
            self.restore(saved)

    def fits(self, datas: list[bytes]) -> int:
        """How many leading `datas` can be fed with no duplicate completed (state unchanged)."""
        if not self.active:
            return len(datas)
        saved = self.save()
        try:
            for n, data in enumerate(datas):
                self.feed(data)
                if self.violated:
                    return n
            return len(datas)
        finally:
            self.restore(saved)

    def feed(self, data: bytes) -> None:
        for b in data:
            if self.violated or self.mode in (DONE, LOST):
                return
            if self.mode == PRE:
                self._pre(b)
            else:
                self.buf.append(b)
                self._byte(b, len(self.buf) - 1)
        if not self.violated and self.mode not in (DONE, LOST):
            self._dead_ends()

    def _dead_ends(self) -> None:
        """A duplicate not written yet but already certain: an item of a few possible values
        whose text so far fits none that is still unused (`"pyt` when "python" is taken, or
        a `,` when every value is), is a violation now, while the model can still choose."""
        for depth, f in enumerate(self.stack):
            if f.item < 0:
                continue
            if f.texts is not None:
                partial = _compact(self.buf[f.item:])
                if not any(key not in f.seen and text.startswith(partial)
                           for text, key in f.texts):
                    self.violated = True
                    return
            elif self.mode == STR and not self.key and depth == len(self.stack) - 1 and \
                    f.max_len >= 0 and f.seen:
                # A string item at its maxLength can only close: refuse the character that
                # brings it there as a repeat, while another character can still go there.
                try:
                    text = json.loads(bytes(self.buf[self.vstart:]) + b'"')
                except ValueError:
                    continue  # inside an escape or a character
                if len(text) >= f.max_len and canonical(text) in f.seen:
                    self.violated = True
                    return
            elif self.mode == NUM and depth == len(self.stack) - 1 and f.seen and \
                    len(self.buf) - len(self.buf.rstrip(b"0123456789")) >= LONG_DIGITS:
                # The grammar caps a number's digits (18, or 15 after the point): a long
                # one may only be able to end, so a repeat is refused a digit early.
                try:
                    key = canonical(json.loads(bytes(self.buf[self.vstart:])))
                except ValueError:
                    continue
                if key in f.seen:
                    self.violated = True
                    return
            elif self.mode == AFTER and depth < len(self.stack) - 1 and f.seen:
                # A member just ended inside an item: if closing the item here repeats an
                # earlier one, refuse now, while the value can still go on (`1` -> `12`): after
                # a space only the repeating `}` may be left.
                closers = b"".join(b"]" if g.array else b"}" for g in self.stack[:depth:-1])
                try:
                    key = canonical(json.loads(bytes(self.buf[f.item:]) + closers))
                except (ValueError, RecursionError):
                    continue
                if key in f.seen:
                    self.violated = True
                    return

    # -- state -------------------------------------------------------------------------------

    def save(self, branch: bool = False) -> tuple[Any, ...]:
        """The state, to `restore` after feeding; `branch`: also after other states were
        restored and fed in between (a search), so the text itself is kept, not its length."""
        return (self.mode, bytes(self.pre), self.stage, self.opened,
                bytes(self.buf) if branch else len(self.buf),
                [f.copy() for f in self.stack], self.unique_open, self.child, self.vstart,
                self.key, self.esc, self.lit, self.violated)

    def restore(self, s: tuple[Any, ...]) -> None:
        (self.mode, pre, self.stage, self.opened, n, stack, self.unique_open, self.child,
         self.vstart, self.key, self.esc, self.lit, self.violated) = s
        self.stack = [f.copy() for f in stack]  # a saved state may be restored again
        self.pre = bytearray(pre)
        if isinstance(n, bytes):
            self.buf = bytearray(n)
        else:
            del self.buf[n:]

    # -- the text before the JSON --------------------------------------------------------------

    def _pre(self, b: int) -> None:
        self.pre.append(b)
        stages = self.spec.stages
        while self.stage < len(stages):
            st = stages[self.stage]
            text = bytes(self.pre)
            closes = [c.encode() for c in st.closes]
            if st.open and not self.opened:
                head = text.lstrip()
                opener = st.open.encode()
                if head.startswith(opener):
                    self.opened = True
                elif opener.startswith(head):
                    return  # not decided yet
                else:
                    self.stage += 1  # the optional block was not written
                    continue
            end = next((c for c in closes if text.endswith(c)), None)
            if end is None:
                if len(self.pre) > 4096:  # keep only what a close marker could span
                    del self.pre[:-256]
                return
            self.pre.clear()
            self.opened = False
            self.stage += 1
        self.mode = VALUE
        rest = bytes(self.pre)
        self.pre.clear()
        self.feed(rest)

    # -- JSON ----------------------------------------------------------------------------------

    def _expand(self, ids: frozenset[int]) -> frozenset[int]:
        """`ids` and every node they stand for as alternatives ($ref, allOf, anyOf)."""
        if ids in self._closure:
            return self._closure[ids]
        out, todo = set(), [i for i in ids if i >= 0]
        while todo:
            i = todo.pop()
            if i not in out:
                out.add(i)
                todo.extend(a for a in self.spec.nodes[i][5] if a >= 0)
        result = frozenset(out)
        self._closure[ids] = result
        return result

    def _texts(self, nodes: frozenset[int]) -> tuple[tuple[bytes, Any], ...] | None:
        texts: dict[str, None] = {}
        for n in nodes:
            if self.spec.nodes[n][0]:
                own = self.spec.nodes[n][6]
                if own is None:
                    return None
                texts.update(dict.fromkeys(own))
        return tuple((t.encode(), canonical(json.loads(t))) for t in texts)

    def _item_nodes(self, f: _Frame) -> frozenset[int]:
        ids = set()
        for n in f.nodes:
            prefix = self.spec.nodes[n][4]
            ids.add(prefix[f.index] if f.index < len(prefix) else self.spec.nodes[n][3])
        return self._expand(frozenset(ids))

    def _member_nodes(self, f: _Frame, key: str) -> frozenset[int]:
        ids = set()
        for n in f.nodes:
            props = self.spec.nodes[n][1]
            ids.add(props[key] if key in props else self.spec.nodes[n][2])
        return self._expand(frozenset(ids))

    def _byte(self, b: int, at: int) -> None:
        mode = self.mode
        if mode == STR:
            if self.esc:
                self.esc = False
            elif b == 0x5C:
                self.esc = True
            elif b == 0x22:
                if self.key:
                    self._keyed(at)
                else:
                    self._complete(self.vstart, at + 1)
            return
        if mode == NUM:
            if b in _NUM:
                return
            self._complete(self.vstart, at)
            if self.mode == AFTER:
                self._byte(b, at)
            return
        if mode == LIT:
            if not self.lit or b != self.lit[0]:
                self.mode = LOST
                return
            self.lit = self.lit[1:]
            if not self.lit:
                self._complete(self.vstart, at + 1)
            return
        if b in _WS:
            return
        if mode == VALUE:
            self._value(b, at)
        elif mode == KEY:
            if b == 0x22:
                self.mode, self.key, self.vstart = STR, True, at
            elif b == 0x7D:
                self._close(at)
            else:
                self.mode = LOST
        elif mode == COLON:
            self.mode = VALUE if b == 0x3A else LOST
        elif mode == AFTER:
            top = self.stack[-1] if self.stack else None
            if top is None:
                self.mode = LOST
            elif b == 0x2C:
                if top.array:
                    top.index += 1
                    top.item = at + 1
                    self.child, self.mode = self._item_nodes(top), VALUE
                else:
                    self.mode = KEY
            elif b == (0x5D if top.array else 0x7D):
                self._close(at)
            else:
                self.mode = LOST

    def _value(self, b: int, at: int) -> None:
        nodes = self.child
        if b == 0x7B:
            self.stack.append(_Frame(False, nodes, False, at))
            self.mode = KEY
        elif b == 0x5B:
            unique = any(self.spec.nodes[n][0] for n in nodes)
            f = _Frame(True, nodes, unique, at)
            if unique:
                f.texts = self._texts(nodes)
                f.item = at + 1
                lens = [self.spec.nodes[n][7] for n in nodes if self.spec.nodes[n][0]]
                f.max_len = min(lens) if lens and min(lens) >= 0 else -1
            self.stack.append(f)
            self.unique_open += unique
            self.child = self._item_nodes(f)
        elif b == 0x5D and self.stack and self.stack[-1].array:
            self._close(at)  # an empty array
        elif b == 0x22:
            self.mode, self.key, self.vstart = STR, False, at
        elif b == 0x2D or 0x30 <= b <= 0x39:
            self.mode, self.vstart = NUM, at
        elif b in _LITERALS:
            self.mode, self.vstart, self.lit = LIT, at, _LITERALS[b]
        else:
            self.mode = LOST

    def _keyed(self, at: int) -> None:
        try:
            key = json.loads(self.buf[self.vstart:at + 1])
        except ValueError:
            self.mode = LOST
            return
        self.child = self._member_nodes(self.stack[-1], key)
        self.mode = COLON

    def _close(self, at: int) -> None:
        f = self.stack.pop()
        self.unique_open -= f.unique
        self._complete(f.start, at + 1)

    def _complete(self, start: int, end: int) -> None:
        """The value in buf[start:end] is whole: check it against its array's earlier items."""
        if not self.stack:
            self.mode = DONE
            return
        self.mode = AFTER
        top = self.stack[-1]
        top.item = -1
        if not (top.array and top.unique):
            return
        try:
            key = canonical(json.loads(self.buf[start:end]))
        except (ValueError, RecursionError):
            self.mode = LOST
            return
        if key in top.seen:
            self.violated = True
        else:
            top.seen = top.seen | {key}


def _compact(text: bytes | bytearray) -> bytes:
    """`text` (JSON, maybe partial) without whitespace outside strings."""
    out = bytearray()
    in_str = esc = False
    for b in text:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in _WS:
            continue
        out.append(b)
    return bytes(out)
