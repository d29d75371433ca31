"""Messages (+ tools) to a prompt in the model's own format.

How the format is chosen (formatter_for):
1. `override` (the CHAT_FORMAT setting) wins: a built-in name, or "jinja" for the GGUF template.
2. Else the GGUF's `tokenizer.chat_template`, rendered in a Jinja2 sandbox ("jinja").
3. Else a built-in format by `general.architecture` (gemma3 -> "gemma", qwen2/3 -> "chatml", ...).
4. Else ValueError: an unknown model is never silently given some other model's format.

BOS: the engine tokenizes prompts with add_special=True, so the tokenizer adds BOS itself when
its vocabulary says so (tokenizer.ggml.add_bos_token). Prompts are therefore rendered WITHOUT a
leading BOS in that case (a Jinja template's leading `{{ bos_token }}` is stripped), and with the
BOS text (parsed as the special token, parse_special=True) only when the tokenizer adds none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import Any

from slm_api.errors import InvalidRequest
from slm_api.prompting.chat_templates import (
    ARCHITECTURE_FORMATS,
    BUILTIN_FORMATS,
    BuiltinFormat,
    Turn,
    merge_same_role,
)
from slm_api.prompting.jinja_template import JinjaTemplate
from slm_api.prompting.reasoning import ReasoningMarkup, reasoning_for_template
from slm_api.prompting.tool_calls import (
    ToolCall,
    arguments_value,
    forced_functions,
    render_tool_calls,
    render_tool_response,
    tools_system_block,
)
from slm_api.prompting.tool_markup import (
    HERMES,
    MISTRAL,
    QWEN3_CODER,
    ToolMarkup,
    markup_for_template,
)
from slm_api.prompting.tool_stream import ToolCallDeltas, assemble
from slm_api.prompting.tool_xml import XmlCallDeltas

__all__ = [
    "FORMAT_NAMES",
    "ChatFormatter",
    "ToolCall",
    "ToolCallDeltas",
    "ToolMarkup",
    "forced_functions",
    "formatter_for",
    "normalize_messages",
]

FORMAT_NAMES: tuple[str, ...] = ("jinja", *BUILTIN_FORMATS)
_ALIASES = {
    "gemma2": "gemma", "gemma3": "gemma", "qwen": "chatml", "llama2": "llama-2",
    "llama3": "llama-3", "phi3": "phi-3", "mistral-instruct": "mistral",
}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool", "function": "tool"}
_LLAMA3_PRE = {"llama-bpe", "llama3", "llama-v3"}
_END_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|end|>",
                "<|endoftext|>", "</s>", "<|return|>", "<|call|>")
# Harmony (GPT-OSS) ends a message, not the turn, with <|end|>: the analysis is followed by
# the answer. Its turn ends with <|return|> (an answer) or <|call|> (a tool call).
_HARMONY_MESSAGE_END = "<|end|>"


# -- messages ------------------------------------------------------------------------------


def _content_text(content: Any, where: str) -> str:
    """OpenAI content (a string, None, or a list of parts) as plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts",
                             param="messages")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind in ("image_url", "input_image", "image", "input_audio", "file"):
            raise InvalidRequest(
                f"{where}.content[{j}] is of type {kind!r}; this server's models take text only",
                param="messages",
            )
        else:
            raise InvalidRequest(f"{where}.content[{j}] must be {{'type': 'text', 'text': ...}}",
                                 param="messages")
    return "\n".join(texts)


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Checked copies with string content and canonical roles (developer -> system,
    function -> tool). Raises InvalidRequest(param="messages") naming the bad field."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    out = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest(f"{where} must be an object", param="messages")
        role = msg.get("role")
        role = _ROLES.get(role) if isinstance(role, str) else None
        if role is None:
            raise InvalidRequest(f"{where}.role {msg.get('role')!r} is not one of "
                                 "system, developer, user, assistant, tool", param="messages")
        norm: dict[str, Any] = {"role": role, "content": _content_text(msg.get("content"), where)}
        calls = msg.get("tool_calls") if role == "assistant" else None
        if calls:
            if not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls
            ):
                raise InvalidRequest(f"{where}.tool_calls must be a list of "
                                     "{'type': 'function', 'function': {...}}", param="messages")
            norm["tool_calls"] = calls
        for key in ("name", "tool_call_id"):
            if isinstance(msg.get(key), str):
                norm[key] = msg[key]
        out.append(norm)
    return out


