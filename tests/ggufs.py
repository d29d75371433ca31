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
