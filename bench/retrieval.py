"""Retrieval quality and speed of /v1/embeddings: 80 queries against 200 passages
(bench/retrieval_data.py), recall@1, recall@5 and MRR for each model, all in one invocation,
then sentences per second for 1,000 short sentences sent as one request and for 100 sent one
per request (the first model only, unless --speed-all: the chat models take minutes).
With --anchor, the same sentences through llama.cpp's `llama-server --embedding` on the same GGUF
(bench/anchors.py builds it) in the same invocation, and our ratio to it.

    .venv/bin/python bench/retrieval.py                      # MiniLM vs the chat models
    .venv/bin/python bench/retrieval.py --models all-minilm-l6-v2 --anchor

Needs the models in models/ (`make models`). Numbers are in docs/embeddings.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import requests
from retrieval_data import corpus
from server import REPO, Server

DEFAULT_MODELS = ("all-minilm-l6-v2", "smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m")


def embed(url: str, model: str, texts: list[str]) -> np.ndarray:
    r = requests.post(f"{url}/v1/embeddings", json={"model": model, "input": texts},
                      timeout=600)
    r.raise_for_status()
    return np.array([d["embedding"] for d in r.json()["data"]])


def quality(url: str, model: str) -> dict[str, float]:
    passages, queries = corpus()
    p = embed(url, model, passages)
    q = embed(url, model, [text for text, _ in queries])
    ranks = []
    for row, (_, gold) in zip(q @ p.T, queries, strict=True):
        ranks.append(int((row > row[gold]).sum()) + 1)  # 1 = the relevant passage is first
    r = np.array(ranks)
    return {"recall@1": float((r <= 1).mean()), "recall@5": float((r <= 5).mean()),
            "mrr": float((1.0 / r).mean())}


def speed(url: str, model: str, n: int = 1000, one_by_one: int = 100) -> dict[str, float]:
    sentences = [f"Sentence {i}: the {['cat', 'train', 'market', 'river'][i % 4]} is "
                 f"{['late', 'calm', 'up', 'wide'][i % 4]} today." for i in range(n)]
    embed(url, model, sentences[:8])  # load and warm
    t = time.perf_counter()
    embed(url, model, sentences)
    batched = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for s in sentences[:one_by_one]:
        embed(url, model, [s])
    single = one_by_one / (time.perf_counter() - t)
    return {"batched": batched, "single": single}


def anchor_speed(model: str, threads: int) -> dict[str, float]:
    """llama-server on the same GGUF, with slots enough to batch a list as ours does (its
    /v1/embeddings puts each input in a slot and decodes the busy slots together)."""
    from anchors import LlamaServer

    with LlamaServer(REPO / "models" / f"{model}.gguf", n_ctx=512, n_parallel=16,
                     threads=threads, extra=["--embedding", "--pooling", "mean",
                                             "-b", "4096", "-ub", "4096"]) as anchor:
        return speed(anchor.url, model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed-all", action="store_true",
                        help="sentences/s for every model, not only the first (minutes on CPU)")
    parser.add_argument("--anchor", action="store_true",
                        help="also time llama-server --embedding on the first model's GGUF")
    args = parser.parse_args()
    server = Server(N_THREADS=args.threads, MAX_LOADED_MODELS=len(args.models))
    try:
        print(f"{'model':<30} {'recall@1':>9} {'recall@5':>9} {'MRR':>6} "
              f"{'sent/s (1 req of 1000)':>23} {'sent/s (1 per req)':>19}")
        rows = {}
        for model in args.models:
            q = quality(server.url, model)
            first = model == args.models[0]
            s = speed(server.url, model) if first or args.speed_all else \
                {"batched": float("nan"), "single": float("nan")}
            rows[model] = (q, s)
            print(f"{model:<30} {q['recall@1']:>9.3f} {q['recall@5']:>9.3f} {q['mrr']:>6.3f} "
                  f"{s['batched']:>23.1f} {s['single']:>19.1f}")
        base = args.models[0]
        if args.anchor:
            anchor = anchor_speed(base, args.threads)
            ours = rows[base][1]
            print(f"{'llama-server --embedding':<30} {'':>9} {'':>9} {'':>6} "
                  f"{anchor['batched']:>23.1f} {anchor['single']:>19.1f}")
            print(f"ours / llama-server: {ours['batched'] / anchor['batched']:.2f}x (1 request "
                  f"of 1000), {ours['single'] / anchor['single']:.2f}x (1 per request)")
        for model in args.models[1:]:
            ratio = rows[base][0]["mrr"] / max(rows[model][0]["mrr"], 1e-9)
            print(f"MRR {base} / {model}: {ratio:.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