def to_turns(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[Turn]:
    """Normalized messages as plain (role, text) turns for formats with no tool support:
    the tools block joins the system text, calls become <tool_call> blocks in the assistant
    turn and results <tool_response> blocks in a user turn."""
    turns: list[Turn] = []
    for msg in messages:
        role, text = msg["role"], msg["content"]
        if role == "assistant" and msg.get("tool_calls"):
            calls = render_tool_calls(msg["tool_calls"])
            text = f"{text.rstrip()}\n{calls}" if text.strip() else calls
        elif role == "tool":
            role, text = "user", render_tool_response(text)
        turns.append((role, text))
    if tools:
        block = tools_system_block(tools)
        if turns and turns[0][0] == "system":
            first = turns[0][1].rstrip()
            turns[0] = ("system", f"{first}\n\n{block}" if first else block)
        else:
            turns.insert(0, ("system", block))
    return turns


def _nine_char_id(call_id: Any) -> str:
    # Mistral's templates (v0.3, Nemo) refuse a tool call id that is not 9 alphanumerics; ours
    # and other servers' are longer. The same id always maps to the same 9 characters, so a
    # call and its result still pair up in the prompt.
    return hashlib.sha256(str(call_id).encode()).hexdigest()[:9]


def _template_messages(messages: list[dict[str, Any]], short_ids: bool = False
                       ) -> list[dict[str, Any]]:
    """Messages as Hugging Face templates expect them: tool call arguments as objects;
    `short_ids`: ids of 9 alphanumerics (Mistral)."""
    fix = _nine_char_id if short_ids else (lambda i: i)
    out = []
    for msg in messages:
        msg = dict(msg)
        if short_ids and msg.get("tool_call_id"):
            msg["tool_call_id"] = fix(msg["tool_call_id"])
        if msg.get("tool_calls"):
            msg["tool_calls"] = [
                {
                    "id": fix(c.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": c["function"].get("name", ""),
                        "arguments": arguments_value(c["function"].get("arguments")),
                    },
                }
                for c in msg["tool_calls"]
            ]
        out.append(msg)
    return out


# -- formatters ----------------------------------------------------------------------------


class ChatFormatter:
    name: str  # "jinja" when the GGUF's own template is used, else the fallback's name
    stop: tuple[str, ...]  # end-of-turn strings to stop on

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        tool_choice: Any = "auto",
        template_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """The prompt text. tool_choice "none" leaves the tools out of the prompt;
        `template_kwargs`: extra template variables (`enable_thinking`), for Jinja templates.
        Raises InvalidRequest for messages the format cannot take."""
        raise NotImplementedError

    # The thinking markup the model writes before its answer (reasoning.py); None: it does not.
    reasoning: ReasoningMarkup | None = None

    # The markup the model calls tools in: Hermes, which the prompt teaches a template that
    # cannot render tools; a template that renders them teaches its own (JinjaFormatter).
    tool_markup: ToolMarkup = HERMES

    def tool_stream(self, tools: list[dict[str, Any]] | None = None,
                    max_calls: int | None = None) -> ToolCallDeltas | XmlCallDeltas:
        """A fresh splitter of generated text into content and tool-call deltas. `tools`: the
        request's (Qwen3-Coder's values are typed by their schemas); `max_calls`: 1 when
        parallel_tool_calls is false."""
        if self.tool_markup is QWEN3_CODER:
            return XmlCallDeltas(tools, max_calls)
        return ToolCallDeltas(self.tool_markup, max_calls)

    def split_reply(self, text: str, cut: bool, tools: list[dict[str, Any]] | None = None,
                    max_calls: int | None = None) -> tuple[str | None, list[ToolCall]]:
        """A whole reply's content and tool calls, exactly as its stream would send them;
        `cut`: generation ended at max_tokens (a cut call keeps its partial arguments)."""
        stream = self.tool_stream(tools, max_calls)
        return assemble(stream.feed(text) + stream.finish(cut))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class BuiltinFormatter(ChatFormatter):
    def __init__(self, fmt: BuiltinFormat, *, bos: str = "", eos: str = "",
                 tokenizer_adds_bos: bool = True):
        self.format = fmt
        self.name = fmt.name
        self.bos = bos or fmt.default_bos
        self.eos = eos or fmt.default_eos
        self.stop = fmt.stop
        # The format wants a BOS first, and the tokenizer will not add one: write it out.
        self.prefix = self.bos if fmt.default_bos and not tokenizer_adds_bos else ""

    def render(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
               add_generation_prompt: bool = True, tool_choice: Any = "auto",
               template_kwargs: dict[str, Any] | None = None) -> str:
        msgs = normalize_messages(messages)
        turns = to_turns(msgs, tools if tool_choice != "none" else None)
        return self.prefix + self.format.render(turns, add_generation_prompt, self.bos, self.eos)


class JinjaFormatter(ChatFormatter):
    name = "jinja"

    def __init__(self, template: str, *, bos: str = "", eos: str = "",
                 tokenizer_adds_bos: bool = True, reasoning_format: str | None = "auto"):
        self.template = JinjaTemplate(template)  # ValueError when it does not compile
        self.reasoning = reasoning_for_template(template, reasoning_format)
        if self.template.uses_tools:
            self.tool_markup = markup_for_template(template)
        self.bos, self.eos = bos, eos
        self.strip_bos = tokenizer_adds_bos and bool(bos)
        harmony = "<|channel|>" in template
        markers = [m for m in _END_MARKERS if m in template
                   and not (harmony and m == _HARMONY_MESSAGE_END)]
        self.stop = tuple(dict.fromkeys([*markers, *([eos] if eos else [])]))

    def render(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
               add_generation_prompt: bool = True, tool_choice: Any = "auto",
               template_kwargs: dict[str, Any] | None = None) -> str:
        msgs = normalize_messages(messages)
        tools = tools if tools and tool_choice != "none" else None
        context: dict[str, Any] = {
            **(template_kwargs or {}),  # under ours: a client cannot replace the messages
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos,
            "eos_token": self.eos,
        }
        has_tool_messages = any(m["role"] == "tool" or m.get("tool_calls") for m in msgs)
        if self.template.uses_tools:
            context["messages"] = _template_messages(msgs, self.tool_markup is MISTRAL)
            if tools:
                # Templates test `tools is defined` / `tools is not none`: pass only real tools.
                context["tools"] = tools
        elif tools or has_tool_messages:
            turns = to_turns(msgs, tools)
            if has_tool_messages:
                turns = merge_same_role(turns)
            context["messages"] = [{"role": r, "content": t} for r, t in turns]
        else:
            context["messages"] = msgs
        text = self.template.render(**context)
        if self.strip_bos and text.startswith(self.bos):
            text = text[len(self.bos):]
        return text


# -- choosing ------------------------------------------------------------------------------


def _as_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return str(value).strip().lower() in ("true", "1", "yes")


def tokenizer_adds_bos(metadata: Mapping[str, str]) -> bool:
    """Whether llama.cpp's tokenizer adds BOS with add_special=True for this vocabulary:
    the file's own flag, else llama.cpp's default (SentencePiece and Llama-3 BPE: yes)."""
    flag = _as_bool(metadata.get("tokenizer.ggml.add_bos_token"))
    if flag is not None:
        return flag
    return (metadata.get("tokenizer.ggml.model") == "llama"
            or metadata.get("tokenizer.ggml.pre") in _LLAMA3_PRE)


def canonical_format_name(name: str) -> str | None:
    """The format a CHAT_FORMAT value names; None for "", "auto". ValueError when unknown."""
    key = name.strip().lower().replace("_", "-")
    if key in ("", "auto"):
        return None
    key = _ALIASES.get(key, key)
    if key not in FORMAT_NAMES:
        raise ValueError(f"unknown chat format {name!r}; valid values: {', '.join(FORMAT_NAMES)}"
                         " (or 'auto')")
    return key


def format_for_architecture(metadata: Mapping[str, str],
                            special_tokens: Collection[str] = ()) -> str | None:
    arch = metadata.get("general.architecture", "")
    if arch == "llama":
        # Llama 3 ships a BPE vocabulary with header tokens; Llama 2 a SentencePiece one. Other
        # BPE models that reuse the llama architecture (SmolLM, ...) match neither: no guess.
        if ("<|start_header_id|>" in special_tokens
                or metadata.get("tokenizer.ggml.pre") in _LLAMA3_PRE
                or (metadata.get("tokenizer.ggml.model") == "gpt2"
                    and metadata.get("llama.vocab_size") == "128256")):
            return "llama-3"
        if metadata.get("tokenizer.ggml.model", "llama") == "llama":
            return "llama-2"
        return None
    return ARCHITECTURE_FORMATS.get(arch)


def formatter_for(
    metadata: Mapping[str, str],
    override: str | None = None,
    *,
    bos: str = "",
    eos: str = "",
    add_bos: bool | None = None,
    special_tokens: Collection[str] = (),
    reasoning_format: str | None = "auto",
) -> ChatFormatter:
    """The GGUF template (tokenizer.chat_template) when present, else by general.architecture;
    `override` (CHAT_FORMAT) wins. Unknown architecture with no template: ValueError.

    bos/eos: the vocabulary's BOS/EOS token texts (passed to templates as bos_token/eos_token).
    add_bos: whether the tokenizer adds BOS itself (llama_vocab_get_add_bos); None reads it from
    the metadata. special_tokens: optional token texts from the vocabulary, a hint for llama-3.
    reasoning_format: REASONING_FORMAT (auto: the template says; none; think).
    """
    template = metadata.get("tokenizer.chat_template") or None
    adds_bos = tokenizer_adds_bos(metadata) if add_bos is None else add_bos
    name = canonical_format_name(override) if override else None
    if name == "jinja" or (name is None and template):
        if not template:
            raise ValueError("CHAT_FORMAT=jinja, but this GGUF has no tokenizer.chat_template; "
                             f"use one of: {', '.join(BUILTIN_FORMATS)}")
        return JinjaFormatter(template, bos=bos, eos=eos, tokenizer_adds_bos=adds_bos,
                              reasoning_format=reasoning_format)
    if name is None:
        name = format_for_architecture(metadata, special_tokens)
        if name is None:
            arch = metadata.get("general.architecture") or "(none)"
            raise ValueError(
                f"this GGUF has no chat template and architecture {arch!r} has no built-in "
                f"format; set CHAT_FORMAT to one of: {', '.join(BUILTIN_FORMATS)}"
            )
    builtin = BuiltinFormatter(BUILTIN_FORMATS[name], bos=bos, eos=eos,
                               tokenizer_adds_bos=adds_bos)
    builtin.reasoning = reasoning_for_template(None, reasoning_format)
    return builtin
