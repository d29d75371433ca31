"""JSON Schema (draft 7 and 2020-12 spellings) to a GBNF grammar.

Exact where GBNF can be exact; where it cannot, either the keyword is refused (SchemaError names
it) or the grammar allows a little more than the schema and the `jsonschema` check after
generation catches a mismatch. README.md lists which keyword gets which.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slm_api.engine.grammar.formats import FORMATS
from slm_api.engine.grammar.gbnf import PRIMITIVES, literal, with_dependencies
from slm_api.engine.grammar.numbers import integer_range
from slm_api.engine.grammar.regex import PatternError, pattern_to_gbnf

# Keywords we refuse: honouring them needs more than a context-free grammar, and ignoring
# them would make the model fail the final check most of the time.
REFUSED = ("not", "if", "then", "else", "dependentSchemas", "patternProperties",
           "unevaluatedProperties", "unevaluatedItems", "propertyNames", "contains")
# Keywords the grammar over-approximates; the post-generation check enforces them.
CHECKED_AFTER = ("multipleOf", "uniqueItems", "minProperties", "maxProperties",
                 "dependentRequired", "dependencies", "minContains", "maxContains")
_ANNOTATIONS = {"description", "title", "examples", "default", "$comment", "$schema", "$id",
                "deprecated", "readOnly", "writeOnly", "definitions", "$defs", "format",
                "contentMediaType", "contentEncoding", "strict", "name", *CHECKED_AFTER}
MAX_REPEAT = 100_000


class Unsupported(ValueError):
    def __init__(self, keyword: str, message: str):
        super().__init__(message)
        self.keyword = keyword


def _json_literal(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


class Converter:
    def __init__(self, root: Any):
        self.root = root
        self.rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._refs: dict[str, str] = {}

    # -- rules -------------------------------------------------------------------------------

    def use(self, primitive: str) -> str:
        for name in with_dependencies(primitive):
            self.rules.setdefault(name, PRIMITIVES[name])
        return primitive

    def rule(self, hint: str, body: str) -> str:
        if body in self._by_body:
            return self._by_body[body]
        name = self._fresh(hint)
        self.rules[name] = body
        self._by_body[body] = name
        return name

    def _fresh(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "r"
        if base[0].isdigit():
            base = "r-" + base
        name, n = base, 1
        while name in self.rules or name in PRIMITIVES:
            n += 1
            name = f"{base}-{n}"
        return name

    # -- schemas -----------------------------------------------------------------------------

    def visit(self, schema: Any, hint: str) -> str:
        """A GBNF expression (usually a rule name) matching the JSON texts that fit `schema`."""
        if schema is True or schema == {}:
            return self.use("value")
        if schema is False:
            raise Unsupported("false", f"{hint}: the schema `false` accepts nothing")
        if not isinstance(schema, dict):
            raise Unsupported("type", f"{hint}: a schema must be an object or a boolean")
        for keyword in REFUSED:
            if keyword in schema:
                raise Unsupported(keyword, f"{hint}: the keyword `{keyword}` is not supported")
        if "$ref" in schema:
            return self._ref(schema["$ref"], hint)
        if "allOf" in schema:
            return self.visit(self._merge_all_of(schema), hint)
        if "const" in schema:
            return _json_literal(schema["const"])
        if "enum" in schema:
            if not schema["enum"]:
                raise Unsupported("enum", f"{hint}: an empty enum accepts nothing")
            return "( " + " | ".join(_json_literal(v) for v in schema["enum"]) + " )"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                alts = [self.visit(self._merge([rest, sub]) if _has_constraints(rest) else sub,
                                   f"{hint}-{i}") for i, sub in enumerate(schema[key])]
                return self.rule(hint, " | ".join(alts))
        types = schema.get("type")
        if types is None:
            types = _implied_type(schema)
        if isinstance(types, list):
            alts = [self._typed(schema, t, f"{hint}-{t}") for t in types]
        else:
            alts = [self._typed(schema, types, hint)] if types else [self.use("value")]
        if schema.get("nullable") is True and "null" not in (types or []):
            alts.append(self.use("null"))
        return alts[0] if len(alts) == 1 else self.rule(hint, " | ".join(alts))

    def _typed(self, schema: dict[str, Any], kind: str, hint: str) -> str:
        if kind == "object":
            return self._object(schema, hint)
        if kind == "array":
            return self._array(schema, hint)
        if kind == "string":
            return self._string(schema, hint)
        if kind == "integer":
            return self._integer(schema, hint)
        if kind == "number":
            return self._number(schema, hint)
        if kind in ("boolean", "null"):
            return self.use(kind)
        raise Unsupported("type", f"{hint}: unknown type {kind!r}")

    def _ref(self, ref: str, hint: str) -> str:
        if ref in self._refs:
            return self._refs[ref]
        if not ref.startswith("#"):
            raise Unsupported("$ref", f"{hint}: only local $ref (#/...) is supported")
        target: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise Unsupported("$ref", f"{hint}: $ref {ref} points at nothing")
            target = target[part]
        # Name the rule before visiting its body, so recursive schemas refer to it.
        name = self._fresh("ref-" + ref.rsplit("/", 1)[-1])
        self._refs[ref] = name
        self.rules[name] = "(placeholder)"
        self.rules[name] = self.visit(target, name)
        return name

    def _resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            target: Any = self.root
            for part in ref[1:].split("/")[1:]:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema

    def _merge_all_of(self, schema: dict[str, Any]) -> dict[str, Any]:
        parts = [{k: v for k, v in schema.items() if k != "allOf"}, *schema["allOf"]]
        return self._merge(parts)

    def _merge(self, parts: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw in parts:
            part = self._resolve(raw)
            if part is True:
                continue
            if part is False:
                raise Unsupported("allOf", "allOf contains `false`")
            if "allOf" in part:
                part = self._merge_all_of(part)
            for key, value in part.items():
                if key not in out:
                    out[key] = value
                elif key == "properties":
                    props = dict(out[key])
                    for name, sub in value.items():
                        props[name] = self._merge([props[name], sub]) if name in props else sub
                    out[key] = props
                elif key == "required":
                    out[key] = list(dict.fromkeys([*out[key], *value]))
                elif key == "enum":
                    out[key] = [v for v in out[key] if v in value]
                elif key == "type":
                    a = out[key] if isinstance(out[key], list) else [out[key]]
                    b = value if isinstance(value, list) else [value]
                    both = [t for t in a if t in b or (t == "integer" and "number" in b)]
                    both += [t for t in b if t == "integer" and "number" in a and t not in both]
                    if not both:
                        raise Unsupported("allOf", "allOf combines types that never overlap")
                    out[key] = both if len(both) > 1 else both[0]
                elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems"):
                    out[key] = max(out[key], value)
                elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems"):
                    out[key] = min(out[key], value)
                else:
                    out[key] = value
        return out

    # -- types -------------------------------------------------------------------------------

    def _object(self, schema: dict[str, Any], hint: str) -> str:
        props: dict[str, Any] = dict(schema.get("properties") or {})
        required = list(schema.get("required") or [])
        for name in required:
            props.setdefault(name, True)
        extra = schema.get("additionalProperties")
        if not props:
            if extra in (None, True):
                return self.use("object")
            if extra is False:
                self.use("ws")
                return self.rule(hint, '"{" ws "}"')
        ws = self.use("ws")
        kvs = []
        for i, (name, sub) in enumerate(props.items()):
            value = self.visit(sub, f"{hint}-{name or 'empty'}")
            key = literal(json.dumps(name, ensure_ascii=False))
            kvs.append((name in required, self.rule(f"{hint}-{name or 'empty'}-kv",
                                                    f'{key} {ws} ":" {ws} {value}'), i))
        extra_kv = None
        if isinstance(extra, dict) or (extra is True):
            value = self.visit(extra, f"{hint}-additional")
            extra_kv = self.rule(f"{hint}-additional-kv",
                                 f'{self.use("string")} {ws} ":" {ws} {value}')
        # rest(i, first): the properties from i on, in the order given; optional ones may be
        # skipped, and a comma goes before every property but the first one written.
        memo: dict[tuple[int, bool], str] = {}

        def rest(i: int, first: bool) -> str:
            if (i, first) in memo:
                return memo[(i, first)]
            if i == len(kvs):
                if extra_kv is None:
                    body = '""'
                elif first:
                    body = f'( {extra_kv} ( "," {ws} {extra_kv} )* )?'
                else:
                    body = f'( "," {ws} {extra_kv} )*'
            else:
                req, kv, _ = kvs[i]
                sep = "" if first else f'"," {ws} '
                take = f"{sep}{kv} {ws} {rest(i + 1, False)}"
                body = take if req else f"{take} | {rest(i + 1, first)}"
            name = self.rule(f"{hint}-rest-{i}{'-first' if first else ''}", body)
            memo[(i, first)] = name
            return name

        return self.rule(hint, f'"{{" {ws} {rest(0, True)} "}}"')

    def _array(self, schema: dict[str, Any], hint: str) -> str:
        ws = self.use("ws")
        items = schema.get("items")
        prefix = schema.get("prefixItems") or []
        if isinstance(items, list):  # draft 7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        lo = int(schema.get("minItems", 0))
        hi = None if schema.get("maxItems") is None else int(schema["maxItems"])
        elems = [self.visit(s, f"{hint}-{i}") for i, s in enumerate(prefix)]
        if hi is not None:
            elems = elems[:hi]
        item = None if items is False else self.visit(True if items is None else items,
                                                      f"{hint}-item")
        room = len(elems) if item is None else hi
        if room is not None and lo > room:
            raise Unsupported("minItems", f"{hint}: minItems cannot be met")
        n = len(elems)
        # Items after the tuple: between t_lo and t_hi of them.
        tail = ""
        t_lo = max(0, lo - n)
        t_hi = None if hi is None else hi - n
        if item is not None and t_hi != 0:
            upper = "" if t_hi is None else str(t_hi)
            if n:
                tail = f'( "," {ws} {item} {ws} ){{{t_lo},{upper}}}'
            else:
                more_hi = "" if t_hi is None else str(t_hi - 1)
                tail = f'{item} {ws} ( "," {ws} {item} {ws} ){{{max(t_lo - 1, 0)},{more_hi}}}'
                if t_lo == 0:
                    tail = f"( {tail} )?"
        # The tuple, right-nested so that item i+1 can only follow item i; the tail comes
        # only after the whole tuple.
        body = tail
        for i in range(n - 1, -1, -1):
            sep = "" if i == 0 else f'"," {ws} '
            body = f"{sep}{elems[i]} {ws} {body}".strip()
            if i >= lo:
                body = f"( {body} )?"
        return self.rule(hint, f'"[" {ws} {body or chr(34) * 2} "]"')

    def _string(self, schema: dict[str, Any], hint: str) -> str:
        fmt = schema.get("format")
        if "pattern" in schema:
            try:
                inner = pattern_to_gbnf(schema["pattern"])
            except (PatternError, ValueError, IndexError) as exc:
                raise Unsupported("pattern", f"{hint}: pattern {schema['pattern']!r} is not "
                                  f"supported: {exc}") from exc
            self.use("char")
            return self.rule(hint, f'"\\"" {inner} "\\""')
        if fmt in FORMATS:
            return self.rule(f"{hint}-{fmt}", f'"\\"" {FORMATS[fmt]} "\\""')
        lo = int(schema.get("minLength", 0))
        hi = schema.get("maxLength")
        if hi is not None and lo > int(hi):
            raise Unsupported("minLength", f"{hint}: minLength is above maxLength")
        self.use("char")
        if lo == 0 and hi is None:
            return self.use("string")
        reps = f"{{{lo},{'' if hi is None else int(hi)}}}"
        return self.rule(hint, f'"\\"" char{reps} "\\""')

    def _integer(self, schema: dict[str, Any], hint: str) -> str:
        lo, hi = _bounds(schema, integer=True)
        if lo is None and hi is None:
            return self.use("integer")
        try:
            return self.rule(hint, integer_range(lo, hi))
        except ValueError as exc:
            raise Unsupported("minimum", f"{hint}: {exc}") from exc

    def _number(self, schema: dict[str, Any], hint: str) -> str:
        lo, _ = _bounds(schema, integer=False)
        base = self.use("number")
        if lo is not None and lo >= 0:
            # Non-negative: no minus sign. Other bounds are checked after generation.
            return self.rule(hint, PRIMITIVES["number"].removeprefix('"-"? '))
        return base


def _has_constraints(schema: dict[str, Any]) -> bool:
    return any(k not in _ANNOTATIONS for k in schema)


def _implied_type(schema: dict[str, Any]) -> str | None:
    keys = set(schema)
    if keys & {"properties", "required", "additionalProperties"}:
        return "object"
    if keys & {"items", "prefixItems", "minItems", "maxItems", "additionalItems"}:
        return "array"
    if keys & {"minLength", "maxLength", "pattern"} or schema.get("format") in FORMATS:
        return "string"
    if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return "number"
    return None


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float | None, float | None]:
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = 1 if integer else 0
    # Draft 4 booleans and draft 6+ numbers both appear in the wild.
    if ex_lo is True and lo is not None:
        lo = lo + step if integer else lo
    elif isinstance(ex_lo, int | float) and not isinstance(ex_lo, bool):
        cand = (ex_lo + 1 if float(ex_lo).is_integer() else ex_lo) if integer else ex_lo
        lo = cand if lo is None else max(lo, cand)
    if ex_hi is True and hi is not None:
        hi = hi - step if integer else hi
    elif isinstance(ex_hi, int | float) and not isinstance(ex_hi, bool):
        cand = (ex_hi - 1 if float(ex_hi).is_integer() else ex_hi) if integer else ex_hi
        hi = cand if hi is None else min(hi, cand)
    return lo, hi
