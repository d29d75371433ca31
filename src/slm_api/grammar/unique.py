"""`uniqueItems` while decoding: which arrays of a schema must keep their items distinct, and
whether they can.

A context-free grammar cannot say "no item equals an earlier one", so the converter's grammar
lets duplicates through and the engine refuses them token by token instead (engine/unique.py,
with the tracker in grammar/unique_track.py). What the engine needs from the schema is small:
for each JSON position, whether it is an array with `uniqueItems`, and how to walk to the
positions below it. `unique_spec` builds that map (one node per schema object, edges through
`properties`, `additionalProperties`, `items`, `prefixItems`, and `$ref` / `allOf` / `anyOf` /
`oneOf` as alternatives: where branches disagree the stricter one applies, a subset of what the
schema allows), pruned to the nodes from which such an array can be reached. The map rides in
the grammar text as one comment line, so every composition of grammars (tool-call markup, the
think-first wrapper) carries it to the engine without a second channel.

An array whose items can take fewer distinct values than its `minItems` (an enum of 3 values,
`minItems: 4`) can never be valid: it is refused with a 400 naming `uniqueItems`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import SchemaError
from .numbers import int_bounds
from .validate import validation_errors

DIRECTIVE = "# slm-unique-items: "
_DIRECTIVE_LINE = re.compile(r"(?m)^# slm-unique-items: (.*)\n?")
_EDGES_ONE = ("additionalProperties", "items", "additionalItems")
_MAX_COUNT_DEPTH = 32
MAX_FINITE = 256  # item values spelled out for the dead-end check


@dataclass(frozen=True)
class Stage:
    """Text before the JSON value: `close` (one of them) ends it. With `open`, the stage is
    optional: it applies only when the output starts with `open` (a thinking block)."""

    closes: tuple[str, ...]
    open: str = ""


@dataclass(frozen=True)
class UniqueSpec:
    """Nodes: (unique, {property: node}, additional node, items node, prefix nodes,
    alternatives, item texts, item maxLength); -1 where there is none. Item texts: for a
    unique array whose items can take few values, each value's compact JSON as the grammar
    spells it (so that an item that can only end as a repeat is refused before it is forced
    there), else None. `root` is the JSON value's node; `stages` the text before it."""

    nodes: tuple[tuple[bool, dict[str, int], int, int, tuple[int, ...], tuple[int, ...],
                       tuple[str, ...] | None, int], ...]
    root: int
    stages: tuple[Stage, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"n": [list(n) for n in self.nodes], "r": self.root,
                           "s": [[list(s.closes), s.open] for s in self.stages]},
                          ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> UniqueSpec:
        raw = json.loads(text)
        nodes = tuple((bool(u), dict(p), int(a), int(i), tuple(x), tuple(alt),
                       None if f is None else tuple(f), int(n))
                      for u, p, a, i, x, alt, f, n in raw["n"])
        stages = tuple(Stage(tuple(c), o) for c, o in raw["s"])
        return cls(nodes, int(raw["r"]), stages)

    def with_stage(self, stage: Stage) -> UniqueSpec:
        return UniqueSpec(self.nodes, self.root, (stage, *self.stages))


def unique_spec(schema: Any, root: Any = None, stages: tuple[Stage, ...] = ()) -> UniqueSpec | None:
    """The uniqueItems map of `schema` (refs resolve in `root`, default `schema`), or None when
    no array in it asks for unique items. Raises SchemaError when one never can have them."""
    from .convert import Converter  # convert imports this module

    builder = _Builder(Converter(schema if root is None else root))
    top = builder.node(schema)
    return builder.spec(top, stages)


def embed(gbnf: str, spec: UniqueSpec | None) -> str:
    """`gbnf` with `spec` as its directive comment (GBNF parsers skip comments)."""
    if spec is None:
        return gbnf
    return f"{gbnf.rstrip(chr(10))}\n{DIRECTIVE}{spec.to_json()}\n"


def split(gbnf: str) -> tuple[str, UniqueSpec | None]:
    """The grammar without its directive, and the spec the directive held (None: none)."""
    m = _DIRECTIVE_LINE.search(gbnf)
    if m is None:
        return gbnf, None
    return gbnf[:m.start()] + gbnf[m.end():], UniqueSpec.from_json(m.group(1))


def spec_of(gbnf: str) -> UniqueSpec | None:
    return split(gbnf)[1]


