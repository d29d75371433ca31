"""Schema-guided output: a JSON Schema becomes a grammar before generation, and the reply is
checked against the schema after it, so success always means the data fits."""

from __future__ import annotations

import json
from typing import Any

from slm_api.api.core.protocol import ResponseFormat
from slm_api.errors import APIError
from slm_api.grammar import check_schema, schema_to_gbnf, validation_errors

ANY_OBJECT: dict[str, Any] = {"type": "object"}


def schema_grammar(schema: dict[str, Any] | bool) -> str:
    """Validate `schema` as a JSON Schema and convert it; both failures are the client's 400."""
    check_schema(schema)
    return schema_to_gbnf(schema)


def response_format_schema(fmt: ResponseFormat | None) -> dict[str, Any] | bool | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ANY_OBJECT
    assert fmt.json_schema is not None
    return fmt.json_schema.schema_


def response_format_grammar(fmt: ResponseFormat | None) -> str | None:
    schema = response_format_schema(fmt)
    return None if schema is None else schema_grammar(schema)


def parse_and_validate(text: str, schema: dict[str, Any] | bool) -> Any:
    """The reply as JSON that fits `schema`, or a 502: the grammar promised this, so a mismatch
    is the server's failure, reported loudly rather than returned as success."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise APIError(
            502, f"the model's output is not valid JSON ({exc.msg} at char {exc.pos})",
            code="invalid_model_output",
        ) from exc
    errors = validation_errors(data, schema)
    if errors:
        raise APIError(
            502, "the model's output does not fit the schema: " + "; ".join(errors[:3]),
            code="schema_mismatch",
        )
    return data


def check_structured_output(
    fmt: ResponseFormat | None, text: str, *, client_stop: bool = False
) -> None:
    """`client_stop`: the request set stop sequences, so a reply cut short may be their doing
    (the client's choice: a 400), not the grammar's failure (a 502)."""
    schema = response_format_schema(fmt)
    if schema is None:
        return
    try:
        parse_and_validate(text, schema)
    except APIError as exc:
        if not client_stop:
            raise
        raise APIError(
            400, f"the reply does not fit response_format ({exc.message}); one of the stop "
            "sequences may have ended it early", param="stop", code="output_truncated",
        ) from exc
