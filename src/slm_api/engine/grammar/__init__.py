"""JSON Schema to GBNF, and the check of generated output against the schema."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError as _JSONSchemaError

from slm_api.engine.grammar.convert import CHECKED_AFTER, REFUSED, Converter, Unsupported
from slm_api.engine.grammar.gbnf import literal
from slm_api.engine.types import InvalidRequest

__all__ = ["CHECKED_AFTER", "REFUSED", "SchemaError", "check_schema", "schema_to_gbnf",
           "validation_errors"]


class SchemaError(InvalidRequest):
    """The schema is not valid, or uses a keyword we refuse; the message names it."""

    code = "invalid_schema"


def schema_to_gbnf(schema: dict[str, Any] | bool, *, prefix: str = "", suffix: str = "") -> str:
    """A GBNF grammar (root rule `root`) whose language is the JSON texts that fit `schema`,
    optionally wrapped in literal `prefix`/`suffix` text (e.g. "<tool_call>" ... "</tool_call>")."""
    converter = Converter(schema)
    try:
        body = converter.visit(schema, "root-value")
    except Unsupported as exc:
        raise SchemaError(str(exc), param=exc.keyword) from exc
    except RecursionError as exc:
        raise SchemaError("the schema nests too deeply", param="schema") from exc
    parts = [literal(prefix)] if prefix else []
    parts.append(body)
    if suffix:
        parts.append(literal(suffix))
    lines = [f"root ::= {' '.join(parts)}"]
    lines += [f"{name} ::= {rule}" for name, rule in converter.rules.items()]
    return "\n".join(lines) + "\n"


def _validator(schema: Any) -> type:
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)


def check_schema(schema: Any) -> None:
    """Raise SchemaError naming the problem when `schema` is not a valid JSON Schema."""
    if not isinstance(schema, dict | bool):
        raise SchemaError("a JSON Schema must be an object or a boolean", param="schema")
    try:
        _validator(schema).check_schema(schema)
    except _JSONSchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the root"
        raise SchemaError(f"invalid JSON Schema at {where}: {exc.message}",
                          param="schema") from exc


def validation_errors(instance: Any, schema: dict[str, Any] | bool) -> list[str]:
    """Empty when `instance` fits `schema` (formats checked too), else readable messages."""
    cls = _validator(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
