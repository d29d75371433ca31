"""Small GGUF files written with the `gguf` package, for listings and load failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter

# Qwen3's switch: thinking is the model's own choice unless enable_thinking is false, when the
# template writes the empty block (tests/core: the planner and the reasoning routes).
THINK_TOGGLE_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}")

def write_tiny_gguf(path: Path, arch: str = "bert", **uint32_meta: int) -> Path:
    """A valid GGUF header with a little metadata and one small tensor; not a usable model."""
    writer = GGUFWriter(str(path), arch)
    for key, value in uint32_meta.items():
        writer.add_uint32(key.replace("__", "."), value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def copy_with_metadata(src: Path, dest: Path, replace: dict[str, Any]) -> Path:
    """A copy of the model `src` (same weights and vocabulary) whose metadata keys in `replace`
    take the given values: a str is written as a string, an int as a uint32."""
    from gguf import GGUFReader, GGUFValueType, Keys

    reader = GGUFReader(str(src))
    arch = str(reader.fields[Keys.General.ARCHITECTURE].contents())
    writer = GGUFWriter(str(dest), arch)
    for fld in reader.fields.values():
        # A key replaced drops its variants too (tokenizer.chat_template.tool_use, ...).
        if fld.name == Keys.General.ARCHITECTURE or fld.name.startswith("GGUF.") or any(
                fld.name == key or fld.name.startswith(key + ".") for key in replace):
            continue
        kind = fld.types[0]
        sub = fld.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, fld.contents(), kind, sub_type=sub)
    for key, value in replace.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_uint32(key, value)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    return dest


def with_chat_template(src: Path, dest: Path, template: str) -> Path:
    """A copy of the model `src` whose tokenizer.chat_template is `template` (same weights and
    vocabulary): how a test serves a model that teaches another tool-call markup."""
    return copy_with_metadata(src, dest, {"tokenizer.chat_template": template})


def with_fim_tokens(src: Path, dest: Path, **ids: int) -> Path:
    """A copy of the model `src` whose vocabulary declares fill-in-the-middle tokens
    (`pre=11, suf=12, mid=13, rep=3, sep=5` -> tokenizer.ggml.fim_pre_token_id, ...) as
    existing token ids: same weights, so it proves prompt layouts, not completions."""
    return copy_with_metadata(
        src, dest, {f"tokenizer.ggml.fim_{name}_token_id": tok for name, tok in ids.items()})
