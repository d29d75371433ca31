"""Qwen3-Coder's XML tool calls: parsed (whole and streamed, as OpenAI deltas) and, for a
forced call, the grammar of one call in that markup.

The model writes, per call (its chat template shows it the shape):

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

A parameter's value is raw text, not JSON. As vLLM's qwen3_coder parser and llama.cpp's chat
parser do, it becomes the JSON type the tool's schema gives that parameter (integer, number,
boolean, object, array); a parameter the schema does not type, or a value that does not read
as its type, stays a string. The newline after the opening tag and the one before the closing
tag belong to the markup, not the value.

Streamed, a call starts (id, name) when `<function=NAME>` is whole, and each parameter is
sent as one JSON fragment (`{"city":"Paris"`, then `,"unit":"celsius"`, then `}`) once its
closing tag arrives: its type is only known whole.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from slm_api.grammar import SchemaError, check_grammar, check_schema
from slm_api.grammar.convert import Converter
from slm_api.grammar.gbnf import literal, repeat
from slm_api.prompting.stops import partial_suffix
from slm_api.prompting.tool_calls import ToolCall, function_of, new_call_id, rebased

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
FUNCTION_OPEN, FUNCTION_CLOSE = "<function=", "</function>"
PARAM_OPEN, PARAM_CLOSE = "<parameter=", "</parameter>"
# The template's own marker: only Qwen3-Coder's (and its fine-tunes') templates write it.
TEMPLATE_MARKER = "<function=example_function_name>"
TRIGGERS = (CALL_OPEN, FUNCTION_OPEN)

_HEAD = re.compile(r"(?:<tool_call>\s*)?<function=(?P<name>[^\s<>]{1,256})>")
_PARAM = re.compile(r"<parameter=(?P<key>[^>\n]{1,256})>")
_TAIL = re.compile(r"\s*(?:</tool_call>)?")

Delta = dict[str, Any]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _types(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return ["string"]
    if "properties" in schema:
        return ["object"]
    return []


def typed_value(raw: str, schema: Any) -> Any:
    """A parameter's raw text as the value its schema types (vLLM's qwen3_coder conversion):
    strings stay strings; a value that does not read as the declared type stays text."""
    types = _types(schema)
    if not types or "string" in types:
        if "null" in types and raw.strip().lower() == "null":
            return None
        return raw
    text = raw.strip()
    if "null" in types and text.lower() == "null":
        return None
    for kind in types:
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                continue
        if kind == "number":
            try:
                number = float(text)
            except ValueError:
                continue
            if number != number or number in (float("inf"), float("-inf")):
                continue  # JSON has no NaN or infinity
            return int(number) if number.is_integer() and not re.search(r"[.eE]", text) \
                else number
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind in ("object", "array"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
            try:
                # Models trained on Python write dicts with single quotes.
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(value, (dict, list)):
                try:
                    json.dumps(value)
                    return value
                except (TypeError, ValueError):
                    continue
    return raw


def _param_schemas(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Each function's parameter schemas by name (unusable tools are skipped: the request's
    own validation reports them)."""
    out: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools or []):
        try:
            fn = function_of(tool, i)
        except Exception:  # noqa: BLE001 - reported where the tools are planned
            continue
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, dict) else None
        out[fn["name"]] = props if isinstance(props, dict) else {}
    return out


def _value_text(body: str) -> str:
    """A parameter's text without the newlines its tags put around it."""
    if body.startswith("\n"):
        body = body[1:]
    if body.endswith("\n"):
        body = body[:-1]
    return body


