"""Ollama's /api/chat against /v1/chat/completions on one server, in the same run.

Both routes take the same requests (stream i: the same prompt, seed i, temperature 0.7, the
same token budget), so the one conversation core generates the same tokens on each and the
work is equal without banning end tokens (Ollama's API has no logit_bias). Each level of
concurrency is measured --rounds times, the routes taking turns, so a busy machine slows both
alike; the median round is reported: aggregate tokens/s, median time to first token, and the
Ollama route's ratio to the OpenAI one (goal: within 3%).

    .venv/bin/python bench/ollama_route.py [--tokens 48] [--levels 1,8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import requests
from server import MODEL, Server, sse_events

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def openai_stream(url: str, tokens: int, i: int) -> tuple[float, int]:
    body = {"model": MODEL.stem, "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}],
            "max_tokens": tokens, "temperature": 0.7, "seed": i, "stream": True,
            "stream_options": {"include_usage": True}}
    start, first, n = time.perf_counter(), None, 0
    with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as r:
        for event in sse_events(r.iter_lines()):
            if event.get("usage"):
                n = event["usage"]["completion_tokens"]
            if first is None and any(c["delta"].get("content") for c in event["choices"]):
                first = time.perf_counter() - start
    return first or 0.0, n


def ollama_stream(url: str, tokens: int, i: int) -> tuple[float, int]:
    body = {"model": MODEL.stem, "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}],
            "options": {"num_predict": tokens, "temperature": 0.7, "seed": i}}
    start, first, n = time.perf_counter(), None, 0
    with requests.post(f"{url}/api/chat", json=body, stream=True, timeout=600) as r:
        for line in r.iter_lines():
            obj = json.loads(line)
            if obj["done"]:
                n = obj["eval_count"]
            elif first is None and obj["message"]["content"]:
                first = time.perf_counter() - start
    return first or 0.0, n


def run_level(stream, url: str, concurrency: int, tokens: int) -> dict:
    out: list = [None] * concurrency

    def one(i: int) -> None:
        out[i] = stream(url, tokens, i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"tok_s": sum(o[1] for o in out) / wall,
            "ttft_ms": statistics.median(o[0] for o in out) * 1000,
            "tokens": sum(o[1] for o in out)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--levels", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    routes = {"openai": openai_stream, "ollama": ollama_stream}
    with Server(N_PARALLEL=max(levels), N_THREADS=args.threads) as server:
        for stream in routes.values():  # warm-up: both routes' code paths and the cache
            stream(server.url, 4, 0)
        print(f"{'streams':>7} {'route':>7} {'tok/s':>8} {'ttft ms':>8} {'tokens':>7} {'ratio':>6}")
        for level in levels:
            rounds: dict[str, list[dict]] = {name: [] for name in routes}
            for _ in range(args.rounds):
                for name, stream in routes.items():
                    rounds[name].append(run_level(stream, server.url, level, args.tokens))
            med = {name: sorted(rs, key=lambda r: r["tok_s"])[len(rs) // 2]
                   for name, rs in rounds.items()}
            for name in routes:
                m = med[name]
                ratio = m["tok_s"] / med["openai"]["tok_s"]
                print(f"{level:>7} {name:>7} {m['tok_s']:>8.1f} {m['ttft_ms']:>8.0f} "
                      f"{m['tokens']:>7} {ratio:>6.3f}")


if __name__ == "__main__":
    main()
