"""The GGUF's own chat template (tokenizer.chat_template), rendered in a Jinja2 sandbox.

The template comes from a model file, so it is treated as untrusted code: an immutable sandbox
(no attribute internals, no mutating lists/dicts), with an unsafe access failing the render
instead of quietly printing nothing. The environment mirrors what Hugging Face templates expect:
trim_blocks/lstrip_blocks, loop controls, `raise_exception`, `strftime_now`, and a `tojson` that
does not HTML-escape.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from slm_api.errors import InvalidRequest


class _TemplateRaised(TemplateError):
    """raise_exception() called by the template: its message is meant for the client."""


class _StrictSandbox(ImmutableSandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:  # type: ignore[override]
        # The stock sandbox returns an Undefined, which prints as "" and hides the attempt.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                            "is not allowed in a chat template")


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` (marks assistant text for training masks in
    some Hugging Face templates): rendered as its plain body."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False,
            sort_keys: bool = False, separators: Any = None) -> str:
    # Jinja's own tojson escapes <, >, & for HTML, which would corrupt prompts.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys,
                      separators=tuple(separators) if separators else None)


def _environment() -> ImmutableSandboxedEnvironment:
    env = _StrictSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.loopcontrols", _GenerationTag],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


class JinjaTemplate:
    """A compiled chat template. Construction raises ValueError when it does not compile."""

    def __init__(self, source: str):
        env = _environment()
        try:
            parsed = env.parse(source)
            self._template = env.from_string(source)
        except TemplateError as e:
            raise ValueError(f"the GGUF chat template does not compile: {e}") from e
        # Templates that never mention `tools` cannot show them; the caller injects them.
        self.uses_tools = "tools" in meta.find_undeclared_variables(parsed)
        self.source = source

    def render(self, **context: Any) -> str:
        try:
            return self._template.render(**context)
        except _TemplateRaised as e:
            raise InvalidRequest(f"chat template rejected the messages: {e}",
                                 param="messages") from e
        except SecurityError as e:
            raise InvalidRequest(f"chat template error: {e}", param="messages") from e
        except InvalidRequest:
            raise
        except Exception as e:  # noqa: BLE001 - any template failure is the request's problem
            raise InvalidRequest(
                f"chat template failed to render these messages: {type(e).__name__}: {e}",
                param="messages",
            ) from e
