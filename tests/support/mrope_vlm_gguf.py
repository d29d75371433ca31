"""A tiny M-RoPE vision model written with the `gguf` package: a `qwen2vl` language model with
SmolLM2's vocabulary and chat template, and a `qwen2vl_merger` projector that libmtmd loads
(the Qwen2-VL family's layout: two patch convolutions, 2 x 2 patches merged into one token).

With M-RoPE an image of n_tokens takes only max(rows, cols) positions, so after an image a
token's position is not its index: this model is what the engine's position bookkeeping is
tested on. Its queries and keys are small but not zero, so attention (and the greedy answer)
depends on the positions the text after an image is given, not only on the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from support.vision_gguf import SOURCE_MODEL, _copy_tokenizer, _finish, _normal

TEXT_NAME = "tiny-qwen2vl.gguf"
MMPROJ_NAME = "mmproj-tiny-qwen2vl.gguf"

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
# Qwen2-VL splits each head's rotary pairs into (time, height, width, unused) sections; a head
# of 16 has 8 pairs.
ROPE_SECTIONS = [2, 3, 3, 0]
PATCH_SIZE = 14
MERGE = 2              # 2 x 2 patches make one image token
V_EMBD = 32
V_FF = 48
V_LAYER = 1
V_HEAD = 4
MM_HIDDEN = 64
ATTN_GAIN = 30.0       # as vision_gguf: the image's share of the attention outvotes the last token
QK_SCALE = 0.6         # position-sensitive attention, still close enough to an average


def write_text_model(path: Path, source: Path) -> Path:
    writer = GGUFWriter(str(path), "qwen2vl")
    writer.add_name("tiny-qwen2vl")
    n_vocab = _copy_tokenizer(writer, source)
    writer.add_context_length(4096)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_dimension_sections(ROPE_SECTIONS)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(0)
    writer.add_tensor("token_embd.weight", _normal("q2.token_embd", (n_vocab, N_EMBD), 1.0))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    s = 1.0 / np.sqrt(N_EMBD)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k"):
            writer.add_tensor(p + name + ".weight",
                              _normal("q2." + p + name, (N_EMBD, N_EMBD), QK_SCALE * s))
            writer.add_tensor(p + name + ".bias", np.zeros(N_EMBD, dtype=np.float32))
        writer.add_tensor(p + "attn_v.weight", _normal("q2." + p + "attn_v", (N_EMBD, N_EMBD), s))
        writer.add_tensor(p + "attn_v.bias", np.zeros(N_EMBD, dtype=np.float32))
        writer.add_tensor(p + "attn_output.weight",
                          _normal("q2." + p + "attn_output", (N_EMBD, N_EMBD), ATTN_GAIN * s))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(p + "ffn_gate.weight", _normal("q2." + p + "gate", (N_FF, N_EMBD), s))
        writer.add_tensor(p + "ffn_up.weight", _normal("q2." + p + "up", (N_FF, N_EMBD), s))
        writer.add_tensor(p + "ffn_down.weight", _normal("q2." + p + "down", (N_EMBD, N_FF),
                                                         0.1 / np.sqrt(N_FF)))
    _finish(writer)
    return path


def write_projector(path: Path) -> Path:
    writer = GGUFWriter(str(path), "clip")
    writer.add_name("tiny-qwen2vl projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "qwen2vl_merger")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", 560)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", V_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", V_FF)
    writer.add_uint32("clip.vision.block_count", V_LAYER)
    writer.add_uint32("clip.vision.projection_dim", N_EMBD)
    writer.add_uint32("clip.vision.attention.head_count", V_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.spatial_merge_size", MERGE)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_file_type(0)
    # Qwen2-VL's patch embedding is a 3-D convolution over two frames, stored as two 2-D ones.
    for i, suffix in enumerate(("", ".1")):
        writer.add_tensor("v.patch_embd.weight" + suffix,
                          _normal(f"q2.patch{i}", (V_EMBD, 3, PATCH_SIZE, PATCH_SIZE), 0.05))
    s = 1.0 / np.sqrt(V_EMBD)
    for i in range(V_LAYER):
        p = f"v.blk.{i}."
        for norm in ("ln1", "ln2"):
            writer.add_tensor(p + norm + ".weight", np.ones(V_EMBD, dtype=np.float32))
            writer.add_tensor(p + norm + ".bias", np.zeros(V_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(p + name + ".weight", _normal("q2." + p + name, (V_EMBD, V_EMBD), s))
            writer.add_tensor(p + name + ".bias", np.zeros(V_EMBD, dtype=np.float32))
        writer.add_tensor(p + "ffn_up.weight", _normal("q2." + p + "up", (V_FF, V_EMBD), s))
        writer.add_tensor(p + "ffn_up.bias", np.zeros(V_FF, dtype=np.float32))
        writer.add_tensor(p + "ffn_down.weight", _normal("q2." + p + "down", (V_EMBD, V_FF),
                                                         1.0 / np.sqrt(V_FF)))
        writer.add_tensor(p + "ffn_down.bias", np.zeros(V_EMBD, dtype=np.float32))
    # The merger: 4 neighbouring patches (4 x V_EMBD) -> MM_HIDDEN -> the model's width, loud
    # enough that the image steers the answer.
    writer.add_tensor("mm.0.weight", _normal("q2.mm0", (MM_HIDDEN, 4 * V_EMBD),
                                             4.0 / np.sqrt(4 * V_EMBD)))
    writer.add_tensor("mm.0.bias", np.zeros(MM_HIDDEN, dtype=np.float32))
    writer.add_tensor("mm.2.weight", _normal("q2.mm2", (N_EMBD, MM_HIDDEN),
                                             4.0 / np.sqrt(MM_HIDDEN)))
    writer.add_tensor("mm.2.bias", np.zeros(N_EMBD, dtype=np.float32))
    _finish(writer)
    return path


def write_tiny_qwen2vl(directory: Path, models_dir: Path) -> tuple[Path, Path]:
    """Write the M-RoPE language model and its projector (`mmproj-*.gguf`, beside it) into
    `directory`; return (model, projector)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / TEXT_NAME
    mmproj = directory / MMPROJ_NAME
    if not model.exists():
        write_text_model(model, models_dir / SOURCE_MODEL)
    if not mmproj.exists():
        write_projector(mmproj)
    return model, mmproj
