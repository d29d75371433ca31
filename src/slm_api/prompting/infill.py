"""Fill-in-the-middle prompts, laid out token by token as llama.cpp's server lays out /infill
(`format_prompt_infill` in tools/server/server-common.cpp), from the model's own FIM tokens.

With FIM_REP and FIM_SEP (Qwen2.5-Coder, the repo-level pattern of arXiv:2409.12186):

    [FIM_REP]myproject\\n [FIM_SEP]{filename}\\n{text} ... [FIM_SEP]filename\\n
    [FIM_PRE]{prefix}[FIM_SUF]{suffix}[FIM_MID]{prompt}

without them each extra chunk follows a plain "\\n\\n--- snippet ---\\n\\n" line. Client text is
tokenized with special tokens NOT parsed: a prefix that spells "<|fim_middle|>" stays text and
cannot move the gap. Pure: the tokenizer comes in as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# (text, field) -> ids, special tokens not parsed; field: "prefix", "suffix", "prompt", "extra",
# or None for the fixed texts, so the caller's errors can name the client's field.
Tokenize = Callable[[str, str | None], list[int]]

# llama.cpp writes these fixed texts (its TODOs: no project or file name from the client).
REPO_LINE = "myproject\n"
FILE_LINE = "filename\n"
CHUNK_LINE = "\n\n--- snippet ---\n\n"


@dataclass(frozen=True)
class FimTokens:
    """A vocabulary's fill-in-the-middle token ids (None: the model has none), and the BOS it
    prepends (None when its tokenizer adds none)."""

    pre: int | None = None
    suf: int | None = None
    mid: int | None = None
    rep: int | None = None
    sep: int | None = None
    bos: int | None = None

    @property
    def missing(self) -> list[str]:
        """The tokens infill needs that this vocabulary lacks (FIM_REP/FIM_SEP are optional)."""
        return [name for name, tok in (("FIM_PRE", self.pre), ("FIM_SUF", self.suf),
                                       ("FIM_MID", self.mid)) if tok is None]

    @property
    def supported(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class ExtraChunk:
    """One `input_extra` item: a file (or part of one) the editor shows as context."""

    text: str
    filename: str = "tmp"


@dataclass(frozen=True)
class Window:
    """Where llama.cpp's token budget comes from: prefix and suffix fit one batch (3:1), the
    extra context the rest of the context less twice the tokens to predict."""

    n_batch: int
    n_ctx: int
    n_predict: int


def infill_tokens(
    fim: FimTokens,
    tokenize: Tokenize,
    prefix: str,
    suffix: str,
    *,
    prompt: str = "",
    extra: Sequence[ExtraChunk] = (),
    window: Window | None = None,
    spm: bool = False,
) -> list[int]:
    """The FIM prompt's token ids. With `window`, the prefix keeps its last and the suffix its
    first tokens, and the extra context its last ones, as llama.cpp cuts them; without it
    nothing is cut (a prompt too long for the context is then refused by the engine).
    `spm`: suffix before prefix (llama-server's --spm-infill)."""
    if fim.pre is None or fim.suf is None or fim.mid is None:
        raise ValueError(f"no fill-in-the-middle tokens: {', '.join(fim.missing)} missing")
    tokens_prefix = tokenize(prefix, "prefix")
    tokens_suffix = tokenize(suffix, "suffix")
    tokens_prompt = tokenize(prompt, "prompt") if prompt else []
    n_extra = None
    if window is not None:
        quarter = window.n_batch // 4
        n_prefix = min(len(tokens_prefix), 3 * quarter)
        n_suffix = min(len(tokens_suffix), max(0, quarter - (2 + len(tokens_prompt))))
        tokens_prefix = tokens_prefix[len(tokens_prefix) - n_prefix:]
        tokens_suffix = tokens_suffix[:n_suffix]
    head = [fim.pre, *tokens_prefix, *tokens_prompt]
    tail = [fim.suf, *tokens_suffix]
    first, second = (tail, head) if spm else (head, tail)
    bos = [fim.bos] if fim.bos is not None else []
    fim_part = [*bos, *first, *second, fim.mid]
    if window is not None:
        n_predict = max(window.n_predict, 0)
        n_extra = max(0, window.n_ctx - window.n_batch - 2 * n_predict)
        # llama.cpp's share, but never past the context: with n_predict -1 (sent as 0) its
        # share plus a full batch is a token or two over, and nothing would be left to
        # generate; here at least one token (n_predict of them when given) always fits.
        n_extra = max(0, min(n_extra, window.n_ctx - len(fim_part) - max(n_predict, 1)))
    return [*repo_context(fim, tokenize, extra, n_extra), *fim_part]


def repo_context(fim: FimTokens, tokenize: Tokenize, extra: Sequence[ExtraChunk],
                 keep: int | None = None) -> list[int]:
    """The tokens before FIM_PRE: the repo line, each chunk, the current file's line; only the
    last `keep` of them (None: all). Chunks are read from the last one back and those wholly
    beyond `keep` are never tokenized: a client's 2,048 files cost what fits, not what came."""
    if fim.rep is None and fim.sep is None and not extra:
        return []
    tail = [fim.sep, *tokenize(FILE_LINE, None)] if fim.sep is not None else []
    parts: list[list[int]] = [tail]
    total = len(tail)
    for chunk in reversed(extra):
        if keep is not None and total >= keep:
            break
        head = ([fim.sep, *tokenize(chunk.filename + "\n", "extra")] if fim.sep is not None
                else tokenize(CHUNK_LINE, None))
        part = head + tokenize(chunk.text, "extra")
        parts.append(part)
        total += len(part)
    if fim.rep is not None and (keep is None or total < keep):
        parts.append([fim.rep, *tokenize(REPO_LINE, None)])
    out = [t for part in reversed(parts) for t in part]
    return out if keep is None else out[len(out) - min(keep, len(out)):]
