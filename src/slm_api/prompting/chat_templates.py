"""Built-in prompt formats, for GGUF files that carry no chat template of their own.

Each format gets plain turns: (role, text) with role "system", "user" or "assistant"; tool calls
and tool results have already been written into the text (see chat_format.to_turns). The
rendered prompt never holds the leading BOS: the engine tokenizes with add_special=True, which
adds it (ChatFormatter prepends it only for vocabularies that do not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Turn = tuple[str, str]


@dataclass(frozen=True)
class BuiltinFormat:
    name: str
    # (turns, add_generation_prompt, bos, eos) -> prompt text
    render: Callable[[list[Turn], bool, str, str], str]
    stop: tuple[str, ...]
    default_bos: str  # "" when the format starts with no BOS
    default_eos: str


def merge_same_role(turns: list[Turn]) -> list[Turn]:
    """Adjacent turns of one role become one turn: formats that need strict alternation
    (Gemma, [INST]) stay well-formed, and nothing is dropped."""
    out: list[Turn] = []
    for role, text in turns:
        if out and out[-1][0] == role:
            prev = out[-1][1]
            out[-1] = (role, f"{prev}\n\n{text}" if prev and text else prev + text)
        else:
            out.append((role, text))
    return out


def fold_system(turns: list[Turn], combine: Callable[[str, str], str] | None = None) -> list[Turn]:
    """For formats without a system role: each system text goes in front of the user turn that
    comes next. When an assistant turn (or the end) comes first, the system text becomes a user
    turn of its own where it stood, so it is never dropped or moved across a reply."""
    combine = combine or (lambda system, user: f"{system}\n\n{user}" if user else system)
    out: list[Turn] = []
    pending: list[str] = []
    for role, text in turns:
        if role == "system":
            pending.append(text)
            continue
        if pending:
            system = "\n\n".join(t for t in pending if t)
            pending = []
            if role == "user":
                text = combine(system, text)
            else:
                out.append(("user", combine(system, "")))
        out.append((role, text))
    if pending:
        out.append(("user", combine("\n\n".join(t for t in pending if t), "")))
    return merge_same_role(out)


def _gemma(turns: list[Turn], gen: bool, bos: str, eos: str) -> str:
    parts = []
    for role, text in fold_system(turns):
        tag = "model" if role == "assistant" else "user"
        parts.append(f"<start_of_turn>{tag}\n{text.strip()}<end_of_turn>\n")
    if gen:
        parts.append("<start_of_turn>model\n")
    return "".join(parts)


def _chatml(turns: list[Turn], gen: bool, bos: str, eos: str) -> str:
    parts = [f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in merge_same_role(turns)]
    if gen:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _llama3(turns: list[Turn], gen: bool, bos: str, eos: str) -> str:
    parts = [
        f"<|start_header_id|>{role}<|end_header_id|>\n\n{text.strip()}<|eot_id|>"
        for role, text in merge_same_role(turns)
    ]
    if gen:
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _inst(turns: list[Turn], eos: str, turn_bos: str, space_before_eos: bool) -> str:
    # [INST] formats: every reply ends with EOS; llama-2 also opens each later exchange with
    # its own BOS (the first BOS is the tokenizer's). There is no generation prompt to add:
    # the model answers right after [/INST].
    parts = []
    for i, (role, text) in enumerate(turns):
        if role == "user":
            parts.append(f"{turn_bos if i else ''}[INST] {text.strip()} [/INST]")
        else:
            parts.append(f" {text.strip()}{' ' if space_before_eos else ''}{eos}")
    return "".join(parts)


def _llama2(turns: list[Turn], gen: bool, bos: str, eos: str) -> str:
    def combine(system: str, user: str) -> str:
        return f"<<SYS>>\n{system}\n<</SYS>>\n\n{user}"

    return _inst(fold_system(turns, combine), eos, turn_bos=bos, space_before_eos=True)


def _mistral(turns: list[Turn], gen: bool, bos: str, eos: str) -> str:
    return _inst(fold_system(turns), eos, turn_bos="", space_before_eos=False)


def _phi3(turns: list[Turn], gen: bool, bos: str, eos: str) -> str:
    parts = [f"<|{role}|>\n{text}<|end|>\n" for role, text in merge_same_role(turns)]
    if gen:
        parts.append("<|assistant|>\n")
    return "".join(parts)


BUILTIN_FORMATS: dict[str, BuiltinFormat] = {
    f.name: f
    for f in (
        BuiltinFormat("gemma", _gemma, ("<end_of_turn>",), "<bos>", "<eos>"),
        BuiltinFormat("chatml", _chatml, ("<|im_end|>",), "", "<|im_end|>"),
        BuiltinFormat("llama-2", _llama2, ("</s>", "[INST]"), "<s>", "</s>"),
        BuiltinFormat(
            "llama-3", _llama3, ("<|eot_id|>", "<|eom_id|>"), "<|begin_of_text|>", "<|eot_id|>"
        ),
        BuiltinFormat("mistral", _mistral, ("</s>", "[INST]"), "<s>", "</s>"),
        BuiltinFormat("phi-3", _phi3, ("<|end|>", "<|endoftext|>"), "", "<|endoftext|>"),
    )
}

# general.architecture -> format, for files without a template. "llama" is decided separately
# (llama-3 vs llama-2 depends on the tokenizer).
ARCHITECTURE_FORMATS: dict[str, str] = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "qwen": "chatml",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
    "phi3": "phi-3",
    "mistral": "mistral",
}
