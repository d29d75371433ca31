"""Messages (+ tools) to a prompt in the model's own format, and tool calls back out of a reply.

The template in the GGUF metadata (`tokenizer.chat_template`) is used when there is one. Files
without one get a built-in format chosen by `general.architecture`, never a guess: an unknown
architecture without a template is refused unless CHAT_FORMAT names a format.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from slm_api.engine.chat_templates import BY_ARCHITECTURE, FORMATS, LLAMA_2, LLAMA_3
from slm_api.engine.types import InvalidRequest

TOOLS_PREAMBLE = (
    "You may call one or more functions to assist with the user query. The function "
    "signatures are within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a JSON object with the function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, '
    '"arguments": <args-json-object>}}\n</tool_call>'
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


def _raise(message: str) -> None:
    raise TemplateError(message)


def _environment() -> ImmutableSandboxedEnvironment:
    # Templates come from model files downloaded off the internet: sandboxed, no attribute
    # tricks reach Python internals.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False,
                                                              indent=indent)
    return env


_ENV = _environment()


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequest(f"content parts of type {part.get('type')!r} are not supported "
                                 "by this server (text only)", param="messages")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def _call_text(call: Mapping[str, Any]) -> str:
    fn = call.get("function", {})
    args = fn.get("arguments", "{}")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    return "<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": args},
                                        ensure_ascii=False) + "\n</tool_call>"


class ChatFormatter:
    """Renders OpenAI messages for one model."""

    def __init__(self, name: str, template: str, stop: tuple[str, ...], *, system_role: bool,
                 bos: str, eos: str):
        self.name = name  # "jinja" for the file's own template, else the built-in's name
        self.stop = stop  # end-of-turn strings to stop on
        self._system_role = system_role
        self._native_tools = name == "jinja" and "tools" in template
        self._bos, self._eos = bos, eos
        try:
            self._template = _ENV.from_string(template)
        except TemplateError as exc:
            raise ValueError(f"the chat template does not parse: {exc}") from exc

    def render(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
               add_generation_prompt: bool = True) -> str:
        msgs = self._normalise(messages, tools)
        try:
            prompt = self._template.render(
                messages=msgs, tools=tools if self._native_tools else None,
                add_generation_prompt=add_generation_prompt, bos_token=self._bos,
                eos_token=self._eos,
            )
        except TemplateError as exc:
            raise InvalidRequest(f"the chat template refused these messages: {exc}",
                                 param="messages") from exc
        # The tokenizer adds BOS itself; a template that writes it too would double it.
        if self._bos and prompt.startswith(self._bos):
            prompt = prompt[len(self._bos):]
        return prompt

    def _normalise(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
                   ) -> list[dict[str, Any]]:
        system: list[str] = []
        turns: list[dict[str, Any]] = []
        for m in messages:
            role = "system" if m["role"] == "developer" else m["role"]
            text = _text(m.get("content"))
            if role == "system":
                system.append(text)
            elif role == "assistant" and m.get("tool_calls"):
                calls = "\n".join(_call_text(c) for c in m["tool_calls"])
                turns.append({"role": "assistant", "content": f"{text}\n{calls}".strip()})
            elif role == "tool":
                block = f"<tool_response>\n{text}\n</tool_response>"
                if turns and turns[-1].get("_tool"):
                    turns[-1]["content"] += "\n" + block
                else:
                    turns.append({"role": "user", "content": block, "_tool": True})
            else:
                turns.append({"role": role, "content": text})
        if tools and not self._native_tools:
            specs = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
            system.append(TOOLS_PREAMBLE.format(tools=specs))
        for t in turns:
            t.pop("_tool", None)
        if not system:
            return turns
        system_text = "\n\n".join(s for s in system if s)
        if self._system_role:
            return [{"role": "system", "content": system_text}, *turns]
        # No system role (Gemma): the system text opens the first user turn, never dropped.
        for t in turns:
            if t["role"] == "user":
                t["content"] = f"{system_text}\n\n{t['content']}"
                return turns
        return [{"role": "user", "content": system_text}, *turns]

    def parse_tool_calls(self, text: str) -> tuple[str | None, list[ToolCall]]:
        return parse_tool_calls(text)


def parse_tool_calls(text: str) -> tuple[str | None, list[ToolCall]]:
    """Split a reply into its plain content and the `<tool_call>` blocks the model wrote."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _TOOL_CALL.finditer(text):
        try:
            data = json.loads(match.group(1))
            name = data["name"]
            args = data.get("arguments", {})
            if isinstance(args, str):
                args = json.loads(args)
            if not isinstance(name, str) or not isinstance(args, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            continue  # not a well-formed call: leave it in the content
        kept.append(text[last:match.start()])
        last = match.end()
        calls.append(ToolCall(f"call_{uuid.uuid4().hex[:24]}", name,
                              json.dumps(args, ensure_ascii=False, separators=(",", ":"))))
    kept.append(text[last:])
    content = "".join(kept).strip()
    return (content or None), calls


def tool_call_schema(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    """The JSON Schema of one forced call ("required" or a named function); None for auto."""
    if tool_choice in (None, "auto", "none"):
        return None
    fns = [t["function"] for t in tools]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        fns = [f for f in fns if f["name"] == wanted]
        if not fns:
            raise InvalidRequest(f"tool_choice names {wanted!r}, which is not in tools",
                                 param="tool_choice")
    elif tool_choice != "required":
        raise InvalidRequest(f"unknown tool_choice {tool_choice!r}", param="tool_choice")
    options = [
        {"type": "object",
         "properties": {"name": {"const": f["name"]},
                        "arguments": f.get("parameters") or {"type": "object"}},
         "required": ["name", "arguments"], "additionalProperties": False}
        for f in fns
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def formatter_for(metadata: Mapping[str, str], override: str | None = None, *, bos: str = "",
                  eos: str = "") -> ChatFormatter:
    """The GGUF template when present, else by general.architecture; `override` (CHAT_FORMAT)
    wins. Unknown architecture with no template: ValueError."""
    template = metadata.get("tokenizer.chat_template")
    arch = metadata.get("general.architecture", "")
    if override and override != "jinja":
        if override not in FORMATS:
            raise ValueError(f"unknown CHAT_FORMAT {override!r}; use one of "
                             f"{', '.join(['jinja', *FORMATS])}")
        fmt = FORMATS[override]
    elif template:
        return ChatFormatter("jinja", template, (eos,) if eos else (), system_role=True, bos=bos,
                             eos=eos)
    elif override == "jinja":
        raise ValueError("CHAT_FORMAT=jinja but the file has no chat template")
    elif arch == "llama":
        fmt = LLAMA_3 if metadata.get("tokenizer.ggml.pre") in ("llama-bpe", "llama3") \
            else LLAMA_2
    elif arch in BY_ARCHITECTURE:
        fmt = BY_ARCHITECTURE[arch]
    else:
        raise ValueError(f"the file has no chat template and architecture {arch!r} has no "
                         "built-in format; set CHAT_FORMAT")
    return ChatFormatter(fmt.name, fmt.template, fmt.stop, system_role=fmt.system_role, bos=bos,
                         eos=eos)
