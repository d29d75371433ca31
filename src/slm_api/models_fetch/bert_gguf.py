"""A Hugging Face BERT sentence encoder (safetensors + tokenizer.json + sentence-transformers
config) written as a GGUF that llama.cpp loads as its `bert` architecture.

The layout is the one llama.cpp's own converter produces for BertModel: `bert.*` hyperparameters,
non-causal attention, the pooling the sentence-transformers Pooling module names, a WordPiece
vocabulary with `tokenizer.ggml.model = "bert"` (pieces that start a word carry U+2581, `##`
continuations lose their prefix), token types, and the special-token ids. Tensor names come from
the gguf package's own BERT name map, so a checkpoint that converter reads, this reads too.

Normalisation has no GGUF key: llama.cpp normalises at request time, and this server always L2-
normalises, which is what a sentence-transformers Normalize module does. A model without one is
refused rather than served with a normalisation it was not trained with.

Optionally a classification head (`cls` dense + tanh, then `cls.output`) can be added: llama.cpp's
rank pooling reads those, which is how the test suite writes a small cross-encoder.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
_POOLING = {"pooling_mode_mean_tokens": gguf.PoolingType.MEAN,
            "pooling_mode_cls_token": gguf.PoolingType.CLS,
            "pooling_mode_lasttoken": gguf.PoolingType.LAST}
# Weights the embedding graph never reads (MLM / NSP heads, the unused pooler, a buffer).
_SKIP_PREFIXES = ("embeddings.position_ids", "pooler.", "cls.predictions", "cls.seq_relationship")


class ConversionError(ValueError):
    """The checkpoint is not a BERT sentence encoder this converter understands."""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file (an 8-byte header length, a JSON header, raw data)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _DTYPES:
            raise ConversionError(f"{name}: dtype {meta['dtype']} is not supported")
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw, dtype=_DTYPES[meta["dtype"]], count=-1,
                                  offset=base + start)[: (end - start) //
                                                       np.dtype(_DTYPES[meta["dtype"]]).itemsize
                                                       ].reshape(meta["shape"])
    return out


@dataclass(frozen=True)
class ClassifierHead:
    """A rank head: score = out_w @ tanh(dense_w @ h_cls + dense_b) + out_b."""
    dense_w: np.ndarray  # (n_embd, n_embd)
    dense_b: np.ndarray  # (n_embd,)
    out_w: np.ndarray  # (1, n_embd)
    out_b: np.ndarray  # (1,)


def _pooling(folder: Path) -> tuple[gguf.PoolingType, bool]:
    """(pooling, normalised) as the sentence-transformers modules say; plain BERT: mean."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return gguf.PoolingType.MEAN, True
    modules = json.loads(modules_file.read_text())
    normalised = any(m.get("type", "").endswith(".Normalize") for m in modules)
    pooling = gguf.PoolingType.MEAN
    for m in modules:
        if m.get("type", "").endswith(".Pooling"):
            config = json.loads((folder / m["path"] / "config.json").read_text())
            chosen = [p for key, p in _POOLING.items() if config.get(key)]
            if len(chosen) != 1:
                raise ConversionError(f"pooling {config} is not one of mean, cls, last token")
            pooling = chosen[0]
    return pooling, normalised


def _vocab(folder: Path) -> tuple[list[str], list[int]]:
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if tok["model"]["type"] != "WordPiece":
        raise ConversionError(f"tokenizer model {tok['model']['type']} is not WordPiece")
    by_id = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ConversionError("the WordPiece vocabulary has gaps in its ids")
    special = {t["content"] for t in tok.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for piece, _ in by_id:
        if piece in special:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        else:
            # llama.cpp's WordPiece tokenizer matches word starts by a leading U+2581.
            tokens.append(piece[2:] if piece.startswith("##") else "\u2581" + piece)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def convert_bert(folder: Path, out: Path, *, name: str, head: ClassifierHead | None = None,
                 tensors: dict[str, np.ndarray] | None = None) -> None:
    """Write the BERT checkpoint in `folder` as the GGUF `out` (F16 matrices, F32 the rest).
    `tensors` replaces reading folder/model.safetensors (the tests build a tiny model so)."""
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"{folder.name}: not a GELU BERT ({config.get('model_type')})")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError("only absolute position embeddings are supported")
    pooling, normalised = _pooling(folder)
    if not normalised and head is None:
        raise ConversionError("no Normalize module: this server L2-normalises every embedding")
    tokens, types = _vocab(folder)
    weights = tensors if tensors is not None else read_safetensors(folder / "model.safetensors")
    n_layers = int(config["num_hidden_layers"])
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.BERT, n_layers)

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(n_layers)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.RANK if head is not None else pooling)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    # Ids of [UNK] [SEP] [PAD] [CLS] [MASK], and add-[CLS]/[SEP] flags, from the tokenizer files.
    gguf.SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(writer)

    for hf_name, data in weights.items():
        key = hf_name.removeprefix("bert.")
        if key.startswith(_SKIP_PREFIXES):
            continue
        gguf_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConversionError(f"no GGUF name for tensor {hf_name}")
        _add(writer, gguf_name, data, key)
    if head is not None:
        for gguf_name, data in (("cls.weight", head.dense_w), ("cls.bias", head.dense_b),
                                ("cls.output.weight", head.out_w),
                                ("cls.output.bias", head.out_b)):
            _add(writer, gguf_name, data, gguf_name)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add(writer: gguf.GGUFWriter, name: str, data: np.ndarray, source: str) -> None:
    # Matrices in F16 halve the file (90 -> 45 MB) at a cosine of ~0.99999 to F32; norms,
    # biases and the small position / token-type tables stay F32, as llama.cpp's converter.
    small = data.ndim == 1 or "position_embeddings" in source or "token_type" in source
    writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32 if small else np.float16))
