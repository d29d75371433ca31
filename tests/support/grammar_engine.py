"""Drive llama.cpp's own grammar engine (the sampler the server uses) over a real vocabulary.

A candidate string is tokenized with the model's tokenizer; each token is offered to the
grammar sampler alone (`llama_sampler_apply` on a one-entry token-data array: the sampler sets
the logit of a token the grammar rejects to -inf) and, if allowed, accepted. At the end the
end-of-generation token is offered: llama.cpp allows an EOG token only when the grammar can
stop there, which is exactly "the string is complete".
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import llama_cpp as L


class GrammarParseError(Exception):
    pass


@L.llama_log_callback
def _quiet_log(level, text, user_data):  # llama.cpp's grammar parser logs its errors
    _LOG.append(text.decode("utf-8", "replace") if text else "")


_LOG: list[str] = []


class GrammarEngine:
    def __init__(self, model_path: Path) -> None:
        L.llama_log_set(_quiet_log, ctypes.c_void_p())
        L.llama_backend_init()
        params = L.llama_model_default_params()
        params.vocab_only = True
        self.model = L.llama_model_load_from_file(str(model_path).encode(), params)
        if not self.model:
            raise RuntimeError(f"cannot load vocab of {model_path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.eog = L.llama_vocab_eos(self.vocab)
        assert L.llama_vocab_is_eog(self.vocab, self.eog)

    def close(self) -> None:
        L.llama_model_free(self.model)

    def tokenize(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        buf = (L.llama_token * (len(raw) + 8))()
        n = L.llama_tokenize(self.vocab, raw, len(raw), buf, len(buf), False, False)
        assert n >= 0, "token buffer too small"
        toks = list(buf[:n])
        assert b"".join(self.piece(t) for t in toks) == raw, f"tokenization of {text!r} not exact"
        return toks

    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, True)
        return buf.raw[:n]

    def sampler(self, gbnf: str):
        # The log callback is process-wide and a server in this process may have taken it.
        L.llama_log_set(_quiet_log, ctypes.c_void_p())
        _LOG.clear()
        smpl = L.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not smpl:
            raise GrammarParseError("".join(_LOG)[-2000:] or "grammar did not parse")
        return smpl

    def check(self, gbnf: str) -> None:
        """Raise GrammarParseError unless llama.cpp parses `gbnf`."""
        L.llama_sampler_free(self.sampler(gbnf))

    def accepts(self, gbnf: str, text: str) -> bool:
        smpl = self.sampler(gbnf)
        try:
            data = (L.llama_token_data * 1)()
            arr = L.llama_token_data_array(data, 1, -1, False)
            for tok in [*self.tokenize(text), self.eog]:
                data[0].id, data[0].logit, data[0].p = tok, 0.0, 0.0
                arr.size, arr.selected, arr.sorted = 1, -1, False
                L.llama_sampler_apply(smpl, ctypes.byref(arr))
                if math.isinf(data[0].logit):
                    return False
                if tok != self.eog:
                    L.llama_sampler_accept(smpl, tok)
            return True
        finally:
            L.llama_sampler_free(smpl)


class MaskEngine:
    """The server's default backend, llguidance, over the same vocabulary: the engine's own
    MaskTokenizer and Matcher, walked token by token as GrammarEngine walks llama.cpp's."""

    def __init__(self, grammars: GrammarEngine) -> None:
        from slm_api.engine.masks import MaskTokenizer

        self.grammars = grammars
        self.masks = MaskTokenizer(grammars.vocab, L.llama_vocab_n_tokens(grammars.vocab))
        assert self.masks.wait(300), "llguidance's tokenizer was not built in 300 s"

    def close(self) -> None:
        self.masks.close()

    def check(self, gbnf: str) -> None:
        self._matcher(gbnf)

    def _matcher(self, gbnf: str):
        matcher = self.masks.matcher(gbnf)
        if matcher is None:
            raise GrammarParseError("llguidance does not take this grammar")
        return matcher

    def accepts(self, gbnf: str, text: str) -> bool:
        matcher = self._matcher(gbnf)
        for tok in self.grammars.tokenize(text):
            if not matcher.allows(tok) or not matcher.accept(tok):
                return False
        return matcher.allows(self.grammars.eog)  # the end is allowed only where it may stop
