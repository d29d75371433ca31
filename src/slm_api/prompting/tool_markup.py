"""The tool-call markups that chat templates teach their models, and which one a template uses.

A model calls tools in the markup its own chat template shows it; we parse that markup back out
(streamed: tool_stream.py) and, for a forced call, constrain generation to it:

- hermes: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes, Qwen 2.5/3, and
  every template that cannot render tools: we inject a Hermes-style block into those prompts).
- llama3: `{"name": ..., "parameters": {...}}` as the whole reply, or after `<|python_tag|>`;
  several calls separated by `;` (Llama 3.1/3.2/3.3).
- mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}, ...]` (Mistral v3,
  Nemo, Small 3).
- mistral-v11: `[TOOL_CALLS]name[ARGS]{...}`, repeated per call (Magistral, Devstral, Small 3.2).
- granite: `<|tool_call|>[{"name": ..., "arguments": {...}}, ...]` (IBM Granite 3.x; Phi-4-mini
  writes the same and closes it with `<|/tool_call|>`).
- deepseek-r1: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>name` then
  the arguments in a json code fence and `<｜tool▁call▁end｜>`, per call, then
  `<｜tool▁calls▁end｜>` (DeepSeek R1 and its Qwen/Llama distills, V3).
- deepseek-v3.1: the same without `function` and the fence:
  `<｜tool▁call▁begin｜>name<｜tool▁sep｜>{...}<｜tool▁call▁end｜>` (DeepSeek V3.1).

- qwen3-coder: `<tool_call>\n<function=name>\n<parameter=k>\nv\n</parameter>\n</function>\n
  </tool_call>`, values as raw text typed by the tool's schema (Qwen3-Coder; tool_xml.py).
- harmony: `<|start|>assistant<|channel|>commentary to=functions.name <|constrain|>json
  <|message|>{...}<|call|>` (GPT-OSS; the recipient may also come before the channel, as its
  template writes past calls). Its analysis channel is reasoning (reasoning.py).

Detection follows llama.cpp's common/chat.cpp: it looks for each markup's marker in the template
source. Functionary, Command R and other rarer markups are not parsed; their models' replies
stay content.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from slm_api.grammar import SchemaError, check_grammar, check_schema, schema_to_gbnf
from slm_api.grammar.convert import Converter
from slm_api.grammar.gbnf import literal
from slm_api.grammar.unique import Stage, embed, unique_spec
from slm_api.prompting import tool_xml
from slm_api.prompting.tool_calls import (
    CALL_CLOSE,
    CALL_OPEN,
    ToolCall,
    _call_from,
    call_schema,
    rebased,
    strict_parameters,
)

_DECODER = json.JSONDecoder()
_NAME = r'"(?P<name>(?:[^"\\]|\\.)*)"'
# The start of a call object as a constrained call writes it: name first, then its arguments.
_OBJ = (r'\s*\{\s*(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:\s*' + _NAME
        + r'\s*,\s*"KEY"\s*:\s*(?=\{)')
PYTHON_TAG = "<|python_tag|>"
MISTRAL_CALLS = "[TOOL_CALLS]"
MISTRAL_ARGS = "[ARGS]"
GRANITE_CALLS, GRANITE_CLOSE = "<|tool_call|>", "<|/tool_call|>"
DS_CALLS, DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL, DS_SEP, DS_CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"
FENCE = "```"


@dataclass(frozen=True)
class ToolMarkup:
    name: str
    triggers: tuple[str, ...]  # text that opens a calls region anywhere in a reply
    bare_json: bool  # a reply whose first character is `{` may be a call (Llama 3.x)
    header: re.Pattern[str]  # at a region's start: up to the first call's arguments object
    next_header: re.Pattern[str]  # searched after a call: up to the next one's arguments
    residue: re.Pattern[str]  # after a call's arguments: the markup that closes it
    json_name: bool = True  # whether the name group is a JSON string body (escapes decoded)
    json_list: bool = False  # whether a region holds a JSON array of call objects

    def starts(self, text: str, at_reply_start: bool) -> int:
        """Where the first calls region of `text` starts, -1 when none."""
        found = [i for i in (text.find(t) for t in self.triggers) if i >= 0]
        if self.bare_json and at_reply_start:
            lead = len(text) - len(text.lstrip())
            if text[lead:lead + 1] == "{":
                found.append(lead)
        return min(found, default=-1)

    def name_in(self, header: re.Match[str]) -> str:
        """The function name a header match found (DeepSeek V3.1's in its own group)."""
        raw = header.group("name") or header.groupdict().get("name31") or ""
        return json.loads(f'"{raw}"') if self.json_name else raw

    # -- whole replies -----------------------------------------------------------------------

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """Split a whole reply into its content and its calls, whatever order a call's keys
        come in. With no valid call the text comes back unchanged; otherwise content is the
        text outside the calls, stripped, or None. Markup whose JSON does not parse stays in
        the content as written, so nothing the model said is lost."""
        calls: list[ToolCall] = []
        outside: list[str] = []
        pos, at = 0, self.starts(text, at_reply_start=True)
        while at >= 0:
            found = self._calls_at(text, at)
            if found is None:
                skip = at + 1
                nxt = self.starts(text[skip:], at_reply_start=False)
                at = skip + nxt if nxt >= 0 else -1
                continue
            got, end = found
            outside.append(text[pos:at])
            calls.extend(got)
            pos = end
            nxt = self.starts(text[end:], at_reply_start=False)
            at = end + nxt if nxt >= 0 else -1
        if not calls:
            return text, []
        outside.append(text[pos:])
        content = "".join(outside).strip()
        return (content or None), calls

    def _calls_at(self, text: str, start: int) -> tuple[list[ToolCall], int] | None:
        trigger = next((t for t in self.triggers if text.startswith(t, start)), "")
        pos = _skip_ws(text, start + len(trigger))
        if self.name == "mistral-v11":
            return _v11_calls(text, pos)
        if self.name.startswith("deepseek"):
            return _deepseek_calls(text, start)
        if self.name == "harmony":
            return _harmony_calls(text, start)
        if self.name == "qwen3-coder":
            stream = tool_xml.XmlCallDeltas()
            got = stream.feed(text[start:]) + stream.finish(cut=False)
            if not stream.calls or any("content" in d for d in got):
                return None
            return stream.calls, len(text)
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        if self.json_list and isinstance(value, list):
            calls = [_call_from(v) for v in value]
            if not calls or None in calls:
                return None
            after = _skip_ws(text, pos)
            if text.startswith(GRANITE_CLOSE, after):  # Phi-4-mini closes what Granite opens
                pos = after + len(GRANITE_CLOSE)
            return calls, pos  # type: ignore[return-value]
        call = _call_from(value)
        if call is None:
            return None
        if self.name == "hermes":
            rest = _skip_ws(text, pos)
            if text.startswith(CALL_CLOSE, rest):
                return [call], rest + len(CALL_CLOSE)
            # A missing closing tag is accepted when only whitespace follows (generation
            # stopped); a tag is not cut at its first closing tag, so arguments may hold one.
            return ([call], len(text)) if not text[pos:].strip() else None
        calls = [call]
        if self.name == "llama3":
            while True:
                m = re.compile(r"\s*;").match(text, pos)
                if m is None:
                    break
                try:
                    value, after = _DECODER.raw_decode(text, _skip_ws(text, m.end()))
                except json.JSONDecodeError:
                    break
                nxt = _call_from(value)
                if nxt is None:
                    break
                calls.append(nxt)
                pos = after
        return calls, pos

    # -- forced calls ------------------------------------------------------------------------

    def grammar(self, fns: list[dict[str, Any]]) -> str:
        """A GBNF grammar for exactly one call, in this markup, of one of `fns`."""
        if self.name == "mistral-v11":
            return _alternatives([(f"{MISTRAL_CALLS}{fn['name']}{MISTRAL_ARGS}",
                                   strict_parameters(fn.get("parameters"))) for fn in fns])
        if self.name == "deepseek-r1":
            return _alternatives([(f"{DS_CALLS}{DS_CALL}function{DS_SEP}{fn['name']}\n"
                                   f"{FENCE}json\n", strict_parameters(fn.get("parameters")))
                                  for fn in fns], f"\n{FENCE}{DS_CALL_END}{DS_CALLS_END}")
        if self.name == "deepseek-v3.1":
            return _alternatives([(f"{DS_CALLS}{DS_CALL}{fn['name']}{DS_SEP}",
                                   strict_parameters(fn.get("parameters"))) for fn in fns],
                                 f"{DS_CALL_END}{DS_CALLS_END}")
        if self.name == "harmony":
            return _alternatives([(f"{HARMONY_CHANNEL} to=functions.{fn['name']} "
                                   f"{HARMONY_JSON}", strict_parameters(fn.get("parameters")))
                                  for fn in fns])
        if self.name == "qwen3-coder":
            return tool_xml.xml_call_grammar(fns)
        key = "parameters" if self.name == "llama3" else "arguments"
        schema = call_schema(fns, key)
        prefix, suffix = {
            "hermes": (CALL_OPEN, CALL_CLOSE),
            "llama3": ("", ""),
            "mistral": (MISTRAL_CALLS + "[", "]"),
            "granite": (GRANITE_CALLS + "[", "]"),
        }[self.name]
        return schema_to_gbnf(schema, prefix=prefix, suffix=suffix)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


_V11_HEAD = re.compile(r"\s*(?P<name>[^\s\[\]{}]+)\s*(?:\[CALL_ID\][^\[]*)?\[ARGS\]\s*")


def _v11_calls(text: str, pos: int) -> tuple[list[ToolCall], int] | None:
    m = _V11_HEAD.match(text, pos)
    if m is None:
        return None
    try:
        args, end = _DECODER.raw_decode(text, m.end())
    except json.JSONDecodeError:
        return None
    call = _call_from({"name": m.group("name"), "arguments": args})
    return ([call], end) if call is not None else None


# One DeepSeek call up to its arguments: R1 writes `function<｜tool▁sep｜>name` and opens a json
# fence, V3.1 writes `name<｜tool▁sep｜>`.
_DS_HEAD = re.compile(
    rf"\s*(?:{DS_CALLS}\s*)?{DS_CALL}\s*(?:function\s*{DS_SEP}\s*(?P<name>[^\s<`{{｜]+)"
    rf"\s*(?:{FENCE}(?:json)?\s*)?|(?P<name31>[^\s<`{{｜]+)\s*{DS_SEP}\s*)")
# After a DeepSeek call's arguments: the fence and the markup that close it.
_DS_TAIL = re.compile(rf"\s*(?:{FENCE})?\s*(?:{DS_CALL_END})?\s*(?:{DS_CALLS_END})?")


def _json_calls(head: re.Pattern[str], tail: re.Pattern[str], text: str, pos: int
                ) -> tuple[list[ToolCall], int] | None:
    """Calls whose head (`head`: the name as group "name" or "name31") is followed by JSON
    arguments and `tail`, one after another from `pos` (DeepSeek's markup, harmony's)."""
    calls: list[ToolCall] = []
    while (m := head.match(text, pos)) is not None:
        try:
            args, end = _DECODER.raw_decode(text, m.end())
        except json.JSONDecodeError:
            break
        call = _call_from({"name": m.group("name") or m.group("name31"), "arguments": args})
        if call is None:
            break
        calls.append(call)
        pos = tail.match(text, end).end()  # type: ignore[union-attr]
    return (calls, pos) if calls else None


def _deepseek_calls(text: str, pos: int) -> tuple[list[ToolCall], int] | None:
    return _json_calls(_DS_HEAD, _DS_TAIL, text, pos)


HARMONY_START, HARMONY_CHANNEL = "<|start|>assistant", "<|channel|>commentary"
HARMONY_JSON, HARMONY_CALL = "<|constrain|>json<|message|>", "<|call|>"
_HARMONY_NAME = r"to=functions\.(?P<{}>[^\s<]+)\s*"
# One harmony call up to its arguments: the recipient after the channel (as the model writes
# it) or before (as the template renders past calls); the content type is optional.
_HARMONY_HEAD = re.compile(
    r"\s*(?:<\|start\|>\s*assistant\s*)?(?:<\|channel\|>\s*commentary\s+"
    + _HARMONY_NAME.format("name") + "|" + _HARMONY_NAME.format("name31")
    + r"<\|channel\|>\s*commentary\s*)(?:<\|constrain\|>\s*)?(?:json\s*)?<\|message\|>\s*")
_HARMONY_TAIL = re.compile(r"\s*(?:<\|call\|>)?")


def _harmony_calls(text: str, pos: int) -> tuple[list[ToolCall], int] | None:
    return _json_calls(_HARMONY_HEAD, _HARMONY_TAIL, text, pos)


def _alternatives(options: list[tuple[str, dict[str, Any]]], suffix: str = "") -> str:
    """One grammar for `prefix + JSON + suffix` alternatives (a name outside the JSON, as
    Mistral v11 and DeepSeek write)."""
    schemas = [rebased(schema, f"/anyOf/{i}") for i, (_, schema) in enumerate(options)]
    root = {"anyOf": schemas}
    check_schema(root)
    conv = Converter(root)
    conv.base("ws")
    try:
        rules = [f"{literal(prefix)} {conv.visit(schema, f'call{i}-args')}"
                 for i, ((prefix, _), schema) in enumerate(zip(options, schemas, strict=True))]
    except RecursionError:
        raise SchemaError("schema is nested too deeply", param="schema") from None
    close = f" {literal(suffix)}" if suffix else ""
    gbnf = f"root ::= ({' | '.join(rules)}){close} ws\n" + conv.b.render()
    check_grammar(gbnf)
    spec = unique_spec(root, stages=(Stage(tuple(dict.fromkeys(p for p, _ in options))),))
    return embed(gbnf, spec)


def _header(prefix: str, key: str) -> re.Pattern[str]:
    return re.compile(prefix + _OBJ.replace("KEY", key))


HERMES = ToolMarkup(
    name="hermes",
    triggers=(CALL_OPEN,),
    bare_json=False,
    header=_header(re.escape(CALL_OPEN), "arguments"),
    next_header=_header(re.escape(CALL_OPEN), "arguments"),
    residue=re.compile(r"(?s).*?" + re.escape(CALL_CLOSE) + r"|(?s:.*)"),
)
LLAMA3 = ToolMarkup(
    name="llama3",
    triggers=(PYTHON_TAG,),
    bare_json=True,
    header=_header(f"(?:{re.escape(PYTHON_TAG)})?", "(?:parameters|arguments)"),
    next_header=_header(f"(?:;|{re.escape(PYTHON_TAG)})", "(?:parameters|arguments)"),
    residue=re.compile(r"\s*\}"),
)
MISTRAL = ToolMarkup(
    name="mistral",
    triggers=(MISTRAL_CALLS,),
    bare_json=False,
    header=_header(re.escape(MISTRAL_CALLS) + r"\s*\[?", "arguments"),
    next_header=_header(f"(?:,|{re.escape(MISTRAL_CALLS)}\\s*\\[?)", "arguments"),
    residue=re.compile(r'\s*(?:,\s*"id"\s*:\s*"(?:[^"\\]|\\.)*"\s*)?\}\s*\]?'),
    json_list=True,
)
GRANITE = ToolMarkup(
    name="granite",
    triggers=(GRANITE_CALLS,),
    bare_json=False,
    header=_header(re.escape(GRANITE_CALLS) + r"\s*\[?", "(?:arguments|parameters)"),
    next_header=_header(f"(?:,|{re.escape(GRANITE_CALLS)}\\s*\\[?)",
                        "(?:arguments|parameters)"),
    residue=re.compile(r"\s*\}\s*\]?(?:\s*" + re.escape(GRANITE_CLOSE) + ")?"),
    json_list=True,
)
MISTRAL_V11 = ToolMarkup(
    name="mistral-v11",
    triggers=(MISTRAL_CALLS,),
    bare_json=False,
    header=re.compile(re.escape(MISTRAL_CALLS) + _V11_HEAD.pattern + r"(?=\{)"),
    next_header=re.compile(re.escape(MISTRAL_CALLS) + _V11_HEAD.pattern + r"(?=\{)"),
    residue=re.compile(""),
    json_name=False,
)

def _deepseek(name: str) -> ToolMarkup:
    head = _DS_HEAD.pattern + r"(?=\{)"
    return ToolMarkup(
        name=name,
        triggers=(DS_CALLS, DS_CALL),
        bare_json=False,
        header=re.compile(head),
        next_header=re.compile(head),
        residue=_DS_TAIL,
        json_name=False,
    )


DEEPSEEK_R1 = _deepseek("deepseek-r1")
DEEPSEEK_V31 = _deepseek("deepseek-v3.1")
HARMONY = ToolMarkup(
    name="harmony",
    triggers=(HARMONY_START, HARMONY_CHANNEL),
    bare_json=False,
    header=re.compile(_HARMONY_HEAD.pattern + r"(?=\{)"),
    next_header=re.compile(_HARMONY_HEAD.pattern + r"(?=\{)"),
    residue=_HARMONY_TAIL,
    json_name=False,
)
# Streamed by tool_xml.XmlCallDeltas (its values are not JSON); the patterns only find calls.
QWEN3_CODER = ToolMarkup(
    name="qwen3-coder",
    triggers=tool_xml.TRIGGERS,
    bare_json=False,
    header=re.compile(r"(?!)"),
    next_header=re.compile(r"(?!)"),
    residue=re.compile(""),
    json_name=False,
)
MARKUPS = {m.name: m for m in (HERMES, LLAMA3, MISTRAL, MISTRAL_V11, GRANITE, DEEPSEEK_R1,
                               DEEPSEEK_V31, HARMONY, QWEN3_CODER)}


def markup_for_template(source: str) -> ToolMarkup:
    """The markup a chat template that renders tools teaches its model (llama.cpp's tests: a
    marker that only that family's templates contain)."""
    if tool_xml.FUNCTION_OPEN in source and tool_xml.PARAM_OPEN in source:
        return QWEN3_CODER
    if HARMONY_CHANNEL in source and HARMONY_CALL in source:
        return HARMONY
    if MISTRAL_CALLS in source:
        return MISTRAL_V11 if MISTRAL_ARGS in source else MISTRAL
    if GRANITE_CALLS in source:
        return GRANITE
    if DS_CALLS in source or DS_CALL in source:
        return DEEPSEEK_R1 if FENCE in source else DEEPSEEK_V31
    if PYTHON_TAG in source or "<|start_header_id|>ipython<|end_header_id|>" in source:
        return LLAMA3
    return HERMES
