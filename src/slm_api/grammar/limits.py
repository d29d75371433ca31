"""What a schema may cost, checked before anything is built from it.

Building a grammar grows faster than linearly with an enum's values or a union's branches (a
20,000-value enum took 128 s on two cores, then made a 149k-token prompt), so a schema is measured
first, in one linear walk, and refused with a 400 naming the limit it passed.

Repetition counts (minItems, maxItems, minLength, maxLength, a pattern's {m,n}) multiply when
nested and add up side by side; the grammar they become is small (`x{1000}` is seven
characters), but what is built from it is not: the shortest output (the budget guide writes and
tokenizes it) is their product, and the recognizer and llama.cpp expand every `{m,n}` into
elements. cost.check_grammar measures both on the grammar, as numbers, before either is built.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import SchemaError

MAX_SCHEMA_BYTES = 64 * 1024  # the schema as compact JSON
MAX_ENUM_VALUES = 1000  # in one enum (a 1,000-value enum builds in about 0.3 s)
MAX_BRANCHES = 500  # in one anyOf / oneOf / allOf
MAX_PATTERN_ALTERNATIVES = 500  # `|` in one regular expression
MAX_NODES = 10_000  # objects and arrays in the whole schema
# Elements the grammar's repetitions expand to, all together (600 distinct maxItems near 1,000
# took the recognizer 6 s to parse; 50,000 take about 0.3 s).
MAX_REPEATS = 50_000
# Bytes of the shortest output a schema allows: nested minItems 1000 x minLength 1000 made the
# budget guide write and tokenize 1 MB per request, three levels 10 MB, four 1 GB.
MAX_SHORTEST_OUTPUT = 64 * 1024


def check_limits(schema: Any, param: str = "schema") -> None:
    """Raise SchemaError (400) when `schema` passes one of the limits above."""
    try:
        size = len(json.dumps(schema, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):
        raise SchemaError("the schema is not plain JSON or is nested too deeply",
                          param=param) from None
    if size > MAX_SCHEMA_BYTES:
        raise SchemaError(f"the schema is {size} bytes of JSON; the limit is "
                          f"{MAX_SCHEMA_BYTES}", param=param, code="schema_too_large")
    nodes = 0
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            nodes += 1
            stack.extend(node)
        elif isinstance(node, dict):
            nodes += 1
            _check_node(node)
            stack.extend(node.values())
        if nodes > MAX_NODES:
            raise SchemaError(f"the schema has more than {MAX_NODES} objects and arrays",
                              param=param, code="schema_too_large")


def _check_node(node: dict[str, Any]) -> None:
    enum = node.get("enum")
    if isinstance(enum, list) and len(enum) > MAX_ENUM_VALUES:
        raise SchemaError(f"an enum has {len(enum)} values; the limit is {MAX_ENUM_VALUES}",
                          param="enum", code="schema_too_large")
    for key in ("anyOf", "oneOf", "allOf"):
        branches = node.get(key)
        if isinstance(branches, list) and len(branches) > MAX_BRANCHES:
            raise SchemaError(f"{key} has {len(branches)} branches; the limit is {MAX_BRANCHES}",
                              param=key, code="schema_too_large")
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.count("|") > MAX_PATTERN_ALTERNATIVES:
        raise SchemaError(
            f"pattern has {pattern.count('|') + 1} alternatives; the limit is "
            f"{MAX_PATTERN_ALTERNATIVES + 1}", param="pattern", code="schema_too_large")

