"""The core's one output shape: a reply as a typed stream of blocks. Each block opens
(`BlockStart`: its kind, its index, for a tool call the call), receives text (`BlockDelta`),
and closes (`BlockStop`) before the next opens. Kinds: a reasoning model's thinking (first, at
most one), text, and each tool call as its own block.

Every family adapts this stream to its wire (OpenAI's chunks, Anthropic's content_block_*
events, Responses' output items, Ollama's objects); none parses another family's shape back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from slm_api.api.core.conversation import ChatRun, ReplySplitter
from slm_api.engine import Chunk
from slm_api.prompting.chat_format import ToolCall


class BlockKind(StrEnum):
    THINKING = "thinking"
    TEXT = "text"
    TOOL_CALL = "tool_call"


@dataclass(frozen=True)
class BlockStart:
    """A block opens at `index` (blocks count from 0 in the order they open). A tool call's
    block carries the call (its id and name; its arguments grow as they are written), its place
    among the reply's calls, and `arguments`: what of them is known as it opens (all of them
    for a call parsed whole at the end, else "")."""

    kind: BlockKind
    index: int
    call: ToolCall | None = None
    call_index: int = 0
    arguments: str = ""


@dataclass(frozen=True)
class BlockDelta:
    """The next fragment of the open block: thinking text, answer text or call arguments."""

    kind: BlockKind
    index: int
    text: str


@dataclass(frozen=True)
class BlockStop:
    """The open block closes; `at_end`: because the reply ended (a cut reply's last block is
    incomplete), not because the next block opened."""

    kind: BlockKind
    index: int
    at_end: bool = False


Block = BlockStart | BlockDelta | BlockStop


class BlockStream:
    """One reply's generated text in, its blocks out, whatever the pieces' boundaries.
    `thinking`: a reasoning model's thinking becomes a THINKING block (else it is dropped)."""

    def __init__(self, run: ChatRun, thinking: bool = False):
        self._splitter = ReplySplitter(run, reasoning=thinking)
        self._open: BlockStart | None = None
        self._next = 0

    @property
    def reasoning(self) -> str:
        """The thinking so far (sent or not)."""
        return self._splitter.reasoning

    @property
    def calls(self) -> list[ToolCall]:
        return self._splitter.calls

    def feed(self, text: str) -> list[Block]:
        return self._blocks(self._splitter.feed_deltas(text))

    def finish(self, cut: bool) -> list[Block]:
        """The rest, then the stop of the last block; `cut`: the reply ended at a limit (a cut
        call keeps its partial arguments)."""
        out = self._blocks(self._splitter.finish_deltas(cut))
        if self._open is not None:
            out.append(BlockStop(self._open.kind, self._open.index, at_end=True))
            self._open = None
        return out

    def _blocks(self, deltas: list[dict[str, Any]]) -> list[Block]:
        out: list[Block] = []
        for delta in deltas:
            entry = delta.get("tool_call")
            if "reasoning" in delta:
                self._text(out, BlockKind.THINKING, delta["reasoning"])
            elif entry is None:
                if delta["content"]:
                    self._text(out, BlockKind.TEXT, delta["content"])
            elif "id" in entry:
                self._start(out, BlockKind.TOOL_CALL, call=self.calls[entry["index"]],
                            call_index=entry["index"],
                            arguments=entry["function"]["arguments"])
            else:
                assert self._open is not None
                out.append(BlockDelta(BlockKind.TOOL_CALL, self._open.index,
                                      entry["function"]["arguments"]))
        return out

    def _text(self, out: list[Block], kind: BlockKind, text: str) -> None:
        if self._open is None or self._open.kind is not kind:
            self._start(out, kind)
        assert self._open is not None
        out.append(BlockDelta(kind, self._open.index, text))

    def _start(self, out: list[Block], kind: BlockKind, **fields: Any) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open.kind, self._open.index))
        self._open = BlockStart(kind, self._next, **fields)
        self._next += 1
        out.append(self._open)


def stream_blocks(run: ChatRun, chunks: Iterator[Chunk], thinking: bool = False
                  ) -> Iterator[Block]:
    """A single reply's blocks as it is generated (`run` a run of one choice)."""
    blocks = BlockStream(run, thinking)
    for chunk in chunks:
        yield from blocks.feed(chunk.text)
    finished = run.generation.result if run.generation else None
    yield from blocks.finish(finished is not None and finished.cause.cut)
