"""What keeping `uniqueItems` while decoding costs: the same schemas with and without the
keyword, in the same run.

1. masks: each schema's valid text (many distinct items) walked token by token over the
   default model's vocabulary, at every step the whole-vocabulary mask (`allowed`), the
   sampler's check of its pick (`allows`) and `accept`: llguidance's Matcher alone (the schema
   without the keyword) against the same Matcher wrapped in UniqueConstraint (with it).
2. server: /v1/extract (temperature 0, max_tokens 96) on each schema with and without the
   keyword, alternated, ROUNDS times; completion tokens per second as the server reports its
   latency, and how many replies fit the schema.

    PYTHONPATH=src python bench/unique_items.py [--rounds N] [--no-server]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import llama_cpp
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from server import MODEL, Server, load_vocab  # noqa: E402
from support.grammar_cases import UNIQUE_CASES  # noqa: E402

from slm_api.engine.constraint import UniqueConstraint, VocabBytes  # noqa: E402
from slm_api.engine.masks import MaskTokenizer  # noqa: E402
from slm_api.grammar import schema_to_gbnf, validation_errors  # noqa: E402
from slm_api.grammar.unique import split  # noqa: E402

TAGS = {"type": "object", "required": ["tags"], "properties": {"tags": {
    "type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 3}}}
NUMBERS = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
TEXTS = {  # long outputs: the tracker's state grows with the items already written
    "tags": json.dumps({"tags": [f"tag number {i}" for i in range(40)]}),
    "integers": json.dumps(list(range(100, 260))),
}
SCHEMAS = {"tags": TAGS, "integers": NUMBERS, **{c.id: c.schema for c in UNIQUE_CASES}}
DOC = ("Tags: python, python, rust, python. Categories: a, a, b. Ratings: python 5, python 5. "
       "Keywords: 7, 7, 7, 7, 8.")


def without_keyword(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: without_keyword(v) for k, v in schema.items() if k != "uniqueItems"}
    if isinstance(schema, list):
        return [without_keyword(v) for v in schema]
    return schema


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def masks() -> None:
    model, vocab, n_vocab = load_vocab(MODEL)
    tokenizer = MaskTokenizer(vocab, n_vocab)
    assert tokenizer.wait(300)

    def piece(t: int) -> bytes:
        buf = llama_cpp.ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(vocab, t, buf, len(buf), 0, False)
        return buf.raw[:n]

    pieces = VocabBytes(n_vocab, piece).ready()
    print(f"## masks ({MODEL.name}, {n_vocab} tokens): ms per step, mean / p99")
    print("pick: the sampler's pick checked and accepted (every step); mask: the whole "
          "vocabulary's mask (only a step whose pick was refused)\n")
    print("| schema | steps | pick without | pick with | mask without | mask with |")
    print("|---|---|---|---|---|---|")
    for name, text in TEXTS.items():
        gbnf, spec = split(schema_to_gbnf(SCHEMAS[name]))
        buf = (llama_cpp.llama_token * (len(text) * 4 + 8))()
        n = llama_cpp.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, len(buf),
                                     False, False)
        tokens = list(buf[:n])
        runs: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):  # alternated, so that load on the machine hits both alike
            for kind in ("plain", "unique"):
                m = tokenizer.matcher(gbnf)
                c = m if kind == "plain" else UniqueConstraint(m, spec, pieces)
                for tok in tokens:
                    t0 = time.perf_counter()
                    c.allowed()
                    t1 = time.perf_counter()
                    assert c.allows(tok) and c.accept(tok)
                    t2 = time.perf_counter()
                    runs.setdefault((kind, "mask"), []).append((t1 - t0) * 1000)
                    runs.setdefault((kind, "pick"), []).append((t2 - t1) * 1000)
        cells = [f"{statistics.mean(v):.3f} / {pct(v, .99):.3f}" for v in (
            runs["plain", "pick"], runs["unique", "pick"], runs["plain", "mask"],
            runs["unique", "mask"])]
        print(f"| {name} | {len(tokens)} | " + " | ".join(cells) + " |")
    tokenizer.close()
    llama_cpp.llama_model_free(model)


def server(rounds: int) -> None:
    srv = Server(N_PARALLEL="1", N_CTX="2048")
    try:
        time.sleep(10)  # llguidance builds its tokenizer in the background
        stats: dict[tuple[str, str], list[tuple[float, bool]]] = {}
        for _ in range(rounds):
            for name, schema in SCHEMAS.items():
                for kind, s in (("with", schema), ("without", without_keyword(schema))):
                    r = requests.post(f"{srv.url}/v1/extract", json={
                        "text": DOC, "schema": s, "max_tokens": 96, "temperature": 0},
                        timeout=900)
                    body = r.json()
                    if r.status_code != 200:
                        stats.setdefault((name, kind), []).append((0.0, False))
                        continue
                    tps = body["usage"]["completion_tokens"] / (body["latency_ms"] / 1000)
                    fits = not validation_errors(body["data"], schema)
                    stats.setdefault((name, kind), []).append((tps, fits))
    finally:
        srv.stop()
    print(f"\n## server: /v1/extract, {MODEL.name}, max_tokens 96, {rounds} round(s)")
    print("| schema | tok/s without | fit the uniqueItems schema | tok/s with | fit | ratio |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for name in SCHEMAS:
        w, o = stats[(name, "with")], stats[(name, "without")]
        tw = statistics.mean(t for t, _ in w)
        to = statistics.mean(t for t, _ in o)
        ratios.append(tw / to if to else 0)
        print(f"| {name} | {to:.1f} | {sum(f for _, f in o)}/{len(o)} | {tw:.1f} | "
              f"{sum(f for _, f in w)}/{len(w)} | {ratios[-1]:.2f} |")
    print(f"geometric-ish mean ratio: {statistics.geometric_mean([r for r in ratios if r]):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-server", action="store_true")
    args = ap.parse_args()
    masks()
    if not args.no_server:
        server(args.rounds)


if __name__ == "__main__":
    main()
