"""What a model's vocabulary says about it, read by llama.cpp itself: its fill-in-the-middle
tokens. llama.cpp finds them from the GGUF's keys and, when those are absent, from the token
texts (`<|fim_prefix|>`, `<fim_prefix>`, `<PRE>`...), so the header alone cannot tell."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import llama_cpp

from slm_api.engine.native import init_backend
from slm_api.prompting.infill import FimTokens


def fim_tokens(vocab: llama_cpp.llama_vocab_p) -> FimTokens:
    """The vocabulary's FIM ids (llama.cpp's LLAMA_TOKEN_NULL, -1: none) and the BOS it adds."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def tok(fn: object) -> int | None:
        t = int(fn(vocab))  # type: ignore[operator]
        return t if 0 <= t < n_vocab else None

    return FimTokens(
        pre=tok(llama_cpp.llama_vocab_fim_pre), suf=tok(llama_cpp.llama_vocab_fim_suf),
        mid=tok(llama_cpp.llama_vocab_fim_mid), rep=tok(llama_cpp.llama_vocab_fim_rep),
        sep=tok(llama_cpp.llama_vocab_fim_sep),
        bos=tok(llama_cpp.llama_vocab_bos) if llama_cpp.llama_vocab_get_add_bos(vocab) else None)


@dataclass(frozen=True)
class FileFim:
    tokens: FimTokens
    texts: dict[str, str] = field(default_factory=dict)  # "pre"/"suf"/"mid" -> token text


def file_fim(path: Path) -> FileFim:
    """The FIM tokens of a GGUF file, loaded or not, and their texts: its vocabulary alone is
    read (no weights: 0.36 s for SmolLM2, 2.0 s for Gemma 3 on two shared cores), once per
    file version."""
    st = path.stat()
    return _file_fim(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _file_fim(path: str, _mtime_ns: int, _size: int) -> FileFim:
    init_backend()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        return FileFim(FimTokens())
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        tokens = fim_tokens(vocab)
        texts = {name: llama_cpp.llama_vocab_get_text(vocab, t).decode("utf-8", "replace")
                 for name, t in (("pre", tokens.pre), ("suf", tokens.suf), ("mid", tokens.mid))
                 if t is not None}
        return FileFim(tokens, texts)
    finally:
        llama_cpp.llama_model_free(model)
