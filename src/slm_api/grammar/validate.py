"""Schema validity and instance checks with `jsonschema` (formats checked too), every client
pattern matched in linear time.

jsonschema runs `pattern`, `patternProperties` (and `additionalProperties` beside them) with
Python's backtracking `re`, and a few format checkers parse in super-linear time; on client text
that froze the process (issue 36). The validator classes here replace those keywords with RE2
(patterns.py) and those formats with linear checks, and check_schema refuses up front any
pattern RE2 cannot run, so every route that checks a schema or an output goes through them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import quote

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import SchemaError as _JsSchemaError
from jsonschema.validators import extend, validator_for
from referencing.exceptions import Unresolvable

from .errors import SchemaError
from .limits import check_limits
from .patterns import PatternError, compile_pattern, refusal, search

# uri-template's parser is quadratic in the text (a 60,000-character template took 5 s); no
# real template comes near this, and one that passes it fails the format.
MAX_URI_TEMPLATE_CHARS = 4096


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any,
                        schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any,
                           schema: Any) -> Iterator[ValidationError]:
    # jsonschema's own, but with the patternProperties it skips matched by RE2.
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(k for k in instance
                    if k not in declared and not any(search(p, k) for p in patterns))
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        unexpected = ", ".join(repr(k) for k in extras)
        if patterns:
            yield ValidationError(f"{unexpected} do not match any of the regexes: "
                                  + ", ".join(repr(p) for p in sorted(patterns)))
        else:
            yield ValidationError(f"Additional properties are not allowed ({unexpected} "
                                  f"{'was' if len(extras) == 1 else 'were'} unexpected)")


def _unevaluated_properties(validator: Any, *_: Any) -> Iterator[ValidationError]:
    # jsonschema finds the evaluated keys with `re` on patternProperties; the grammar refuses
    # the keyword anyway, so its check is refused too rather than run unbounded.
    raise SchemaError("JSON Schema keyword 'unevaluatedProperties' is not supported",
                      param="unevaluatedProperties")
    yield  # a generator, as jsonschema's keywords are


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        compile_pattern(instance)
    return True


def _ascii_iri(instance: str) -> str:
    """An IRI as the URI it maps to (RFC 3987 3.1): its non-ASCII characters percent-encoded."""
    return "".join(c if c < "\x80" else quote(c, safe="") for c in instance)


def _as_uri(check: Any) -> Any:
    def is_iri(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        try:
            return check(_ascii_iri(instance))
        except UnicodeEncodeError:  # a lone surrogate is no character of an IRI
            return False

    return is_iri


def format_checker(base: FormatChecker) -> FormatChecker:
    """`base`'s formats, with the super-linear ones replaced: `regex` compiles with RE2 (the
    engine the patterns run on), `iri` is checked as the URI it maps to (rfc3987-syntax's
    Earley parser took 250 ms for 100 characters), `uri-template` is bounded in length."""
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.checkers)
    checker.checks("regex", raises=PatternError)(_is_regex)
    for iri, uri in (("iri", "uri"), ("iri-reference", "uri-reference")):
        if uri in checker.checkers and iri in checker.checkers:
            check, raises = checker.checkers[uri]
            checker.checks(iri, raises=raises)(_as_uri(check))
        else:
            checker.checkers.pop(iri, None)
    if "uri-template" in checker.checkers:
        check, raises = checker.checkers["uri-template"]
        checker.checks("uri-template", raises=raises)(
            lambda v, check=check: not isinstance(v, str)
            or (len(v) <= MAX_URI_TEMPLATE_CHARS and check(v)))
    return checker


_KEYWORDS = {"pattern": _pattern, "patternProperties": _pattern_properties,
             "additionalProperties": _additional_properties,
             "unevaluatedProperties": _unevaluated_properties}


@cache
def bounded(cls: type) -> type:
    """`cls` (a jsonschema draft) with every client pattern and format check bounded."""
    keywords = {k: f for k, f in _KEYWORDS.items() if k in cls.VALIDATORS}
    return extend(cls, keywords, format_checker=format_checker(cls.FORMAT_CHECKER))


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
    """The bounded validator of the draft `schema` is written in."""
    if isinstance(schema, dict) and "$schema" in schema:
        return bounded(validator_for(schema, default=Draft202012Validator))
    return bounded(Draft7Validator if _uses_draft7(schema) else Draft202012Validator)


def _where(path: Any) -> str:
    return "/" + "/".join(str(p) for p in path) if path else "(root)"


def check_schema(schema: Any) -> None:
    """Raise SchemaError naming the problem when `schema` is not a valid JSON Schema."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("a JSON Schema must be an object or a boolean", param="schema")
    check_limits(schema)  # before jsonschema or the converter spend time on it
    cls = validator_class(schema)
    try:
        # The bounded format checker: a `pattern` RE2 cannot run is refused here, by position.
        cls.check_schema(schema, format_checker=cls.FORMAT_CHECKER)
    except RecursionError:
        raise SchemaError("schema is nested too deeply", param="schema") from None
    except _JsSchemaError as exc:
        keyword = str(exc.validator) if exc.validator else "schema"
        why = f" ({refusal(exc.cause)})" if isinstance(exc.cause, PatternError) else ""
        raise SchemaError(
            f"invalid JSON Schema at {_where(exc.path)}: {exc.message}{why}",
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
