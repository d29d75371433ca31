"""Tool calls, plain text and JSON: the Hermes-style prompt block that describes the tools to a
template that cannot render them (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`),
how earlier calls and results are written back into such a prompt, and the functions a forced
call may name. Parsing replies in each template's own markup: tool_markup.py, tool_stream.py.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from slm_api.errors import InvalidRequest

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text

    def to_openai(self) -> dict[str, Any]:
        """The message.tool_calls[] entry of a chat completion."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _compact(value: Any) -> str:
    # OpenAI sends arguments as compact JSON; non-ASCII stays readable.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- prompt side ---------------------------------------------------------------------------


def function_of(tool: Any, index: int) -> dict[str, Any]:
    """The `function` object of one OpenAI tool, checked enough to render and constrain it."""
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise InvalidRequest(f"tools[{index}] must be {{'type': 'function', ...}}", param="tools")
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise InvalidRequest(f"tools[{index}].function.name is required", param="tools")
    return fn


def tools_system_block(tools: list[dict[str, Any]]) -> str:
    """Instructions + tool signatures, for formats whose template cannot render tools itself."""
    lines = []
    for i, tool in enumerate(tools):
        fn = function_of(tool, i)
        lines.append(json.dumps({"type": "function", "function": fn}, ensure_ascii=False))
    signatures = "\n".join(lines)
    return (
        "# Tools\n\n"
        "You can call the functions described below to help answer the user.\n"
        "Their signatures are given as JSON inside <tools></tools> tags:\n"
        f"<tools>\n{signatures}\n</tools>\n\n"
        "To call a function, reply with a JSON object holding its name and arguments inside "
        "<tool_call></tool_call> tags, one block per call:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <arguments-json-object>}\n'
        "</tool_call>"
    )


def arguments_value(arguments: Any) -> Any:
    """Arguments as a JSON value: clients send a JSON string, templates want the object."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return arguments
    return {} if arguments is None else arguments


def render_tool_calls(tool_calls: list[dict[str, Any]]) -> str:
    """An assistant message's tool_calls written back as <tool_call> blocks."""
    blocks = []
    for call in tool_calls:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        body = {"name": fn.get("name", ""), "arguments": arguments_value(fn.get("arguments"))}
        blocks.append(f"{CALL_OPEN}\n{json.dumps(body, ensure_ascii=False)}\n{CALL_CLOSE}")
    return "\n".join(blocks)


def render_tool_response(content: str) -> str:
    return f"{RESPONSE_OPEN}\n{content}\n{RESPONSE_CLOSE}"


# -- reply side ----------------------------------------------------------------------------

def _call_from(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(id=new_call_id(), name=obj["name"], arguments=_compact(args))


# -- constrained calls ---------------------------------------------------------------------


def forced_functions(tools: list[dict[str, Any]] | None, tool_choice: Any
                     ) -> list[dict[str, Any]] | None:
    """The functions one of which a reply must call, or None when the model may choose.

    "required" allows any of the tools; {"type": "function", "function": {"name": X}} only X;
    "auto", "none" and None constrain nothing.
    """
    if tool_choice is None or tool_choice in ("auto", "none"):
        return None
    fns = [function_of(t, i) for i, t in enumerate(tools or [])]
    if tool_choice == "required":
        if not fns:
            raise InvalidRequest("tool_choice 'required' needs a non-empty tools list",
                                 param="tool_choice")
        return fns
    if isinstance(tool_choice, dict):
        want = (tool_choice.get("function") or {}).get("name")
        if tool_choice.get("type", "function") != "function" or not isinstance(want, str):
            raise InvalidRequest(
                "tool_choice must be 'none', 'auto', 'required' or "
                "{'type': 'function', 'function': {'name': ...}}",
                param="tool_choice",
            )
        chosen = [fn for fn in fns if fn["name"] == want]
        if not chosen:
            raise InvalidRequest(f"tool_choice names function {want!r}, which is not in tools",
                                 param="tool_choice")
        return chosen[:1]
    raise InvalidRequest(f"unknown tool_choice {tool_choice!r}", param="tool_choice")


def call_schema(fns: list[dict[str, Any]], arguments_key: str = "arguments") -> dict[str, Any]:
    """The JSON Schema of the single call object a forced reply must be, given the functions
    `forced_functions` allows: one gives its object schema directly, several an anyOf."""
    if len(fns) == 1:
        return _call_schema(fns[0], arguments_key, "")
    return {"anyOf": [_call_schema(fn, arguments_key, f"/anyOf/{i}") for i, fn in enumerate(fns)]}


# Values, not subschemas: a "$ref" key inside them is data and stays as written.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples", "example"})


def rebased(schema: Any, at: str) -> Any:
    """`schema` for use at JSON pointer `at` inside another document: its local `$ref`s
    (`#`, `#/$defs/X`) point into its own copy there. Pydantic's tool schemas (instructor, the
    Agents SDK, LangChain) keep their models in `$defs`; nested under a call object they
    would resolve against the wrapper and fail."""
    if isinstance(schema, list):
        return [rebased(item, at) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str) and (value == "#" or value.startswith("#/")):
            out[key] = "#" + at + ("" if value == "#/" else value[1:])
        elif key in _DATA_KEYWORDS:
            out[key] = value
        elif key in ("properties", "patternProperties", "$defs", "definitions",
                     "dependentSchemas"):
            # Maps of names to subschemas: a property named "const" is still a schema.
            out[key] = ({name: rebased(sub, at) for name, sub in value.items()}
                        if isinstance(value, dict) else value)
        else:
            out[key] = rebased(value, at)
    return out


def strict_parameters(params: Any) -> dict[str, Any]:
    """The schema a call's arguments are generated from. A function without parameters, or an
    object schema that names no properties and says nothing of others, takes none: `{}`, not
    whatever object the model invents (often its own schema). Declared properties are the only
    keys generated unless additionalProperties allows more."""
    if not isinstance(params, dict) or not params:
        return {"type": "object", "properties": {}, "additionalProperties": False}
    if params.get("type") == "object" and not params.get("properties") and not any(
        k in params for k in ("additionalProperties", "patternProperties", "required", "anyOf",
                              "oneOf", "allOf", "$ref")
    ):
        return {**params, "properties": {}, "additionalProperties": False}
    return params


def _call_schema(fn: dict[str, Any], arguments_key: str, at: str) -> dict[str, Any]:
    params = rebased(strict_parameters(fn.get("parameters")), f"{at}/properties/{arguments_key}")
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, arguments_key: params},
        "required": ["name", arguments_key],
        "additionalProperties": False,
    }
