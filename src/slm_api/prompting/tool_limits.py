"""`parallel_tool_calls: false` (Anthropic: `disable_parallel_tool_use`): at most one call.

A forced call's grammar already allows exactly one (tool_markup.ToolMarkup.grammar). A free
reply is stopped at the first call's closing markup (a stop string, so no decoding is spent
on calls that would be dropped), and the parsers (tool_stream.py, tool_xml.py) take nothing
after the first call. Markups with no closing marker of their own (Llama 3's bare JSON,
Mistral's list, Mistral v11) rely on the parser alone.
"""

from __future__ import annotations

from typing import Any

from slm_api.prompting.tool_markup import ToolMarkup

# The text that closes one call, per markup; generation may stop there.
CALL_ENDS = {
    "hermes": "</tool_call>",
    "qwen3-coder": "</tool_call>",
    "harmony": "<|call|>",
    "granite": "<|/tool_call|>",
    "deepseek-r1": "<｜tool▁call▁end｜>",
    "deepseek-v3.1": "<｜tool▁call▁end｜>",
}


def one_call_limit(tools: list[dict[str, Any]] | None, parallel: bool | None) -> int | None:
    """The most calls a reply may make: 1 when the client turned parallel calls off and tools
    are active, else None (no limit)."""
    return 1 if parallel is False and tools else None


def one_call_stops(markup: ToolMarkup, max_calls: int | None) -> list[str]:
    """Stop strings that end generation after the one call allowed."""
    end = CALL_ENDS.get(markup.name) if max_calls == 1 else None
    return [end] if end else []
