"""Token masks from llguidance: which tokens a grammar allows next, in well under a millisecond.

llama.cpp's grammar sampler decides by walking every candidate token's text through the GBNF
stacks: ~100-300 ms for Gemma's 262k-token vocabulary on this project's CPUs (bench/
mask_engines.py), paid at every step where the model's own pick is refused. llguidance (PyPI)
computes the same mask from the same GBNF (converted by its gbnf_to_lark) in ~0.5 ms, thanks to
its lexer/parser split and a token trie. GBNF stays the grammar users and /extras see.

The tokenizer llguidance needs is built once per model from the llama.cpp vocabulary (a few
seconds for 262k tokens), in the background: until it is ready, and for any grammar llguidance
does not take, generation uses llama.cpp's grammar sampler (engine/constraint.py).
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from typing import Any

import llama_cpp
import numpy as np

log = logging.getLogger(__name__)

try:
    import llguidance
    from llguidance.gbnf_to_lark import gbnf_to_lark
except ImportError:  # pragma: no cover - llguidance is a dependency; tolerated if missing
    llguidance = None


class MaskTokenizer:
    """The model's vocabulary as llguidance sees it, built in a background thread."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._tokenizer: Any = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if llguidance is None:
            return
        eog = [t for t in (llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab))
               if t >= 0]
        self._thread = threading.Thread(target=self._build, args=(vocab, eog), daemon=True,
                                        name="slm-llg-tokenizer")
        self._thread.start()

    def _build(self, vocab: llama_cpp.llama_vocab_p, eog: list[int]) -> None:
        try:
            self._tokenizer = _tokenizer(vocab, list(dict.fromkeys(eog)), self._closing)
        except _Closed:
            pass
        except Exception:  # never fatal: llama.cpp's grammar sampler still works
            log.exception("llguidance tokenizer could not be built; using llama.cpp grammars")
        finally:
            self._ready.set()

    def close(self) -> None:
        """Stop a build still reading the vocabulary and wait for it: the model that owns the
        vocabulary is freed right after (reading it then is a use-after-free)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def matcher(self, gbnf: str) -> Matcher | None:
        """A matcher for `gbnf`, or None (not ready yet, or a grammar llguidance refuses)."""
        if self._tokenizer is None:
            return None
        try:
            grammar = llguidance.LLMatcher.grammar_from_lark(gbnf_to_lark(lark_safe(gbnf)))
        except Exception as exc:  # its converter cannot take every GBNF: fall back
            log.debug("llguidance cannot take this grammar: %s", exc)
            return None
        m = llguidance.LLMatcher(self._tokenizer, grammar, log_level=0)
        if m.is_error():
            log.debug("llguidance refused a grammar: %s", m.get_error())
            return None
        return Matcher(m, self.n_vocab)


# A \uXXXX or \UXXXXXXXX escape, or an escaped backslash (so that `\\u` is not read as one).
_WIDE_ESCAPE = re.compile(r"\\\\|\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})")


def lark_safe(gbnf: str) -> str:
    """`gbnf` with its \\u and \\U escapes written as the characters they name: llguidance's
    gbnf_to_lark strips their leading zeros (`\\u00E9` becomes `\\uE9`, which neither its regex
    nor its string syntax reads), and so refused every grammar with a non-ASCII character or a
    complement class up to U+10FFFF (9 of tests/support/grammar_cases.py's 113). Surrogates
    (not encodable) stay escaped."""

    def literal(m: re.Match[str]) -> str:
        digits = m.group(1) or m.group(2)
        if digits is None:
            return m.group(0)
        code = int(digits, 16)
        if code < 0x80:
            return f"\\x{code:02X}"
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return m.group(0)
        return chr(code)

    return _WIDE_ESCAPE.sub(literal, gbnf)


class _Closed(Exception):
    """The model is being closed while its tokenizer was still being built."""


def _tokenizer(vocab: llama_cpp.llama_vocab_p, eog: list[int], closing: threading.Event) -> Any:
    """llguidance.llamacpp.lltokenizer_from_vocab, on llama_vocab_get_attr (its deprecated
    llama_token_get_attr warns once per token: 262k warnings for Gemma)."""
    buf = ctypes.create_string_buffer(16 * 1024)
    tokens: list[bytes] = []
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        if closing.is_set():
            raise _Closed
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
        tok = bytes(buf[:n])
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        # Control tokens (and user-defined ones that look like them) are special to llguidance.
        if attr & special or (attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
                              and tok.startswith(b"<") and tok.endswith(b">")):
            tok = b"\xff" + tok
        tokens.append(tok)
    fptr = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    return llguidance.LLTokenizer.from_llamacpp(tokens=tokens, vocab_ptr=vocab,
                                                tokenize_fptr=fptr, eos_token=eog)


class Matcher:
    """One generation's grammar state in llguidance (a Constraint: engine/constraint.py)."""

    def __init__(self, m: Any, n_vocab: int) -> None:
        self._m = m
        self._n_vocab = n_vocab

    def allows(self, token: int) -> bool:
        return self._m.validate_tokens([token]) == 1

    def allowed(self) -> np.ndarray:
        """A boolean mask over the vocabulary."""
        bits = np.frombuffer(self._m.compute_bitmask(), dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[: self._n_vocab].astype(bool)

    def valid_prefix(self, tokens: list[int]) -> int:
        """How many leading `tokens` the grammar would accept from here (state unchanged)."""
        return int(self._m.validate_tokens(tokens))

    def accept(self, token: int) -> bool:
        return bool(self._m.consume_token(token)) and not self._m.is_error()

    def forced(self) -> list[int]:
        """Tokens the grammar fixes from here, whatever the model would say (fast-forward)."""
        return list(self._m.compute_ff_tokens())

    def close(self) -> None:
        pass  # llguidance frees a matcher with its Python object
