"""Schema validity and instance checks with `jsonschema` (formats checked too)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError as _JsSchemaError
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from .errors import SchemaError
from .limits import check_limits


def _uses_draft7(node: Any) -> bool:
    """True when a schema without $schema uses draft-7-only spellings (tuple `items`, ...)."""
    if isinstance(node, dict):
        if isinstance(node.get("items"), list) or "additionalItems" in node:
            return True
        return any(_uses_draft7(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_draft7(v) for v in node)
    return False


def validator_class(schema: Any) -> type:
    if isinstance(schema, dict) and "$schema" in schema:
        return validator_for(schema, default=Draft202012Validator)
    return Draft7Validator if _uses_draft7(schema) else Draft202012Validator


def _where(path: Any) -> str:
    return "/" + "/".join(str(p) for p in path) if path else "(root)"


def check_schema(schema: Any) -> None:
    """Raise SchemaError naming the problem when `schema` is not a valid JSON Schema."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("a JSON Schema must be an object or a boolean", param="schema")
    check_limits(schema)  # before jsonschema or the converter spend time on it
    try:
        validator_class(schema).check_schema(schema)
    except RecursionError:
        raise SchemaError("schema is nested too deeply", param="schema") from None
    except _JsSchemaError as exc:
        keyword = str(exc.validator) if exc.validator else "schema"
        raise SchemaError(
            f"invalid JSON Schema at {_where(exc.path)}: {exc.message}",
            param=str(exc.path[-1]) if exc.path else keyword,
        ) from None


def validation_errors(instance: Any, schema: dict[str, Any] | bool) -> list[str]:
    """Empty when `instance` fits `schema` (formats checked too), else readable error messages."""
    cls = validator_class(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
        return [f"{_where(e.path)}: {e.message}" for e in errors]
    except Unresolvable as exc:  # unresolvable $ref
        return [f"schema error: {exc}"]
