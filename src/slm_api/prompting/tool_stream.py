"""Tool calls as OpenAI deltas, while the reply is generated.

`ToolCallDeltas` turns the model's text (in its template's markup, see tool_markup.py) into what
a chat reply sends: content text, and for each call first `{index, id, type, function: {name,
arguments: ""}}`, then argument fragments. Template markup never reaches the content. A streamed
and a whole reply run the same code (the whole text fed at once), so the deltas of a stream
reassemble to exactly the call of the non-streamed reply.

Arguments stream as the model writes them with the whitespace outside strings dropped (the
compact JSON OpenAI sends). A call cut by max_tokens keeps what was generated. A call the model
writes in another shape (arguments before name, arguments as a JSON string) is sent whole when
the reply ends; so is text between calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slm_api.prompting.stops import partial_suffix
from slm_api.prompting.tool_calls import ToolCall, new_call_id
from slm_api.prompting.tool_markup import HERMES, ToolMarkup

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
    markup: ToolMarkup = HERMES
    # parallel_tool_calls false: 1, and nothing after the first call is parsed or sent.
    max_calls: int | None = None
    calls: list[ToolCall] = field(default_factory=list)
    _pending: str = ""  # content held back: a possible trigger start, trailing whitespace
    _seen: bool = False  # whether content other than whitespace came before
    _buf: str = ""  # the text from the first calls region on
    _in_calls: bool = False
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
        at = self.markup.starts(text, at_reply_start=not self._seen)
        if at < 0:
            partial = partial_suffix(text, self.markup.triggers)
            before = text[: len(text) - partial]
            hold = partial + len(before) - len(before.rstrip())
        else:
            self._in_calls = True
            self._buf = text[at:]
            text = text[:at]
            hold = len(text) - len(text.rstrip())
        ready, self._pending = text[: len(text) - hold], text[len(text) - hold:]
        self._seen = self._seen or bool(ready.strip())
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
        buf, markup = self._buf, self.markup
        while True:
            if self._full:
                return out
            if self._args is None or self._args.done:
                if self._args is None:
                    m = markup.header.match(buf)
                else:
                    m = markup.next_header.search(buf, self._args.pos)
                if m is None:
                    return out  # not known yet: a whole-block call or not a call (see finish)
                if self._args is not None:
                    self._gap(buf[self._args.pos:m.start()])
                out.append(self._start(markup.name_in(m), ""))
                self._args = _Args(m.end())
            text = self._args.take(buf)
            if text:
                out.append(self._fragment(text))
            if not self._args.done:
                return out

    @property
    def _full(self) -> bool:
        return (self.max_calls is not None and len(self.calls) >= self.max_calls
                and self._args is not None and self._args.done)

    def _gap(self, text: str) -> None:
        """Text between a call's arguments and the next call: its closing markup, then content."""
        m = self.markup.residue.match(text)
        self._outside.append(text[m.end():] if m else text)

    def finish(self, cut: bool) -> list[Delta]:
        """The deltas still owed once generation ended; `cut`: it ended at max_tokens."""
        if not self._in_calls:
            rest, self._pending = self._pending, ""
            return [{"content": rest}] if rest else []
        if self._full:
            return []  # the one call allowed is sent; what follows it is not the reply's
        streamed = self._args is not None
        if not streamed:
            lead, tail = self._pending, self._buf  # nothing had the streamed shape
        else:
            if self._args.done:
                self._gap(self._buf[self._args.pos:])
            lead, tail = "", "".join(self._outside)
        # Calls written in another shape (arguments first, arguments as a JSON string) are
        # parsed whole, as written.
        content, calls = self.markup.parse(tail)
        if self.max_calls is not None:
            calls = calls[:max(self.max_calls - len(self.calls), 0)]
        out = [self._start(call.name, call.arguments) for call in calls]
        if calls:
            rest = (content or "").strip()
        elif cut and not self.cut_call:
            # A call cut before its name was complete: the markup is not content.
            rest = (lead + self._before_last_region(tail, streamed)).rstrip()
        else:
            rest = tail.strip() if streamed else lead + tail
        return out + ([{"content": rest}] if rest else [])

    def _before_last_region(self, text: str, streamed: bool) -> str:
        at = max(text.rfind(t) for t in self.markup.triggers)
        if at >= 0:
            head = text[:at]
            # A region may open with several markers in a row (DeepSeek: calls, then call).
            while (t := next((t for t in self.markup.triggers if head.rstrip().endswith(t)),
                             None)) is not None:
                head = head.rstrip()[:-len(t)]
            return head
        bare = self.markup.bare_json and not streamed and text.lstrip().startswith("{")
        return "" if bare else text


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
