"""Tool calls as OpenAI deltas, while the reply is generated.

`ToolCallDeltas` turns the model's text (Hermes `<tool_call>` markup) into what a chat reply
sends: content text, and for each call first `{index, id, type, function: {name, arguments:
""}}`, then argument fragments. Template markup never reaches the content. A streamed and a
whole reply run the same code (the whole text fed at once), so the deltas of a stream reassemble
to exactly the call of the non-streamed reply.

Arguments stream as the model writes them with the whitespace outside strings dropped (the
compact JSON OpenAI sends). A call cut by max_tokens keeps what was generated. A call the model
writes in another shape (arguments before name, arguments as a JSON string) is sent whole once
its block is complete.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from slm_api.prompting.stops import partial_suffix
from slm_api.prompting.tool_calls import (
    CALL_CLOSE,
    CALL_OPEN,
    ToolCall,
    _call_at,
    new_call_id,
    parse_tool_calls,
)

# The block's start as a constrained call writes it: name first, then the arguments object.
_HEADER = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\{)')

Delta = dict[str, Any]  # {"content": str} or {"tool_call": <delta.tool_calls[] entry>}


@dataclass
class _Args:
    """A compacting scan of one arguments object."""

    pos: int  # next character of the buffer to read
    depth: int = 0
    in_str: bool = False
    esc: bool = False
    done: bool = False

    def take(self, buf: str) -> str:
        out = []
        i = self.pos
        while i < len(buf) and not self.done:
            ch = buf[i]
            i += 1
            if self.in_str:
                out.append(ch)
                if self.esc:
                    self.esc = False
                elif ch == "\\":
                    self.esc = True
                elif ch == '"':
                    self.in_str = False
                continue
            if ch.isspace():
                continue
            out.append(ch)
            if ch == '"':
                self.in_str = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                self.done = self.depth == 0
        self.pos = i
        return "".join(out)


@dataclass
class ToolCallDeltas:
    calls: list[ToolCall] = field(default_factory=list)
    _pending: str = ""  # content held back: a possible tag start, trailing whitespace
    _buf: str = ""  # the text from the first <tool_call> on
    _in_calls: bool = False
    _block: int = 0  # where the current block starts in _buf; -1 between blocks
    _after: int = 0  # between blocks: where the last block ended
    _args: _Args | None = None
    _outside: list[str] = field(default_factory=list)

    @property
    def cut_call(self) -> bool:
        """Whether the last call's arguments were still being written."""
        return self._args is not None and not self._args.done

    def feed(self, delta: str) -> list[Delta]:
        if self._in_calls:
            self._buf += delta
            return self._advance()
        text = self._pending + delta
        at = text.find(CALL_OPEN)
        if at < 0:
            partial = partial_suffix(text, (CALL_OPEN,))
            before = text[: len(text) - partial]
            hold = partial + len(before) - len(before.rstrip())
        else:
            self._in_calls = True
            self._buf = text[at:]
            text = text[:at]
            hold = len(text) - len(text.rstrip())
        ready, self._pending = text[: len(text) - hold], text[len(text) - hold:]
        out = [{"content": ready}] if ready else []
        return out + (self._advance() if self._in_calls else [])

    def _start(self, name: str, arguments: str) -> Delta:
        call = ToolCall(id=new_call_id(), name=name, arguments=arguments)
        self.calls.append(call)
        entry = {"index": len(self.calls) - 1, **call.to_openai()}
        return {"tool_call": entry}

    def _fragment(self, text: str) -> Delta:
        self.calls[-1].arguments += text
        return {"tool_call": {"index": len(self.calls) - 1, "function": {"arguments": text}}}

    def _advance(self) -> list[Delta]:
        out: list[Delta] = []
        buf = self._buf
        while True:
            if self._block < 0:
                at = buf.find(CALL_OPEN, self._after)
                if at < 0:
                    return out
                self._outside.append(buf[self._after:at])
                self._block, self._args = at, None
            if self._args is None:
                m = _HEADER.match(buf, self._block + len(CALL_OPEN))
                if m is None:
                    return out  # not known yet: a whole-block call or not a call (see finish)
                name = json.loads(f'"{m.group(1)}"')
                out.append(self._start(name, ""))
                self._args = _Args(m.end())
            text = self._args.take(buf)
            if text:
                out.append(self._fragment(text))
            if not self._args.done:
                return out
            close = buf.find(CALL_CLOSE, self._args.pos)
            if close < 0:
                return out
            self._block, self._after = -1, close + len(CALL_CLOSE)

    def finish(self, cut: bool) -> list[Delta]:
        """The deltas still owed once generation ended; `cut`: it ended at max_tokens."""
        if not self._in_calls:
            rest, self._pending = self._pending, ""
            return [{"content": rest}] if rest else []
        out: list[Delta] = []
        if not self.calls:
            # Nothing had the streamed shape: parse the blocks whole, as written.
            content, calls = parse_tool_calls(self._buf)
            for call in calls:
                out.append(self._start(call.name, call.arguments))
            if calls:
                rest = (content or "").strip()
            elif cut:  # a call cut before its name was complete: the markup is not content
                rest = self._pending + self._buf[: self._buf.rfind(CALL_OPEN)].rstrip()
            else:
                rest = self._pending + self._buf
            return out + ([{"content": rest}] if rest else [])
        if self._block >= 0 and self._args is None:
            found = _call_at(self._buf, self._block)
            if found is not None:
                out.append(self._start(found[0].name, found[0].arguments))
                self._outside.append(self._buf[found[1]:])
            elif not cut:
                self._outside.append(self._buf[self._block:])
        elif self._block < 0:
            self._outside.append(self._buf[self._after:])
        rest = "".join(self._outside).strip()
        return out + ([{"content": rest}] if rest else [])


def assemble(deltas: list[Delta]) -> tuple[str | None, list[ToolCall]]:
    """A whole reply's content and calls from its deltas."""
    content = "".join(d["content"] for d in deltas if "content" in d)
    calls: list[ToolCall] = []
    for d in deltas:
        entry = d.get("tool_call")
        if entry is None:
            continue
        if entry["index"] == len(calls):
            fn = entry["function"]
            calls.append(ToolCall(entry["id"], fn["name"], fn["arguments"]))
        else:
            calls[entry["index"]].arguments += entry["function"]["arguments"]
    return (content or None) if calls else content, calls