@dataclass
class XmlCallDeltas:
    """Generated text as content and tool-call deltas, for Qwen3-Coder's markup; the same
    interface as tool_stream.ToolCallDeltas (feed, finish, calls, cut_call).
    `max_calls`: calls after that many are not parsed (parallel_tool_calls false)."""

    tools: list[dict[str, Any]] | None = None
    max_calls: int | None = None
    calls: list[ToolCall] = field(default_factory=list)
    _buf: str = ""
    _pos: int = 0  # next unread character of _buf
    _state: str = "text"  # text | head | params | tail | done
    _nparams: int = 0
    _head: int = 0  # where the trigger of a possible call starts
    _scan: int = 0  # where the search for a value's closing tag goes on
    _schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seen: bool = False  # content other than whitespace was sent

    def __post_init__(self) -> None:
        self._schemas = _param_schemas(self.tools)

    @property
    def cut_call(self) -> bool:
        return self._state == "params"

    def feed(self, delta: str) -> list[Delta]:
        self._buf += delta
        return self._advance(final=False)

    def finish(self, cut: bool) -> list[Delta]:
        out = self._advance(final=True)
        rest = self._buf[self._pos:]
        self._pos = len(self._buf)
        if self._state == "params":
            # Generation ended inside the call: a parameter cut short keeps what was written.
            m = _PARAM.search(rest)
            if m is not None:
                out.extend(self._param(m.group("key"), _value_text(rest[m.end():])))
            out.append(self._fragment("}" if self._nparams else "{}"))
            self._state = "done"
        elif self._state == "head":
            if not cut:  # not a call after all: what the model wrote is content
                out.extend(self._content(rest.rstrip()))
        elif self._state in ("text", "tail"):
            out.extend(self._content(rest.rstrip()))
        return out

    # -- the scanner -------------------------------------------------------------------------

    def _advance(self, final: bool) -> list[Delta]:
        out: list[Delta] = []
        while True:
            buf, pos = self._buf, self._pos
            if self._state == "text":
                if self.max_calls is not None and len(self.calls) >= self.max_calls:
                    # parallel_tool_calls false: nothing after the first call is parsed (its
                    # stop string ends generation there; what slipped through is dropped).
                    self._state = "done"
                    continue
                found = [i for i in (buf.find(t, pos) for t in TRIGGERS) if i >= 0]
                at = min(found, default=-1)
                if at < 0:
                    if final:
                        return out
                    # Held back: a trigger's start, and whitespace a call would swallow.
                    ready = buf[pos:len(buf) - partial_suffix(buf[pos:], TRIGGERS)].rstrip()
                    out.extend(self._content(ready))
                    self._pos = pos + len(ready)
                    return out
                # Whitespace before a call is the call's; kept if it turns out not to be one.
                kept = buf[pos:at].rstrip()
                out.extend(self._content(kept))
                self._pos, self._head, self._state = pos + len(kept), at, "head"
            elif self._state == "head":
                at = self._head
                m = _HEAD.match(buf, at)
                if m is None:
                    if not final and self._may_become_head(buf[at:]):
                        return out
                    # Not a call: the trigger is text.
                    trigger = next(t for t in TRIGGERS if buf.startswith(t, at))
                    out.extend(self._content(buf[pos:at + len(trigger)]))
                    self._pos, self._state = at + len(trigger), "text"
                    continue
                call = ToolCall(id=new_call_id(), name=m.group("name").strip(), arguments="")
                self.calls.append(call)
                out.append({"tool_call": {"index": len(self.calls) - 1, **call.to_openai()}})
                self._pos, self._state, self._nparams = m.end(), "params", 0
            elif self._state == "params":
                rest = buf[pos:]
                body = rest.lstrip()
                skip = len(rest) - len(body)
                m = _PARAM.match(body)
                if m is not None:
                    # A long value (a file's text) arrives in many pieces: each is searched
                    # once, not the whole value again.
                    start = max(m.end(), self._scan - pos - skip)
                    end = body.find(PARAM_CLOSE, start)
                    if end < 0:
                        self._scan = max(len(buf) - len(PARAM_CLOSE) + 1, 0)
                        return out  # the value is not whole yet (finish takes a cut one)
                    self._scan = 0
                    out.extend(self._param(m.group("key"), _value_text(body[m.end():end])))
                    self._pos = pos + skip + end + len(PARAM_CLOSE)
                    continue
                closer = next((t for t in (FUNCTION_CLOSE, CALL_CLOSE) if body.startswith(t)),
                              None)
                if closer is None and (final or any(
                        t.startswith(body) for t in (PARAM_OPEN, FUNCTION_CLOSE, CALL_CLOSE))
                        or (body.startswith(PARAM_OPEN) and len(body) < 300)):
                    return out  # not whole yet (finish closes a call generation cut)
                # Closed (or something else follows: the call ends where its markup does).
                out.append(self._fragment("}" if self._nparams else "{}"))
                self._pos = pos + skip + (len(FUNCTION_CLOSE) if closer == FUNCTION_CLOSE
                                          else 0)
                self._state = "tail"
            elif self._state == "tail":
                rest = buf[pos:]
                body = rest.lstrip()
                if body.startswith(CALL_CLOSE):
                    self._pos = pos + len(rest) - len(body) + len(CALL_CLOSE)
                elif not final and CALL_CLOSE.startswith(body):
                    return out  # the closing tag may still come
                self._state = "text"
            else:
                return out

    @staticmethod
    def _may_become_head(text: str) -> bool:
        """Whether `text` (from a trigger on) may still grow into `<tool_call><function=X>`."""
        if len(text) > 512:
            return False
        probe = re.sub(r"^<tool_call>\s*", "", text)
        if probe == text and text.startswith(CALL_OPEN):
            return True
        if not probe or FUNCTION_OPEN.startswith(probe):
            return True
        return probe.startswith(FUNCTION_OPEN) and ">" not in probe and "\n" not in probe

    def _content(self, text: str) -> list[Delta]:
        if not text:
            return []
        if not self._seen and not text.strip():
            return []  # whitespace before anything else is the markup's
        self._seen = True
        return [{"content": text}]

    def _fragment(self, text: str) -> Delta:
        self.calls[-1].arguments += text
        return {"tool_call": {"index": len(self.calls) - 1, "function": {"arguments": text}}}

    def _param(self, key: str, raw: str) -> list[Delta]:
        key = key.strip()
        schema = self._schemas.get(self.calls[-1].name, {}).get(key)
        value = typed_value(raw, schema)
        lead = "," if self._nparams else "{"
        self._nparams += 1
        return [self._fragment(f"{lead}{_compact(key)}:{_compact(value)}")]


