"""The latency a one-input embedding request sees beside a 2,000-input one.

Starts two servers side by side on the same MiniLM file (the default embedding model, which
`make run` writes into models/): one with EMBEDDING_DECODES_PER_TURN=0 (a whole request per
turn at the embedding context: the old, serial way) and one with the default of 1 (requests
take turns, one packed decode each). In each round, on each server in turn: a --big-input
request is sent, and from --offset s later until it returns a one-input request is sent every
--every s, each on its own connection whether or not the last one has come back (open loop, as
independent clients arrive), each timed. Also timed: a one-input request on the idle server,
and the big request itself (what interleaving costs it). Prints the median and 95th percentile
of all rounds' one-input latencies and the ratios.

    .venv/bin/python bench/embeddings_fairness.py [--big 2000] [--rounds 3] [--every 0.5]
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


def one_round(url: str, big: list[str], offset: float, every: float) -> tuple[float, list]:
    """The big request's time, and the latencies of the one-input requests sent beside it."""
    took: dict[str, float] = {}
    thread = threading.Thread(target=lambda: took.setdefault("big", embed(url, big)))
    thread.start()
    time.sleep(offset)  # the big request is tokenized and its decodes have begun
    beside: list[float] = []
    smalls = []
    while thread.is_alive():
        small = threading.Thread(
            target=lambda: beside.append(embed(url, ["How do I reset my password?"])))
        small.start()
        smalls.append(small)
        thread.join(every)
    for small in smalls:
        small.join()
    return took["big"], beside


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", type=int, default=2000, help="inputs in the big request")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--offset", type=float, default=0.25,
                    help="seconds after the big request before the first small one")
    ap.add_argument("--every", type=float, default=0.5,
                    help="seconds between one-input requests while the big one runs")
    args = ap.parse_args()
    assert (MODEL.parent / f"{MINILM}.gguf").is_file(), "run `make run` (writes MiniLM) first"
    big = [f"Sentence number {i} of the big batch is about topic {i % 13}."
           for i in range(args.big)]
    servers = {name: Server(EMBEDDING_DECODES_PER_TURN=per_turn, N_THREADS=2)
               for name, per_turn in MODES.items()}
    results: dict[str, dict[str, list[float]]] = {
        name: {"alone": [], "beside": [], "big": []} for name in servers}
    try:
        for url in (s.url for s in servers.values()):
            embed(url, ["warm up: load the model"])
        for _ in range(args.rounds):
            for name, server in servers.items():  # taking turns: noise hits both alike
                res = results[name]
                res["alone"] += [embed(server.url, ["How do I reset my password?"])
                                 for _ in range(5)]
                big_s, beside = one_round(server.url, big, args.offset, args.every)
                res["big"].append(big_s)
                res["beside"] += beside
    finally:
        for server in servers.values():
            server.stop()

    print(f"\n{args.big}-input request beside one-input requests sent every {args.every} s, "
          f"MiniLM, N_THREADS=2, {args.rounds} rounds\n")
    print(f"{'mode':<30} {'1-input alone':>14} {'beside: median':>15} {'p95':>9} "
          f"{'n':>4} {'big request':>12}")
    stats = {}
    for name, res in results.items():
        stats[name] = m = {"alone": statistics.median(res["alone"]),
                           "median": statistics.median(res["beside"]),
                           "p95": percentile(res["beside"], 0.95),
                           "big": statistics.median(res["big"])}
        print(f"{name:<30} {m['alone'] * 1000:>11.0f} ms {m['median'] * 1000:>12.0f} ms "
              f"{m['p95'] * 1000:>6.0f} ms {len(res['beside']):>4} {m['big']:>10.2f} s")
    old, new = stats["whole request per turn (old)"], stats["one decode per turn (new)"]
    print(f"\none-input latency beside the big request, old / new: "
          f"{old['median'] / new['median']:.1f}x (median), {old['p95'] / new['p95']:.1f}x (p95)")
    print(f"the big request itself, new / old: {new['big'] / old['big']:.2f}x")


if __name__ == "__main__":
    main()
