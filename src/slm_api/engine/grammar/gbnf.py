"""GBNF text: escaping literals and character classes, and the JSON building blocks."""

from __future__ import annotations


def _escape_char(ch: str, specials: str) -> str:
    code = ord(ch)
    if ch in specials or ch == "\\":
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02X}"
    return ch


def literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    return '"' + "".join(_escape_char(c, '"') for c in text) + '"'


def class_char(ch: str) -> str:
    """One character inside [...]."""
    return _escape_char(ch, "]-^[")


# JSON text pieces shared by every grammar. `ws` is bounded so that a small model cannot
# loop on whitespace forever.
PRIMITIVES: dict[str, str] = {
    "ws": '( " " | "\\n" [ ]{0,8} )?',
    "char": '[^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" [0-9a-fA-F]{4} )',
    "string": '"\\"" char* "\\""',
    "integer": '"-"? ( "0" | [1-9] [0-9]{0,17} )',
    "number": '"-"? ( "0" | [1-9] [0-9]{0,17} ) ( "." [0-9]{1,17} )? '
              '( [eE] [-+]? [0-9]{1,3} )?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"',
    "array": '"[" ws ( value ws ( "," ws value ws )* )? "]"',
}


def with_dependencies(name: str) -> list[str]:
    """A primitive and every primitive its body names, in a stable order."""
    order = ["ws", "char", "string", "integer", "number", "boolean", "null", "value", "object",
             "array"]
    deps = {"string": {"char"}, "value": {"object", "array", "string", "number", "boolean",
                                          "null"},
            "object": {"ws", "string", "value"}, "array": {"ws", "value"}}
    seen: set[str] = set()
    stack = [name]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(deps.get(n, ()))
    return [n for n in order if n in seen]
