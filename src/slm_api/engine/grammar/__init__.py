"""JSON Schema to GBNF, and the check of generated output against the schema. (STUB: to be built)"""

from __future__ import annotations

from typing import Any

from slm_api.engine.types import InvalidRequest


class SchemaError(InvalidRequest):
    """The schema is not valid, or uses a keyword we refuse; the message names it."""

    code = "invalid_schema"


def schema_to_gbnf(schema: dict[str, Any] | bool, *, prefix: str = "", suffix: str = "") -> str:
    """A GBNF grammar (root rule `root`) whose language is the JSON texts that fit `schema`,
    optionally wrapped in literal `prefix`/`suffix` text (e.g. "<tool_call>" ... "</tool_call>")."""
    raise NotImplementedError


def check_schema(schema: Any) -> None:
    """Raise SchemaError naming the problem when `schema` is not a valid JSON Schema."""
    raise NotImplementedError


def validation_errors(instance: Any, schema: dict[str, Any] | bool) -> list[str]:
    """Empty when `instance` fits `schema` (formats checked too), else readable error messages."""
    raise NotImplementedError
