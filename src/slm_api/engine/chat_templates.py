"""Built-in prompt formats, for GGUF files that carry no chat template of their own.

Each is a Jinja2 template in the Hugging Face convention (messages, add_generation_prompt,
bos_token), rendered by the same sandbox as templates read from GGUF metadata. Messages reach
them already normalised (see chat_format.normalise): string content, tool calls and results
rendered as text, and for formats without a system role the system text folded into the first
user turn.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinFormat:
    name: str
    template: str
    stop: tuple[str, ...]
    system_role: bool  # False: fold system text into the first user turn


GEMMA = BuiltinFormat(
    "gemma",
    "{% for m in messages %}"
    "{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else 'user') + '\n'"
    " + m.content | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
    ("<end_of_turn>",),
    system_role=False,
)

CHATML = BuiltinFormat(
    "chatml",
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    ("<|im_end|>",),
    system_role=True,
)

LLAMA_3 = BuiltinFormat(
    "llama-3",
    "{% for m in messages %}"
    "{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\n\n' + m.content | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}",
    ("<|eot_id|>",),
    system_role=True,
)

LLAMA_2 = BuiltinFormat(
    "llama-2",
    "{% for m in messages %}"
    "{% if m.role == 'user' %}{{ '[INST] ' + m.content | trim + ' [/INST]' }}"
    "{% elif m.role == 'assistant' %}{{ ' ' + m.content | trim + ' ' + eos_token }}"
    "{% endif %}{% endfor %}",
    ("[INST]",),
    system_role=False,
)

MISTRAL = BuiltinFormat(
    "mistral",
    "{% for m in messages %}"
    "{% if m.role == 'user' %}{{ '[INST] ' + m.content | trim + ' [/INST]' }}"
    "{% elif m.role == 'assistant' %}{{ m.content | trim + eos_token }}"
    "{% endif %}{% endfor %}",
    ("[INST]",),
    system_role=False,
)

PHI_3 = BuiltinFormat(
    "phi-3",
    "{% for m in messages %}"
    "{{ '<|' + m.role + '|>\n' + m.content + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
    ("<|end|>", "<|endoftext|>"),
    system_role=True,
)

FORMATS = {f.name: f for f in (GEMMA, CHATML, LLAMA_3, LLAMA_2, MISTRAL, PHI_3)}

# general.architecture -> format, for files without a template.
BY_ARCHITECTURE = {
    "gemma": GEMMA,
    "gemma2": GEMMA,
    "gemma3": GEMMA,
    "gemma3n": GEMMA,
    "qwen": CHATML,
    "qwen2": CHATML,
    "qwen2moe": CHATML,
    "qwen3": CHATML,
    "qwen3moe": CHATML,
    "phi3": PHI_3,
    "mistral": MISTRAL,
}