def add_stage(gbnf: str, stage: Stage) -> str:
    """`gbnf`'s directive with `stage` before its own (a wrapper that writes text first)."""
    rest, spec = split(gbnf)
    return gbnf if spec is None else embed(rest, spec.with_stage(stage))


class _Builder:
    def __init__(self, conv: Any) -> None:
        self.conv = conv
        self.ids: dict[int, int] = {}
        self.nodes: list[list[Any]] = []

    def node(self, schema: Any) -> int:
        if not isinstance(schema, dict):
            return -1
        if id(schema) in self.ids:
            return self.ids[id(schema)]
        nid = len(self.nodes)
        self.ids[id(schema)] = nid
        entry: list[Any] = [schema.get("uniqueItems") is True, {}, -1, -1, (), (), None, -1]
        self.nodes.append(entry)
        alts = []
        if isinstance(schema.get("$ref"), str):
            alts.append(self.node(self.conv.resolve(schema["$ref"])))
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                alts += [self.node(s) for s in schema[key]]
        props = schema.get("properties")
        if isinstance(props, dict):
            entry[1] = {k: n for k, s in props.items() if (n := self.node(s)) >= 0}
        entry[2] = self.node(schema.get("additionalProperties"))
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft 7 tuple form
            prefix, items = items, schema.get("additionalItems")
        entry[3] = self.node(items)
        if isinstance(prefix, list):
            entry[4] = tuple(self.node(s) for s in prefix)
        entry[5] = tuple(a for a in alts if a >= 0)
        if entry[0]:
            self.check_room(schema)
            if not entry[4]:
                entry[6] = finite_texts(schema.get("items", True), self.conv)
                entry[7] = _max_length(schema.get("items", True), self.conv)
        return nid

    def check_room(self, schema: dict[str, Any]) -> None:
        """Refuse an array that needs more distinct items than its items can take."""
        need = schema.get("minItems", 0)
        if not isinstance(need, int) or need < 2 or "prefixItems" in schema or \
                isinstance(schema.get("items"), list):
            return
        count = distinct(schema.get("items", True), self.conv)
        if count is not None and count < need:
            raise SchemaError(
                f"uniqueItems: minItems is {need} but the items can take only {count} "
                f"distinct value{'s' if count != 1 else ''}", param="uniqueItems")

    def spec(self, top: int, stages: tuple[Stage, ...]) -> UniqueSpec | None:
        live = [n[0] for n in self.nodes]
        changed = True
        while changed:  # reachability of a unique array, backwards over every edge
            changed = False
            for i, n in enumerate(self.nodes):
                if not live[i] and any(live[j] for j in _edges(n)):
                    live[i] = changed = True
        if top < 0 or not live[top]:
            return None
        remap = {old: new for new, old in enumerate(i for i, ok in enumerate(live) if ok)}

        def m(i: int) -> int:
            return remap.get(i, -1)

        nodes = tuple(
            (n[0], {k: m(v) for k, v in n[1].items() if m(v) >= 0}, m(n[2]), m(n[3]),
             tuple(m(x) for x in n[4]), tuple(m(a) for a in n[5] if m(a) >= 0), n[6], n[7])
            for i, n in enumerate(self.nodes) if live[i])
        return UniqueSpec(nodes, remap[top], stages)


def _edges(n: list[Any]) -> list[int]:
    return [*n[1].values(), n[2], n[3], *n[4], *n[5]]


def distinct(schema: Any, conv: Any, depth: int = 0) -> int | None:
    """How many distinct values the grammar for `schema` can produce, at most; None when
    unbounded or not worth counting (strings, numbers, arrays)."""
    if depth > _MAX_COUNT_DEPTH or not isinstance(schema, dict):
        return None
    if "$ref" in schema or "allOf" in schema:
        try:
            return distinct(conv.flatten(schema), conv, depth + 1)
        except (SchemaError, RecursionError):
            return None
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        if not isinstance(values, list):
            return None
        fits = {_key(v) for v in values if not validation_errors(v, schema)}
        return len(fits)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            # Each branch alone bounds what the converter makes of it merged with the rest.
            counts = [0 if sub is False else distinct(sub, conv, depth + 1)
                      for sub in schema[key]]
            return None if None in counts else sum(counts)  # type: ignore[arg-type]
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types:
        return None
    total = 0
    for t in types:
        n = _typed_count(t, schema, conv, depth)
        if n is None:
            return None
        total += n
    return total


