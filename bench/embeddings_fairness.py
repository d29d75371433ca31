"""The latency a one-input embedding request sees beside a 2,000-input one.

Starts two servers side by side on the same MiniLM file (the default embedding model, which
`make run` writes into models/): one with EMBEDDING_DECODES_PER_TURN=0 (a whole request per
turn at the embedding context: the old, serial way) and one with the default of 1 (requests
take turns, one packed decode each). In each round, on each server in turn: a --big-input
request is sent; from --offset s later until it returns, one-input requests are sent one after
another, each timed. Also timed: a one-input request on the idle server, and the big request
itself (what interleaving costs it). Prints medians over --rounds rounds and the ratios.

    .venv/bin/python bench/embeddings_fairness.py [--big 2000] [--rounds 3] [--offset 0.25]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import requests
from server import MODEL, Server

MINILM = "all-minilm-l6-v2"
MODES = {"whole request per turn (old)": 0, "one decode per turn (new)": 1}


def embed(url: str, inputs: list[str]) -> float:
    """Seconds one /v1/embeddings call takes."""
    start = time.perf_counter()
    r = requests.post(f"{url}/v1/embeddings", json={"model": MINILM, "input": inputs},
                      timeout=600)
    r.raise_for_status()
    assert len(r.json()["data"]) == len(inputs)
    return time.perf_counter() - start


def one_round(url: str, big: list[str], offset: float) -> dict[str, float | list[float]]:
    took: dict[str, float] = {}
    thread = threading.Thread(target=lambda: took.setdefault("big", embed(url, big)))
    thread.start()
    time.sleep(offset)  # the big request is tokenized and its decodes have begun
    beside = []
    while thread.is_alive():
        beside.append(embed(url, ["How do I reset my password?"]))
    thread.join()
    return {"big": took["big"], "beside": beside}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", type=int, default=2000, help="inputs in the big request")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--offset", type=float, default=0.25,
                    help="seconds after the big request before the first small one")
    args = ap.parse_args()
    assert (MODEL.parent / f"{MINILM}.gguf").is_file(), "run `make run` (writes MiniLM) first"
    big = [f"Sentence number {i} of the big batch is about topic {i % 13}."
           for i in range(args.big)]
    servers = {name: Server(EMBEDDING_DECODES_PER_TURN=per_turn, N_THREADS=2)
               for name, per_turn in MODES.items()}
    results: dict[str, dict[str, list[float]]] = {
        name: {"alone": [], "beside": [], "worst": [], "big": [], "served": []}
        for name in servers}
    try:
        for url in (s.url for s in servers.values()):
            embed(url, ["warm up: load the model"])
        for _ in range(args.rounds):
            for name, server in servers.items():  # taking turns: noise hits both alike
                res = results[name]
                res["alone"].append(statistics.median(
                    embed(server.url, ["How do I reset my password?"]) for _ in range(5)))
                out = one_round(server.url, big, args.offset)
                beside = out["beside"]
                assert isinstance(beside, list)
                res["beside"].append(statistics.median(beside))
                res["worst"].append(max(beside))
                res["served"].append(len(beside))
                res["big"].append(float(out["big"]))  # type: ignore[arg-type]
    finally:
        for server in servers.values():
            server.stop()

    med = {name: {k: statistics.median(v) for k, v in res.items()}
           for name, res in results.items()}
    print(f"\n{args.big}-input request beside one-input requests, MiniLM, 2 threads, "
          f"median of {args.rounds} rounds\n")
    print(f"{'mode':<30} {'1-input alone':>14} {'beside (median)':>16} {'beside (max)':>13} "
          f"{'small served':>13} {'big request':>12}")
    for name, m in med.items():
        print(f"{name:<30} {m['alone'] * 1000:>11.1f} ms {m['beside'] * 1000:>13.1f} ms "
              f"{m['worst'] * 1000:>10.1f} ms {m['served']:>13.0f} {m['big']:>10.2f} s")
    old, new = med["whole request per turn (old)"], med["one decode per turn (new)"]
    print(f"\none-input latency beside the big request: {old['beside'] / new['beside']:.1f}x "
          f"lower with turns (median), {old['worst'] / new['worst']:.1f}x (max)")
    print(f"the big request itself: {new['big'] / old['big']:.2f}x as long with turns")


if __name__ == "__main__":
    main()
