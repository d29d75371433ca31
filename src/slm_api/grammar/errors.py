"""The one error type the grammar package raises."""

from __future__ import annotations

from slm_api.errors import InvalidRequest


class SchemaError(InvalidRequest, code="invalid_schema"):
    """The schema is not valid, or uses a keyword we refuse; the message names it."""
