"""Request parsing: the JSON body validated as a request model, and limits checked against
this server's settings."""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel

from slm_api.errors import APIError
from slm_api.plumbing import state

BodyT = TypeVar("BodyT", bound=BaseModel)

# A string once its escaped backslashes and quotes are gone: no escape left to step through.
_PLAIN_STRING = re.compile(r'"[^"]*"')
_BRACKETS = re.compile(r"[\[\]{}]")
_OPEN, _CLOSE = frozenset("[{"), frozenset("]}")
# A \u escape of a UTF-16 surrogate: json.loads turns one without its pair into a str that
# no UTF-8 encoder (tokenizer, SQLite, the reply) accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as inf
        raise _NotFinite(text[:40])
    return value


def parse_body(model: type[BodyT]) -> BodyT:
    """The JSON body validated as `model`; malformed JSON and wrong shapes become 400s."""
    return model.model_validate(json_body())


def json_body() -> dict[str, Any]:
    """The request's JSON object, refused at the door (400) when it is not JSON, nests deeper
    than MAX_JSON_DEPTH or holds text that is not Unicode: every family, streamed or not, gets
    the same answer in its own envelope before any of its code runs."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise APIError(400, "The request body is empty; send a JSON object")
    if not request.is_json:
        raise APIError(400, "The request body is not valid JSON (send it as "
                       "Content-Type: application/json)", code="invalid_json")
    settings = state.settings()
    data = load_json(raw, settings.max_json_depth, max_plain_bytes=settings.max_request_bytes)
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object", code="invalid_json")
    return data


def load_json(raw: bytes, max_depth: int, max_plain_bytes: int | None = None) -> Any:
    """`raw` parsed, or a 400 saying why not: not JSON, not UTF-8 (or UTF-16/32 with a BOM, as
    json.loads reads bytes), nested deeper than `max_depth`, or a string with a lone surrogate;
    or a 413 for a body above `max_plain_bytes` (MAX_REQUEST_BYTES) holding more values than
    one within it could.

    The depth is bounded before parsing: json.loads recurses (a RecursionError at ~1,000
    levels), and everything after it (pydantic, the schema-to-grammar converter) recurses
    too."""
    try:
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise APIError(400, f"The request body is not valid UTF-8 (byte {exc.start})",
                       code="invalid_json") from None
    if max_plain_bytes is not None and len(text) > max_plain_bytes:
        _bound_values(text, max_plain_bytes)
    if too_deep(text, max_depth):
        raise _too_deep(max_depth)
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotFinite as exc:
        # Python reads NaN, Infinity and 1e999 as floats; JSON (RFC 8259) has none of them and
        # no field of any API means anything by them, so they are refused once, here, for typed
        # fields and free-form ones (schemas, tool arguments) alike.
        raise APIError(400, f"The request body holds a number JSON does not have ({exc}); "
                       "send finite numbers only", code="invalid_json") from None
    except RecursionError:  # the scan's bound is above the interpreter's own
        raise _too_deep(max_depth) from None
    except ValueError as exc:
        raise APIError(400, f"The request body is not valid JSON ({exc})",
                       code="invalid_json") from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(data)
    return data


def _bound_values(text: str, max_plain_bytes: int) -> None:
    """The media routes' budget (MAX_MEDIA_REQUEST_BYTES) is for base64 text: spent on
    structure, 30 MB of `[],` parsed into 10 million lists (723 MiB and 11 s for one request).
    A body above MAX_REQUEST_BYTES may hold no more values than one within it: every value past
    a container's first follows a comma, every container opens with a bracket, and counting them
    in the whole text (strings too: C-speed, no scan of the strings) overcounts only for
    megabytes of prose, past any context anyway."""
    limit = max_plain_bytes // 2  # "0," is the shortest value a body can repeat
    values = text.count(",") + text.count("[") + text.count("{")
    if values > limit:
        raise APIError(413, f"The request body holds about {values:,} JSON values; a body above "
                       f"MAX_REQUEST_BYTES ({max_plain_bytes:,} bytes), which only routes that "
                       f"take images accept, may hold at most {limit:,}: the larger budget is "
                       "for images' base64 text", code="body_structure_too_large")


def too_deep(text: str, max_depth: int) -> bool:
    """Whether JSON `text` nests arrays and objects more than `max_depth` deep (brackets inside
    strings do not count). The scan stops at the first bracket past the bound, so 50,000 "["
    cost `max_depth` steps."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    # Strings are cut out by C-speed passes that never step through an escape: a regex that
    # matched strings escape by escape held the interpreter's lock 1.9 s on one string of 15
    # million "\n" (every thread of the process, /health included, waited). Escaped
    # backslashes go first, so "\\" before a quote does not hide it; then escaped quotes, and
    # every quote left opens or closes a string (a backslash outside strings is not JSON:
    # json.loads refuses it next).
    plain = _PLAIN_STRING.sub("", text.replace("\\\\", "").replace('\\"', ""))
    depth = 0
    for match in _BRACKETS.finditer(plain):
        token = match.group()
        if token in _OPEN:
            depth += 1
            if depth > max_depth:
                return True
        elif token in _CLOSE:
            depth -= 1
    return False


def _too_deep(max_depth: int) -> APIError:
    return APIError(400, f"The request body nests arrays and objects more than {max_depth} "
                    "levels deep (MAX_JSON_DEPTH)", code="json_too_deep")


def _refuse_lone_surrogates(data: Any) -> None:
    # Iterative: the document may be as deep as MAX_JSON_DEPTH allows.
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if _SURROGATE.search(key):
                    raise _not_unicode(where or None)
                stack.append((path, item))
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}" if where else str(i), item)
                         for i, item in enumerate(value))
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise _not_unicode(where or None)


def _not_unicode(param: str | None) -> APIError:
    where = f"{param}: " if param else ""
    return APIError(400, f"{where}text holds a lone UTF-16 surrogate (a \\ud800-\\udfff "
                    "escape without its pair), which is not Unicode", param=param,
                    code="invalid_unicode")


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


def embedding_inputs(items: list[Any], param: str = "input") -> list[Any]:
    """An embedding request's inputs checked against MAX_EMBEDDING_INPUTS, before any is
    tokenized: one request may not hold the embedding context for thousands of decodes."""
    cap = state.settings().max_embedding_inputs
    if len(items) > cap:
        raise APIError(400, f"{param} has {len(items)} items, above this server's cap of {cap} "
                       "per request (MAX_EMBEDDING_INPUTS); send them in several requests",
                       param=param, code="too_many_inputs")
    return items


def choice_count(n: int) -> int:
    """The caller's `n` (choices per request) checked against MAX_N."""
    cap = state.settings().max_n
    if n > cap:
        raise APIError(400, f"n is {n}, above this server's cap of {cap}", param="n")
    return n
