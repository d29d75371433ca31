"""allOf: merge subschemas into one (exact for the common keywords, else over-approximate)."""

from __future__ import annotations

import json
from typing import Any

from .errors import SchemaError

_MAX_KEYS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_MIN_KEYS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def _types(v: Any) -> set[str]:
    return {v} if isinstance(v, str) else set(v)


def _merge_type(a: Any, b: Any) -> list[str]:
    ta, tb = _types(a), _types(b)
    out = ta & tb
    # integer is a subtype of number
    if "integer" in ta and "number" in tb or "number" in ta and "integer" in tb:
        out.add("integer")
    if not out:
        raise SchemaError(f"allOf requires types {sorted(ta)} and {sorted(tb)} at once",
                          param="allOf")  # fmt: skip
    return sorted(out)


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def merge(a: Any, b: Any) -> Any:
    if a is True or a == {}:
        return b
    if b is True or b == {}:
        return a
    if a is False or b is False:
        return False
    out = dict(a)
    for k, v in b.items():
        if k not in out:
            out[k] = v
            continue
        cur = out[k]
        if k == "type":
            out[k] = _merge_type(cur, v)
        elif k == "required":
            out[k] = list(dict.fromkeys([*cur, *v]))
        elif k == "properties":
            props = dict(cur)
            for name, sub in v.items():
                props[name] = merge(props[name], sub) if name in props else sub
            out[k] = props
        elif k in _MAX_KEYS and not isinstance(v, bool) and not isinstance(cur, bool):
            out[k] = max(cur, v)
        elif k in _MIN_KEYS and not isinstance(v, bool) and not isinstance(cur, bool):
            out[k] = min(cur, v)
        elif k == "enum":
            keep = {_key(x) for x in v}
            out[k] = [x for x in cur if _key(x) in keep]
        elif (
            k in ("items", "additionalProperties")
            and isinstance(cur, (dict, bool))
            and isinstance(v, (dict, bool))
        ):
            out[k] = merge(cur, v)
        elif k in ("anyOf", "oneOf"):
            # (a1|a2) & (b1|b2) = a1&b1 | a1&b2 | ...
            out[k] = [merge(x, y) for x in cur for y in v]
        elif k == "const" and _key(cur) != _key(v):
            out["enum"] = []  # contradiction: nothing fits
        # anything else that differs (two patterns, ...) keeps the first: the
        # post-generation check enforces the other.
    if "const" in out and "enum" in out:
        out["enum"] = [x for x in out["enum"] if _key(x) == _key(out["const"])]
        del out["const"]
    return out


def merge_all(schemas: list[Any]) -> Any:
    out: Any = True
    for s in schemas:
        out = merge(out, s)
    return out
