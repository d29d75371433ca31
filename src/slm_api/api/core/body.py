"""Request parsing: the JSON body validated as a request model, and limits checked against
this server's settings."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel

from slm_api.errors import APIError
from slm_api.plumbing import state

BodyT = TypeVar("BodyT", bound=BaseModel)


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as inf
        raise _NotFinite(text[:40])
    return value


def _json_body() -> Any:
    """The body as JSON, or None. Python's json reads NaN, Infinity and 1e999 as floats;
    JSON (RFC 8259) has none of them, and no field of any API means anything by them, so
    they are refused here, once, for typed fields and free-form ones (schemas, arguments)."""
    if not request.is_json:
        return None  # as Flask's get_json: a body sent as another type is not read as JSON
    raw = request.get_data(cache=True)
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotFinite as exc:
        raise APIError(400, f"The request body holds a number JSON does not have ({exc}); "
                       "send finite numbers only", code="invalid_json") from None
    except (ValueError, RecursionError):
        return None


def parse_body(model: type[BodyT]) -> BodyT:
    """The JSON body validated as `model`; malformed JSON and wrong shapes become 400s."""
    data = _json_body()
    if data is None:
        raw = request.get_data(cache=True)
        if not raw.strip():
            raise APIError(400, "The request body is empty; send a JSON object")
        raise APIError(400, "The request body is not valid JSON", code="invalid_json")
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object", code="invalid_json")
    return model.model_validate(data)


def one_or_many(value: Any) -> list[str | list[int]]:
    """OpenAI's "a prompt or a list of prompts" (completions' `prompt`, embeddings' `input`):
    a string, a list of strings, a token list, or a list of token lists, as a list of items."""
    if isinstance(value, str):
        return [value]
    if all(isinstance(v, int) for v in value):
        return [list(value)]
    return list(value)


def completion_budget(requested: int | None, param: str = "max_tokens") -> int | None:
    """The caller's max_tokens checked against MAX_TOKENS_CAP; None lets the engine fill the
    context (still capped)."""
    cap = state.settings().max_tokens_cap
    if requested is not None and requested > cap:
        raise APIError(
            400, f"{param} is {requested}, above this server's cap of {cap}", param=param
        )
    return requested


def choice_count(n: int) -> int:
    """The caller's `n` (choices per request) checked against MAX_N."""
    cap = state.settings().max_n
    if n > cap:
        raise APIError(400, f"n is {n}, above this server's cap of {cap}", param="n")
    return n
