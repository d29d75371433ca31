"""A tiny vision model written with the `gguf` package: a llama-architecture language model with
SmolLM2's vocabulary and chat template, and a LLaVA-style (`mlp`) projector that libmtmd loads.

No real vision model can be fetched on these machines, so the suite writes one. The weights are
random but seeded, so every run writes the same bytes; the projector's output feeds the language
model's input, so the greedy answer depends on the image: two different images give two
different answers, the same image gives the same answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys

SOURCE_MODEL = "smollm2-135m-instruct-q4_1.gguf"
TEXT_NAME = "tiny-vlm.gguf"
MMPROJ_NAME = "mmproj-tiny-vlm.gguf"

N_EMBD = 64            # the language model's width, also the projector's output width
N_LAYER = 2
N_HEAD = 4
N_FF = 128
IMAGE_SIZE = 56        # 4 x 4 patches of 14 px: 16 image tokens per image
PATCH_SIZE = 14
V_EMBD = 32            # the vision tower's width
V_FF = 48
V_LAYER = 2            # LLaVA reads the second-to-last block's output: one block runs
SEED = 38
ATTN_GAIN = 30.0     # see write_text_model: the image outvotes the last token


def _rng(name: str) -> np.random.Generator:
    # One stream per tensor, keyed by its name, so adding a tensor does not shift the others.
    return np.random.default_rng([SEED, *name.encode()])


def _normal(name: str, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return (_rng(name).standard_normal(shape) * scale).astype(np.float32)


def _copy_tokenizer(writer: GGUFWriter, source: Path) -> int:
    """Copy the source model's tokenizer and chat template; return the vocabulary size."""
    reader = GGUFReader(str(source))
    n_vocab = 0
    for fld in reader.fields.values():
        if not fld.name.startswith("tokenizer."):
            continue
        kind = fld.types[0]
        sub = fld.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, fld.contents(), kind, sub_type=sub)
        if fld.name == Keys.Tokenizer.LIST:
            n_vocab = len(fld.data)
    return n_vocab


def write_text_model(path: Path, source: Path, name: str = "tiny-vlm") -> Path:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    n_vocab = _copy_tokenizer(writer, source)
    writer.add_context_length(2048)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(0)  # all F32
    # numpy shapes are ggml's ne reversed: a weight mapping n_in -> n_out is (n_out, n_in).
    writer.add_tensor("token_embd.weight", _normal("token_embd", (n_vocab, N_EMBD), 1.0))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        s = 1.0 / np.sqrt(N_EMBD)
        writer.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        # A random model copies its last token (the residual stream carries it to the
        # output). Zero queries and keys make attention a plain average over the prompt, and
        # a loud output projection lets that average (the image's share of it) outvote the
        # residual: the answer then depends on the image, not on the last token.
        for name in ("attn_q", "attn_k"):
            writer.add_tensor(p + name + ".weight", np.zeros((N_EMBD, N_EMBD), np.float32))
        writer.add_tensor(p + "attn_v.weight", _normal(p + "attn_v", (N_EMBD, N_EMBD), s))
        writer.add_tensor(p + "attn_output.weight",
                          _normal(p + "attn_output", (N_EMBD, N_EMBD), ATTN_GAIN * s))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(p + "ffn_gate.weight", _normal(p + "gate", (N_FF, N_EMBD), s))
        writer.add_tensor(p + "ffn_up.weight", _normal(p + "up", (N_FF, N_EMBD), s))
        writer.add_tensor(p + "ffn_down.weight", _normal(p + "down", (N_EMBD, N_FF),
                                                         0.1 / np.sqrt(N_FF)))
    _finish(writer)
    return path


def write_projector(path: Path) -> Path:
    writer = GGUFWriter(str(path), "clip")
    writer.add_name("tiny-vlm projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", V_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", V_FF)
    writer.add_uint32("clip.vision.block_count", V_LAYER)
    writer.add_uint32("clip.vision.projection_dim", N_EMBD)
    writer.add_uint32("clip.vision.attention.head_count", 4)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_file_type(0)
    n_pos = (IMAGE_SIZE // PATCH_SIZE) ** 2
    writer.add_tensor("v.patch_embd.weight",
                      _normal("patch", (V_EMBD, 3, PATCH_SIZE, PATCH_SIZE), 0.05))
    writer.add_tensor("v.patch_embd.bias", np.zeros(V_EMBD, dtype=np.float32))
    writer.add_tensor("v.position_embd.weight", _normal("pos", (n_pos, V_EMBD), 0.02))
    s = 1.0 / np.sqrt(V_EMBD)
    for i in range(V_LAYER):
        p = f"v.blk.{i}."
        for norm in ("ln1", "ln2"):
            writer.add_tensor(p + norm + ".weight", np.ones(V_EMBD, dtype=np.float32))
            writer.add_tensor(p + norm + ".bias", np.zeros(V_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(p + name + ".weight", _normal(p + name, (V_EMBD, V_EMBD), s))
            writer.add_tensor(p + name + ".bias", np.zeros(V_EMBD, dtype=np.float32))
        writer.add_tensor(p + "ffn_up.weight", _normal(p + "up", (V_FF, V_EMBD), s))
        writer.add_tensor(p + "ffn_up.bias", np.zeros(V_FF, dtype=np.float32))
        writer.add_tensor(p + "ffn_down.weight", _normal(p + "down", (V_EMBD, V_FF),
                                                         1.0 / np.sqrt(V_FF)))
        writer.add_tensor(p + "ffn_down.bias", np.zeros(V_EMBD, dtype=np.float32))
    # The projection's scale sets how loud the image is next to the text tokens' embeddings
    # (unit normal): loud enough that the image, not the prompt, steers the answer.
    writer.add_tensor("mm.0.weight", _normal("mm0", (N_EMBD, V_EMBD), 4.0 / np.sqrt(V_EMBD)))
    writer.add_tensor("mm.0.bias", np.zeros(N_EMBD, dtype=np.float32))
    writer.add_tensor("mm.2.weight", _normal("mm2", (N_EMBD, N_EMBD), 4.0 / np.sqrt(N_EMBD)))
    writer.add_tensor("mm.2.bias", np.zeros(N_EMBD, dtype=np.float32))
    _finish(writer)
    return path


def _finish(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_vlm(directory: Path, models_dir: Path) -> tuple[Path, Path]:
    """Write the language model and its projector (named `mmproj-*.gguf`, beside it, as
    llama.cpp's tools look for it) into `directory`; return (model, projector)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / TEXT_NAME
    mmproj = directory / MMPROJ_NAME
    if not model.exists():
        write_text_model(model, models_dir / SOURCE_MODEL)
    if not mmproj.exists():
        write_projector(mmproj)
    return model, mmproj
