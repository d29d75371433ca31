"""JSON Schema (draft 7 / 2020-12 spellings) to GBNF: the schema walk.

Each visit returns a GBNF expression (often a rule name). What the grammar cannot express
exactly is either refused (SchemaError naming the keyword) or over-approximated; in the latter
case the caller's post-generation `validation_errors` check is what keeps the promise.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import SchemaError
from .formats import FORMATS
from .gbnf import Builder, literal, repeat
from .merge import merge_all
from .numbers import int_bounds, int_range, number_grammar
from .regex import MAX_BOUND, _negate, json_chars, pattern_body
from .validate import validation_errors

# Keywords whose meaning the grammar cannot carry and that we will not approximate.
REFUSED = (
    "not", "if", "then", "else", "patternProperties", "propertyNames", "dependentSchemas",
    "dependentRequired", "dependencies", "unevaluatedProperties", "unevaluatedItems",
    "contains", "minContains", "maxContains", "$dynamicRef", "$recursiveRef",
)  # fmt: skip
# Keywords that imply a type when `type` is missing (we then generate only that type: a
# subset of what the schema allows, so the output still fits).
IMPLIES = {
    "object": ("properties", "required", "additionalProperties", "minProperties",
               "maxProperties"),
    "array": ("items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems"),
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
}  # fmt: skip
SEP = 'ws "," ws'
CHAR = r'[^\x22\x5C\x00-\x1F] | "\\" ([\x22\x5C/bfnrt] | "u" [0-9a-fA-F]{4})'
BASE_RULES = {
    "ws": '(" " | "\\n" " "{0,4})?',
    "char": CHAR,
    "string": '"\\"" char* "\\""',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "integer": int_range(None, None),
    "number": number_grammar({}),
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)*)? ws "}"',
    "array": '"[" ws (value (ws "," ws value)*)? ws "]"',
}
BASE_DEPS = {
    "string": ["char"], "value": ["object", "array", "string", "number", "boolean", "null"],
    "object": ["ws", "string", "value"], "array": ["ws", "value"],
}  # fmt: skip


class Converter:
    def __init__(self, root: dict[str, Any] | bool) -> None:
        self.root = root
        self.b = Builder()
        self.refs: dict[str, str] = {}
        # Refs entered since the grammar last consumed a character: seeing one again means
        # left recursion, which llama.cpp's grammar parser rejects.
        self.bare: list[str] = []

    # -- base rules ---------------------------------------------------------------------
    def base(self, name: str) -> str:
        if name not in self.b.rules:
            self.b.define(name, BASE_RULES[name])
            for dep in BASE_DEPS.get(name, ()):
                self.base(dep)
        return name

    # -- refs -----------------------------------------------------------------------------
    def resolve(self, ref: str) -> Any:
        if ref == "#" or ref == "#/":
            return self.root
        if not ref.startswith("#/"):
            raise SchemaError(f"$ref {ref!r}: only local refs (#/$defs/..., #/definitions/...)"
                              " are supported", param="$ref")  # fmt: skip
        node: Any = self.root
        for raw in ref[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            key = _percent_decode(key)
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise SchemaError(f"$ref {ref!r} does not resolve", param="$ref")
        return node

    def ref(self, ref: str) -> str:
        if ref in self.bare:
            raise SchemaError(f"$ref {ref!r} recurses without consuming input", param="$ref")
        if ref in self.refs:
            return self.refs[ref]
        target = self.resolve(ref)
        name = self.b.reserve("ref-" + ref.rsplit("/", 1)[-1])
        self.refs[ref] = name
        self.bare.append(ref)
        try:
            self.b.define(name, self.visit(target, name))
        finally:
            self.bare.remove(ref)
        return name

    def flatten(self, schema: Any) -> Any:
        """Resolve top-level $ref (with siblings) and allOf into one merged schema."""
        if not isinstance(schema, dict):
            return schema
        parts = []
        rest = dict(schema)
        if "$ref" in rest:
            parts.append(self.flatten(self.resolve(rest.pop("$ref"))))
        for sub in rest.pop("allOf", []):
            parts.append(self.flatten(sub))
        if not parts:
            return schema
        return merge_all([rest, *parts])

    # -- the walk ---------------------------------------------------------------------------
    def visit(self, schema: Any, hint: str) -> str:
        if schema is True or schema == {}:
            return self.base("value")
        if schema is False:
            raise SchemaError("schema `false` accepts no value", param="schema")
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be an object or a boolean", param="schema")
        for key in REFUSED:
            if key in schema:
                raise SchemaError(f"JSON Schema keyword {key!r} is not supported", param=key)
        if "$ref" in schema:
            significant = {k for k in schema if k not in _ANNOTATIONS}
            if significant == {"$ref"}:
                return self.ref(schema["$ref"])
            return self.visit(self.flatten(schema), hint)
        if "allOf" in schema:
            return self.visit(self.flatten(schema), hint)
        if "const" in schema or "enum" in schema:
            return self.enum(schema, hint)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                branches = []
                for i, sub in enumerate(schema[key]):
                    if sub is False:
                        continue
                    merged = merge_all([rest, self.flatten(sub)]) if rest else sub
                    branches.append(self.visit(merged, f"{hint}-{i}"))
                if not branches:
                    raise SchemaError(f"{key} has no satisfiable branch", param=key)
                return self.b.add(hint, " | ".join(branches))
        types = schema.get("type")
        if types is None:
            types = [t for t, keys in IMPLIES.items() if any(k in schema for k in keys)]
            if not types:
                return self.base("value")  # no type-specific keyword: any JSON value
        elif isinstance(types, str):
            types = [types]
        types = list(types)
        if "number" in types and "integer" in types:
            types.remove("integer")
        if not types:
            raise SchemaError("`type` is an empty list", param="type")
        alts = [self.typed(t, schema, hint) for t in types]
        if len(alts) == 1:
            return alts[0]
        return self.b.add(hint, " | ".join(alts))

    def typed(self, t: str, schema: dict[str, Any], hint: str) -> str:
        if t == "object":
            return self.obj(schema, hint)
        if t == "array":
            return self.arr(schema, hint)
        if t == "string":
            return self.string(schema, hint)
        if t == "integer":
            lo, hi = int_bounds(schema)
            if lo is None and hi is None:
                return self.base("integer")
            if lo is not None and hi is not None and lo > hi:
                raise SchemaError("no integer fits minimum/maximum", param="minimum")
            return self.b.add(hint + "-int", int_range(lo, hi))
        if t == "number":
            if not any(k in schema for k in IMPLIES["number"][:4]):
                return self.base("number")
            return self.b.add(hint + "-num", number_grammar(schema))
        if t in ("boolean", "null"):
            return self.base(t)
        raise SchemaError(f"unknown type {t!r}", param="type")

    def enum(self, schema: dict[str, Any], hint: str) -> str:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        # Keep only the values the whole schema accepts (this makes allOf of enums exact).
        check = dict(schema)
        for key in ("$defs", "definitions"):
            if isinstance(self.root, dict) and key in self.root and key not in check:
                check[key] = self.root[key]
        fits = [v for v in values if not validation_errors(v, check)]
        if not fits:
            raise SchemaError("no value of enum/const fits the rest of the schema", param="enum")
        alts = [literal(json.dumps(v, ensure_ascii=False, separators=(",", ":"))) for v in fits]
        return self.b.add(hint + "-enum", " | ".join(dict.fromkeys(alts)))

    def string(self, schema: dict[str, Any], hint: str) -> str:
        self.base("char")
        fmt = schema.get("format")
        if fmt in FORMATS:
            body = FORMATS[fmt]
        elif "pattern" in schema:
            body = pattern_body(schema["pattern"], "char")
        else:
            lo = min(int(schema.get("minLength", 0)), MAX_BOUND)
            hi = schema.get("maxLength")
            hi = None if hi is None or hi > MAX_BOUND else int(hi)
            if hi is not None and lo > hi:
                raise SchemaError("minLength is greater than maxLength", param="minLength")
            if (lo, hi) == (0, None):
                return self.base("string")
            body = repeat("char", lo, hi)
        return self.b.add(hint + "-str", f'"\\"" {body} "\\""')

    def arr(self, schema: dict[str, Any], hint: str) -> str:
        self.base("ws")
        saved, self.bare = self.bare, []
        try:
            prefix = schema.get("prefixItems")
            items = schema.get("items", True)
            if isinstance(items, list):  # draft 7 tuple form
                prefix, items = items, schema.get("additionalItems", True)
            prefix = list(prefix or [])
            lo = int(schema.get("minItems", 0))
            hi = schema.get("maxItems")
            hi = None if hi is None else int(hi)
            if hi is not None and lo > hi:
                raise SchemaError("minItems is greater than maxItems", param="minItems")
            if hi is not None:
                prefix = prefix[:hi]
            rules = [self.visit(s, f"{hint}-{i}") if s is not False else None
                     for i, s in enumerate(prefix)]  # fmt: skip
            rest = None if items is False else self.visit(items, f"{hint}-item")
            elems = self._elems(rules, rest, lo, hi, 0, hint)
            return self.b.add(hint + "-arr", f'"[" ws {elems} ws "]"')
        finally:
            self.bare = saved

    def _elems(self, prefix, rest, lo, hi, i, hint) -> str:
        """Elements from index i on, given i elements already emitted."""
        sep = f"{SEP} " if i else ""
        if i < len(prefix):
            if prefix[i] is None:  # prefix item `false`: the array must end before it
                if i < lo:
                    raise SchemaError("minItems needs an item that is `false`", param="minItems")
                return '""'
            tail = self._elems(prefix, rest, lo, hi, i + 1, hint)
            seq = f"{sep}{prefix[i]} {tail}"
            return seq if i < lo else self.b.add(f"{hint}-from{i}", f"({seq})?")
        if rest is None:
            if i < lo:
                raise SchemaError("minItems exceeds the items allowed", param="minItems")
            return '""'
        need = min(max(lo - i, 0), MAX_BOUND)  # llama.cpp caps repetitions at 2000
        room = None if hi is None or hi - i > MAX_BOUND else hi - i
        if room == 0:
            return '""'
        if i:
            return repeat(f"{SEP} {rest}", need, room)
        head_lo = max(need - 1, 0)
        more = repeat(f"{SEP} {rest}", head_lo, None if room is None else room - 1)
        body = f"{rest} {more}"
        return body if need else f"({body})?"

    def obj(self, schema: dict[str, Any], hint: str) -> str:
        self.base("ws")
        saved, self.bare = self.bare, []
        try:
            return self._obj(schema, hint)
        finally:
            self.bare = saved

    def _obj(self, schema: dict[str, Any], hint: str) -> str:
        props: dict[str, Any] = dict(schema.get("properties", {}))
        required = list(dict.fromkeys(schema.get("required", [])))
        extra = schema.get("additionalProperties")
        if extra is None and not props:
            # A bare object schema: any members. With declared properties and no explicit
            # additionalProperties we only generate the declared ones (a subset that fits).
            extra = True
        for name in required:
            if name not in props:
                if extra is False:
                    raise SchemaError(f"required property {name!r} is not allowed",
                                      param="required")  # fmt: skip
                props[name] = extra if isinstance(extra, dict) else True
        entries = []
        for name, sub in props.items():
            if sub is False:
                if name in required:
                    raise SchemaError(f"required property {name!r} has schema false",
                                      param="required")  # fmt: skip
                continue
            val = self.visit(sub, f"{hint}-{name}")
            key = literal(json.dumps(name, ensure_ascii=False))
            entries.append((self.b.add(f"{hint}-{name}-kv", f'{key} ws ":" ws {val}'),
                            name in required))  # fmt: skip
        extra_kv = None
        if extra is not None and extra is not False:
            val = self.visit(extra, f"{hint}-extra")
            key = self.key_not_in(list(props), hint)
            extra_kv = self.b.add(f"{hint}-extra-kv", f'{key} ws ":" ws {val}')
        # rest[i]: properties from i on, something already emitted; first[i]: nothing yet.
        n = len(entries)
        rest = self.b.add(f"{hint}-rest", f"({SEP} {extra_kv})*") if extra_kv else '""'
        first = f"({extra_kv} {rest})?" if extra_kv else '""'
        for i in reversed(range(n)):
            kv, req = entries[i]
            if req:
                new_rest = f"{SEP} {kv} {rest}"
                new_first = f"{kv} {rest}"
            else:
                new_rest = f"({SEP} {kv})? {rest}"
                new_first = f"{kv} {rest} | {first}"
            rest = self.b.add(f"{hint}-r{i}", new_rest)
            first = self.b.add(f"{hint}-f{i}", new_first)
        return self.b.add(hint + "-obj", f'"{{" ws {first} ws "}}"')

    def key_not_in(self, names: list[str], hint: str) -> str:
        """A JSON string that is none of `names` (exact: a trie of the names' characters)."""
        if not names:
            return self.base("string")
        trie: dict = {}
        for name in names:
            node = trie
            for ch in name:
                node = node.setdefault(ch, {})
            node[""] = True
        counter = [0]

        def walk(node: dict) -> str:
            alts = [] if "" in node else ['"\\""']
            kids = [c for c in node if c]
            for ch in kids:
                alts.append(f"{json_chars([(ord(ch), ord(ch))])} {walk(node[ch])}")
            others = [(ord(c), ord(c)) for c in kids]
            alts.append(f'{json_chars(_negate(others))} char* "\\""')
            counter[0] += 1
            return self.b.add(f"{hint}-key{counter[0]}", " | ".join(alts))

        self.base("char")
        return f'"\\"" {walk(trie)}'


_ANNOTATIONS = {"title", "description", "default", "examples", "$comment", "deprecated",
                "readOnly", "writeOnly", "$schema", "$id", "$defs", "definitions",
                "$anchor"}  # fmt: skip


def _percent_decode(s: str) -> str:
    from urllib.parse import unquote

    return unquote(s)
