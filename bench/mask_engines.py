"""Token-mask cost: llguidance (what slm-api runs) against llama.cpp's GBNF sampler (its fallback).

For each schema of tests/support/grammar_cases.py and each of its valid texts, the text is
tokenized with Gemma 3's 262k-token vocabulary and walked token by token; at every step each
engine computes the set of allowed tokens over the whole vocabulary (llama.cpp: its grammar
sampler applied to every candidate, which is what the fallback does when the sampled token is
refused; llguidance: compute_bitmask) and then accepts the token. Reported: grammars each engine
takes (ours GBNF as is; for llguidance the same GBNF as the server hands it over,
engine/masks.py's lark_safe then its gbnf_to_lark, and the JSON Schema directly), texts it walks
to the end, and the mean / p99 time per mask.

xgrammar is not measured: its wheel requires torch, transformers and triton (gigabytes for a
CPU server), which rules it out on simplicity before speed.

    PYTHONPATH=src python bench/mask_engines.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server import load_vocab  # noqa: E402
from support.grammar_cases import CASES  # noqa: E402

from slm_api.grammar import schema_to_gbnf  # noqa: E402

MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"


def tokenize(vocab, text: str) -> list[int]:
    buf = (llama_cpp.llama_token * (len(text) * 4 + 8))()
    n = llama_cpp.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, len(buf),
                                 False, False)
    return list(buf[:n])


def walk_gbnf(vocab, n_vocab: int, gbnf: str, tokens: list[int]) -> list[float] | None:
    """The server's own fallback (engine/constraint.py's LlamaGrammar), timed per mask."""
    from slm_api.engine.constraint import LlamaGrammar
    from slm_api.errors import InvalidRequest

    try:
        grammar = LlamaGrammar(vocab, n_vocab, gbnf)
    except InvalidRequest:
        return None
    times = []
    try:
        for tok in tokens:
            t = time.perf_counter()
            allowed = grammar.allowed()
            times.append(time.perf_counter() - t)
            if not allowed[tok]:
                return None
            grammar.accept(tok)
    finally:
        grammar.close()
    return times


def walk_llg(tokenizer, grammar: str, tokens: list[int]) -> list[float] | None:
    import llguidance

    m = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    if m.is_error():
        return None
    times = []
    for tok in tokens:
        t = time.perf_counter()
        mask = m.compute_bitmask()
        times.append(time.perf_counter() - t)
        if not (mask[tok // 8] >> (tok % 8)) & 1 or not m.consume_token(tok):
            return None
    return times


def summary(times: list[float]) -> dict[str, float]:
    if not times:
        return {}
    a = np.array(times) * 1000
    return {"steps": len(a), "mean_ms": round(float(a.mean()), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3)}


def main() -> None:
    import llguidance
    from llguidance.gbnf_to_lark import gbnf_to_lark

    from slm_api.engine.masks import _tokenizer, lark_safe

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=len(CASES))
    args = ap.parse_args()
    model, vocab, n_vocab = load_vocab(MODEL)
    t = time.perf_counter()
    tokenizer = _tokenizer(vocab, [llama_cpp.llama_vocab_eos(vocab),
                                   llama_cpp.llama_vocab_eot(vocab)], threading.Event())
    tok_s = time.perf_counter() - t
    engines: dict[str, dict] = {k: {"grammars": 0, "texts": 0, "times": []}
                                for k in ("gbnf", "llg-gbnf", "llg-schema")}
    texts = 0
    for case in CASES[: args.limit]:
        gbnf = schema_to_gbnf(case.schema)
        grammars = {"gbnf": gbnf}
        try:
            lark = gbnf_to_lark(lark_safe(gbnf))
            grammars["llg-gbnf"] = llguidance.LLMatcher.grammar_from_lark(lark)
        except Exception:  # a conversion it cannot do counts as not taken
            pass
        grammars["llg-schema"] = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(case.schema))
        for name, g in grammars.items():
            ok = name == "gbnf" or not llguidance.LLMatcher.validate_grammar(g, tokenizer)
            engines[name]["grammars"] += ok
        for text in case.ok:
            texts += 1
            tokens = tokenize(vocab, text)
            for name, g in grammars.items():
                times = (walk_gbnf(vocab, n_vocab, g, tokens) if name == "gbnf"
                         else walk_llg(tokenizer, g, tokens))
                if times is not None:
                    engines[name]["texts"] += 1
                    engines[name]["times"] += times
    print(json.dumps({"cases": min(args.limit, len(CASES)), "texts": texts,
                      "llg_tokenizer_s": round(tok_s, 2)}))
    for name, e in engines.items():
        print(json.dumps({"engine": name, "grammars": e["grammars"], "texts": e["texts"],
                          **summary(e["times"])}))


if __name__ == "__main__":
    main()
