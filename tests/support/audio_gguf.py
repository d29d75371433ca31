"""A tiny audio model written with the `gguf` package: vision_gguf.py's tiny llama-architecture
language model (SmolLM2's vocabulary and chat template) and a Qwen2-Audio (`qwen2a`) projector
that libmtmd loads and reports `mtmd_support_audio` for.

`qwen2a` is the simplest audio projector libmtmd has: the Whisper encoder (two 1-D convolutions,
pre-norm transformer blocks with no key bias, a 2x average pool) and one linear layer into the
language model (tools/mtmd/models/whisper-enc.cpp). libmtmd turns a clip into 16 kHz log-mel
frames, padded with 30 s of silence and cut into 30 s windows of 3,000 frames; each window is one
chunk of 3000 / 2 (the stride-2 convolution) / 2 (the pool) = 750 tokens. So a clip shorter
than 30 s is 750 audio tokens, one shorter than 60 s 1,500, and so on (the padding counts).

The weights are random but seeded (every run writes the same bytes). The encoder's output feeds
the language model, whose attention is a plain average (vision_gguf.write_text_model), so the
greedy answer depends on the sound: a 440 Hz tone and a 1,500 Hz one give two different answers,
the same tone the same answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from support.vision_gguf import N_EMBD, SOURCE_MODEL, _finish, _normal, write_text_model

TEXT_NAME = "tiny-alm.gguf"
MMPROJ_NAME = "mmproj-tiny-alm.gguf"

N_MEL = 32            # mel bins (Whisper has 80 or 128; libmtmd computes the filter bank)
A_EMBD = 32           # the encoder's width
A_FF = 48
A_HEAD = 2
A_LAYER = 1
CONV_KERNEL = 3
WINDOW_FRAMES = 3000  # libmtmd's 30 s window of 10 ms frames
N_POS = WINDOW_FRAMES // 2  # positions after the stride-2 convolution
TOKENS_PER_WINDOW = N_POS // 2  # after the 2x average pool: 750
WINDOW_SECONDS = 30


def audio_tokens(seconds: float) -> int:
    """How many tokens libmtmd gives a clip this long: one window per full 30 s of the clip and
    its 30 s of padding (the last, partial window is dropped)."""
    frames = int(seconds * 100) + WINDOW_FRAMES
    return frames // WINDOW_FRAMES * TOKENS_PER_WINDOW


def write_projector(path: Path) -> Path:
    writer = GGUFWriter(str(path), "clip")
    writer.add_name("tiny-alm projector")
    writer.add_bool("clip.has_vision_encoder", False)
    writer.add_bool("clip.has_audio_encoder", True)
    writer.add_string("clip.projector_type", "qwen2a")
    writer.add_uint32("clip.audio.num_mel_bins", N_MEL)
    writer.add_uint32("clip.audio.embedding_length", A_EMBD)
    writer.add_uint32("clip.audio.feed_forward_length", A_FF)
    writer.add_uint32("clip.audio.block_count", A_LAYER)
    writer.add_uint32("clip.audio.projection_dim", N_EMBD)
    writer.add_uint32("clip.audio.attention.head_count", A_HEAD)
    writer.add_float32("clip.audio.attention.layer_norm_epsilon", 1e-5)
    writer.add_file_type(0)
    # numpy shapes are ggml's ne reversed. A 1-D convolution's kernel is ne [K, in, out];
    # its bias is added to an [L, out] result, so it is ne [1, out].
    # Each output channel's kernel sums to zero, so a constant log-mel frame (the 30 s of
    # silence every clip is padded with) gives nothing, and the sound decides what comes out.
    conv1 = _normal("a.conv1", (A_EMBD, N_MEL, CONV_KERNEL), 1.0 / np.sqrt(N_MEL * CONV_KERNEL))
    conv1 -= conv1.mean(axis=(1, 2), keepdims=True)
    writer.add_tensor("a.conv1d.1.weight", conv1)
    writer.add_tensor("a.conv1d.1.bias", np.zeros((A_EMBD, 1), np.float32))
    writer.add_tensor("a.conv1d.2.weight",
                      _normal("a.conv2", (A_EMBD, A_EMBD, CONV_KERNEL),
                              1.0 / np.sqrt(A_EMBD * CONV_KERNEL)))
    writer.add_tensor("a.conv1d.2.bias", np.zeros((A_EMBD, 1), np.float32))
    # No position signal: the layer norm would blow it up to the sound's size, and it is
    # the same for every clip.
    writer.add_tensor("a.position_embd.weight", np.zeros((N_POS, A_EMBD), np.float32))
    s = 1.0 / np.sqrt(A_EMBD)
    for i in range(A_LAYER):
        p = f"a.blk.{i}."
        for norm in ("ln1", "ln2"):
            writer.add_tensor(p + norm + ".weight", np.ones(A_EMBD, dtype=np.float32))
            writer.add_tensor(p + norm + ".bias", np.zeros(A_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(p + name + ".weight", _normal(p + name, (A_EMBD, A_EMBD), s))
            if name != "attn_k":  # Whisper's key projection has no bias (the graph asserts it)
                writer.add_tensor(p + name + ".bias", np.zeros(A_EMBD, dtype=np.float32))
        writer.add_tensor(p + "ffn_up.weight", _normal(p + "up", (A_FF, A_EMBD), s))
        writer.add_tensor(p + "ffn_up.bias", np.zeros(A_FF, dtype=np.float32))
        writer.add_tensor(p + "ffn_down.weight", _normal(p + "down", (A_EMBD, A_FF),
                                                         1.0 / np.sqrt(A_FF)))
        writer.add_tensor(p + "ffn_down.bias", np.zeros(A_EMBD, dtype=np.float32))
    # As loud as the vision projector's output, so the sound, not the prompt, steers the answer.
    writer.add_tensor("mm.a.fc.weight", _normal("a.fc", (N_EMBD, A_EMBD), 4.0 / np.sqrt(A_EMBD)))
    writer.add_tensor("mm.a.fc.bias", np.zeros(N_EMBD, dtype=np.float32))
    _finish(writer)
    return path


def write_tiny_alm(directory: Path, models_dir: Path) -> tuple[Path, Path]:
    """Write the language model and its audio projector (`mmproj-tiny-alm.gguf`, beside it,
    found by name) into `directory`; return (model, projector)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / TEXT_NAME
    mmproj = directory / MMPROJ_NAME
    if not model.exists():
        write_text_model(model, models_dir / SOURCE_MODEL, name="tiny-alm")
    if not mmproj.exists():
        write_projector(mmproj)
    return model, mmproj
