"""Messages (+ tools) to a prompt in the model's own format. (STUB: to be built)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


class ChatFormatter:
    name: str  # "jinja" when the GGUF's own template is used, else the fallback's name
    stop: tuple[str, ...]  # end-of-turn strings to stop on

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        raise NotImplementedError

    def parse_tool_calls(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """Split a reply into its plain content and the tool calls the model made."""
        raise NotImplementedError


def formatter_for(
    metadata: Mapping[str, str], override: str | None = None, *, bos: str = "", eos: str = ""
) -> ChatFormatter:
    """The GGUF template (tokenizer.chat_template) when present, else by general.architecture;
    `override` (CHAT_FORMAT) wins. Unknown architecture with no template: ValueError."""
    raise NotImplementedError
