"""A BERT encoder in numpy, and BERT's WordPiece tokenizer in plain Python: the reference the
server's llama.cpp embeddings and rerank scores are checked against (no llama.cpp here)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and GELU needs one.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def hidden_states(w: dict[str, np.ndarray], config: dict, ids: list[int]) -> np.ndarray:
    """The last layer's hidden state of each token (token type 0 throughout, as llama.cpp)."""
    f = {k: v.astype(np.float64) for k, v in w.items() if v.dtype != np.int64}
    eps = float(config.get("layer_norm_eps", 1e-12))
    n_heads = int(config["num_attention_heads"])
    n = len(ids)
    x = (f["embeddings.word_embeddings.weight"][ids]
         + f["embeddings.position_embeddings.weight"][:n]
         + f["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, f["embeddings.LayerNorm.weight"], f["embeddings.LayerNorm.bias"], eps)
    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}."

        def lin(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ f[p + name + ".weight"].T + f[p + name + ".bias"]

        q, k, v = (lin(x, f"attention.self.{m}").reshape(n, n_heads, -1).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        attn = attn.transpose(1, 0, 2).reshape(n, -1)
        x = _layer_norm(x + lin(attn, "attention.output.dense"),
                        f[p + "attention.output.LayerNorm.weight"],
                        f[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / np.sqrt(2.0)))
        x = _layer_norm(x + lin(h, "output.dense"), f[p + "output.LayerNorm.weight"],
                        f[p + "output.LayerNorm.bias"], eps)
    return x


def sentence_embedding(w: dict[str, np.ndarray], config: dict, ids: list[int]) -> np.ndarray:
    """sentence-transformers' mean pooling then L2 normalisation."""
    v = hidden_states(w, config, ids).mean(0)
    return v / np.linalg.norm(v)


class WordPiece:
    """BERT's uncased tokenizer: clean, lowercase, strip accents, split on whitespace and
    punctuation, then greedy longest-match-first word pieces; [CLS] ... [SEP] around."""

    def __init__(self, tokenizer_json: Path):
        self.vocab: dict[str, int] = json.loads(tokenizer_json.read_text())["model"]["vocab"]

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words: list[str] = []
        for chunk in text.split():
            word = ""
            for c in chunk:
                if unicodedata.category(c).startswith("P") or (c.isascii() and not c.isalnum()):
                    if word:
                        words.append(word)
                    words.append(c)
                    word = ""
                else:
                    word += c
            if word:
                words.append(word)
        return words

    def encode(self, text: str, special: bool = True) -> list[int]:
        ids: list[int] = []
        for word in self._words(text):
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        pieces.append(self.vocab[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.vocab["[UNK]"]]
                    break
                start = end
            ids.extend(pieces)
        return [self.vocab["[CLS]"], *ids, self.vocab["[SEP]"]] if special else ids