# -- forced calls ------------------------------------------------------------------------


def _value_rule(conv: Converter, schema: Any, name: str) -> str:
    """A parameter's value as the model writes it: the schema's own grammar where the raw
    text is the JSON text (numbers, booleans, objects, arrays, string enums without quotes),
    raw text otherwise (a string, whatever its format: the parser takes it as written)."""
    types = _types(schema)
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"] \
            and all(isinstance(v, str) and "<" not in v for v in schema["enum"]):
        return "(" + " | ".join(literal(v) for v in schema["enum"]) + ")"
    if isinstance(schema, dict) and isinstance(schema.get("const"), str):
        return literal(schema["const"])
    if types and "string" not in types and "null" not in types:
        return conv.visit(schema, name)
    lo = schema.get("minLength", 0) if isinstance(schema, dict) else 0
    hi = schema.get("maxLength") if isinstance(schema, dict) else None
    lo = lo if isinstance(lo, int) and lo >= 0 else 0
    hi = hi if isinstance(hi, int) and hi >= lo else None
    # `<` is left out so that no value can hold the closing tag.
    return repeat("[^<]", lo, hi)


def xml_call_grammar(fns: list[dict[str, Any]]) -> str:
    """A GBNF grammar for exactly one call of one of `fns`, in Qwen3-Coder's markup: the
    required parameters in the schema's order, the optional ones each optional."""
    params = [fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {}
              for fn in fns]
    schemas = [rebased(p, f"/anyOf/{i}") for i, p in enumerate(params)]
    root = {"anyOf": schemas}
    check_schema(root)
    conv = Converter(root)
    conv.base("ws")
    calls = []
    try:
        for i, (fn, schema) in enumerate(zip(fns, schemas, strict=True)):
            props = schema.get("properties") if isinstance(schema.get("properties"), dict) \
                else {}
            required = set(schema.get("required") or [])
            parts = []
            for key, sub in props.items():
                value = _value_rule(conv, sub, f"call{i}-{key}")
                part = f"{literal(f'{PARAM_OPEN}{key}>' + chr(10))} {value} " \
                       f"{literal(chr(10) + PARAM_CLOSE + chr(10))}"
                parts.append(part if key in required else f"({part})?")
            head = literal(f"{FUNCTION_OPEN}{fn['name']}>\n")
            calls.append(" ".join([head, *parts, literal(FUNCTION_CLOSE)]))
    except RecursionError:
        raise SchemaError("schema is nested too deeply", param="schema") from None
    gbnf = (f"root ::= {literal(CALL_OPEN + chr(10))} ({' | '.join(calls)}) "
            f"{literal(chr(10) + CALL_CLOSE)} ws\n" + conv.b.render())
    check_grammar(gbnf)
    return gbnf