def _typed_count(t: str, schema: dict[str, Any], conv: Any, depth: int) -> int | None:
    if t == "boolean":
        return 2
    if t == "null":
        return 1
    if t == "integer":
        lo, hi = int_bounds(schema)
        return None if lo is None or hi is None else max(0, hi - lo + 1)
    if t == "string" and schema.get("maxLength") == 0:
        return 1
    if t == "object":
        props = schema.get("properties")
        # Only declared properties are generated unless additionalProperties says otherwise.
        if not isinstance(props, dict) or schema.get("additionalProperties", False) is not False:
            return None
        required = set(schema.get("required", []))
        if not required <= set(props):
            return None
        total = 1
        for name, sub in props.items():
            n = 0 if sub is False else distinct(sub, conv, depth + 1)
            if n is None:
                return None
            total *= n if name in required else n + 1
            if total > 1_000_000:
                return None
        return total
    return None


def finite_texts(schema: Any, conv: Any, depth: int = 0) -> tuple[str, ...] | None:
    """Every value the grammar for `schema` can spell, as compact JSON in the grammar's
    spelling (a superset: never missing one), when there are at most MAX_FINITE; else None."""
    if depth > _MAX_COUNT_DEPTH or not isinstance(schema, dict):
        return None
    if "$ref" in schema or "allOf" in schema:
        try:
            return finite_texts(conv.flatten(schema), conv, depth + 1)
        except (SchemaError, RecursionError):
            return None
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        if not isinstance(values, list) or len(values) > MAX_FINITE:
            return None
        return tuple(dict.fromkeys(_spelled(v) for v in values if not validation_errors(v, schema)))
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return _joined([() if sub is False else finite_texts(sub, conv, depth + 1)
                            for sub in schema[key]])
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types:
        return None
    return _joined([_typed_texts(t, schema, conv, depth) for t in types])


def _typed_texts(t: str, schema: dict[str, Any], conv: Any, depth: int) -> tuple[str, ...] | None:
    if t == "boolean":
        return ("true", "false")
    if t == "null":
        return ("null",)
    if t == "integer":
        lo, hi = int_bounds(schema)
        if lo is None or hi is None or hi - lo >= MAX_FINITE:
            return None
        return tuple(str(i) for i in range(lo, hi + 1))
    if t != "object" or _typed_count(t, schema, conv, depth) is None:
        return None
    out = [""]
    for name, sub in schema["properties"].items():
        texts = () if sub is False else finite_texts(sub, conv, depth + 1)
        if texts is None:
            return None
        member = [f"{_spelled(name)}:{v}" for v in texts]
        if name not in schema.get("required", []):
            member.append(None)  # type: ignore[arg-type]
        out = [f"{head},{m}" if head and m else head or (m or "") for head in out
               for m in member]
        if len(out) > MAX_FINITE:
            return None
    return tuple(dict.fromkeys("{" + body + "}" for body in out))


def _max_length(schema: Any, conv: Any) -> int:
    """The maxLength of string items the grammar spells freely (-1: none, or not plain):
    an item at that length can only close, so a repeat there is refused a character early."""
    try:
        schema = conv.flatten(schema)
    except (SchemaError, RecursionError):
        return -1
    if not isinstance(schema, dict) or schema.get("type") != "string" or any(
            k in schema for k in ("pattern", "format", "enum", "const", "anyOf", "oneOf")):
        return -1
    hi = schema.get("maxLength")
    return hi if isinstance(hi, int) and hi >= 0 else -1


def _joined(parts: list[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    if any(p is None for p in parts):
        return None
    out = tuple(dict.fromkeys(t for p in parts for t in p))  # type: ignore[union-attr]
    return out if len(out) <= MAX_FINITE else None


def _spelled(value: Any) -> str:
    """`value` as the converter writes its literal."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def canonical(value: Any) -> Any:
    """A hashable key equal for values JSON Schema calls equal (1 == 1.0, key order ignored,
    true != 1)."""
    return _key(value)


def _key(v: Any) -> Any:
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", v) if not (isinstance(v, float) and math.isnan(v)) else ("nan",)
    if isinstance(v, str):
        return ("s", v)
    if v is None:
        return ("z",)
    if isinstance(v, list):
        return ("l", tuple(_key(x) for x in v))
    if isinstance(v, dict):
        return ("o", frozenset((k, _key(x)) for k, x in v.items()))
    return ("?", repr(v))
