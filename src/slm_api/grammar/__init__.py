"""JSON Schema to GBNF, and the check of generated output against the schema.

`schema_to_gbnf` refuses (SchemaError, HTTP 400, `param` naming the keyword) what it cannot
honour, and over-approximates a few keywords; callers must run `validation_errors` on the
generated JSON, so an over-approximation can never become a silent success.
"""

from __future__ import annotations

from typing import Any

from .convert import Converter
from .cost import check_grammar
from .errors import SchemaError
from .gbnf import literal
from .unique import Stage, embed, unique_spec
from .validate import check_schema, validation_errors

__all__ = ["SchemaError", "check_grammar", "check_schema", "schema_to_gbnf",
           "validation_errors"]


def schema_to_gbnf(schema: dict[str, Any] | bool, *, prefix: str = "", suffix: str = "") -> str:
    """A GBNF grammar (root rule `root`) whose language is the JSON texts that fit `schema`,
    optionally wrapped in literal `prefix`/`suffix` text (e.g. "<tool_call>" ... "</tool_call>")."""
    conv = Converter(schema)
    conv.base("ws")
    try:
        check_schema(schema)
        value = conv.visit(schema, "root-value")
        spec = unique_spec(schema, stages=(Stage((prefix,)),) if prefix else ())
    except RecursionError:
        raise SchemaError("schema is nested too deeply", param="schema") from None
    parts = [literal(prefix)] if prefix else []
    parts += ["ws", value, "ws"]
    if suffix:
        parts.append(literal(suffix))
    gbnf = f"root ::= {' '.join(parts)}\n" + conv.b.render()
    check_grammar(gbnf)
    return embed(gbnf, spec)
