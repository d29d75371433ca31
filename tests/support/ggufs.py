"""Small GGUF files written with the `gguf` package, for listings and load failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter


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


def with_chat_template(src: Path, dest: Path, template: str) -> Path:
    """A copy of the model `src` whose tokenizer.chat_template is `template` (same weights and
    vocabulary): how a test serves a model that teaches another tool-call markup."""
    from gguf import GGUFReader, GGUFValueType, Keys

    reader = GGUFReader(str(src))
    arch = str(reader.fields[Keys.General.ARCHITECTURE].contents())
    writer = GGUFWriter(str(dest), arch)
    for fld in reader.fields.values():
        if fld.name == Keys.General.ARCHITECTURE or fld.name.startswith(
                ("GGUF.", Keys.Tokenizer.CHAT_TEMPLATE)):
            continue
        kind = fld.types[0]
        sub = fld.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, fld.contents(), kind, sub_type=sub)
    writer.add_chat_template(template)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    return dest


def with_fim_tokens(src: Path, dest: Path, **ids: int) -> Path:
    """A copy of the model `src` whose vocabulary declares fill-in-the-middle tokens
    (`pre=11, suf=12, mid=13, rep=3, sep=5` -> tokenizer.ggml.fim_pre_token_id, ...) as
    existing token ids: same weights, so it proves prompt layouts, not completions."""
    from gguf import GGUFReader, GGUFValueType, Keys

    keys = {f"tokenizer.ggml.fim_{name}_token_id": tok for name, tok in ids.items()}
    reader = GGUFReader(str(src))
    arch = str(reader.fields[Keys.General.ARCHITECTURE].contents())
    writer = GGUFWriter(str(dest), arch)
    for fld in reader.fields.values():
        if fld.name == Keys.General.ARCHITECTURE or fld.name.startswith("GGUF.") or \
                fld.name in keys:
            continue
        kind = fld.types[0]
        sub = fld.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, fld.contents(), kind, sub_type=sub)
    for key, tok in keys.items():
        writer.add_uint32(key, tok)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    return dest
