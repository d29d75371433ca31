"""Concurrent streaming throughput: continuous batching against the one-at-a-time baseline.

Starts the server itself (once with N_PARALLEL=1, once with the N_PARALLEL under test), sends
1, 2, 4, 8, 16 concurrent streaming chat requests of --tokens tokens each, and prints aggregate
tokens/s, median and max time to first token, and the ratio against N_PARALLEL=1 measured in
the same run, and against llama.cpp's own llama-server with as many slots (bench/anchors.py:
the same llama.cpp the wheel was built from), also in the same run. Then single-stream tokens/s
through HTTP against in-process llama-cpp-python on the same prompt, and resident memory of
each server at --ctx.

    .venv/bin/python bench/concurrency.py [--parallel 8] [--tokens 64] [--levels 1,2,4,8,16]
                                          [--ctx 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import requests
from anchors import LlamaServer
from server import MODEL, Server

PROMPT = "Write a long story about a lighthouse keeper and a storm."
# End-of-turn and end-of-text are banned so that every stream runs its full length.
NO_EOS = {"1": -100, "106": -100}


def one_stream(url: str, tokens: int, out: list, i: int) -> None:
    body = {"messages": [{"role": "user", "content": f"{PROMPT} ({i})"}], "max_tokens": tokens,
            "temperature": 0.7, "seed": i, "stream": True, "logit_bias": NO_EOS,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = None
    n_tokens = 0
    n_chunks = 0
    finish = None
    with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as r:
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                n_tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                if choice["delta"].get("content"):
                    n_chunks += 1
                    if first is None:
                        first = time.perf_counter() - start
                finish = choice.get("finish_reason") or finish
    # llama-server may leave usage out of the stream; it sends one token per chunk.
    out[i] = (first or 0.0, n_tokens or n_chunks, finish, time.perf_counter() - start)


def run_level(url: str, concurrency: int, tokens: int) -> dict:
    out: list = [None] * concurrency
    threads = [threading.Thread(target=one_stream, args=(url, tokens, out, i))
               for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttfts = [o[0] for o in out]
    return {
        "tok_s": sum(o[1] for o in out) / wall,
        "ttft_med": statistics.median(ttfts) * 1000,
        "ttft_max": max(ttfts) * 1000,
        "short": sum(1 for o in out if o[1] < tokens),
    }


def in_process_tok_s(tokens: int, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(str(MODEL), n_ctx=1024, n_threads=threads, verbose=False)
    prompt = f"<start_of_turn>user\n{PROMPT} (0)<end_of_turn>\n<start_of_turn>model\n"
    llm.create_completion(prompt, max_tokens=4)  # warm-up
    start = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.7, seed=0,
                                logit_bias={1: -100.0, 106: -100.0})
    rate = out["usage"]["completion_tokens"] / (time.perf_counter() - start)
    llm.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--levels", default="1,2,4,8,16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx", type=int, default=1024, help="N_CTX per sequence")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    results: dict[int, dict[int, dict]] = {}
    rss: dict[int, tuple[float, float]] = {}
    for n_parallel in (1, args.parallel):
        server = Server(N_PARALLEL=n_parallel, N_THREADS=args.threads, N_CTX=args.ctx)
        idle = server.rss_mb()
        try:
            run_level(server.url, 1, 8)  # warm-up
            results[n_parallel] = {c: run_level(server.url, c, args.tokens) for c in levels}
            rss[n_parallel] = (idle, server.rss_mb())
        finally:
            server.stop()

    with LlamaServer(n_ctx=args.ctx, n_parallel=args.parallel, threads=args.threads) as anchor:
        anchor_idle = anchor.rss_mb()
        run_level(anchor.url, 1, 8)  # warm-up
        anchor_results = {c: run_level(anchor.url, c, args.tokens) for c in levels}
        anchor_rss = (anchor_idle, anchor.rss_mb())

    base, best = results[1], results[args.parallel]
    print(f"\n{args.tokens}-token streams, N_PARALLEL={args.parallel} vs N_PARALLEL=1 "
          f"({args.threads} threads)\n")
    print("| concurrent | tok/s (1) | tok/s (N) | ratio | llama-server tok/s (N) | vs llama-server "
          "| TTFT med ms (1) | TTFT med ms (N) | llama-server TTFT med ms | TTFT max ms (N) "
          "| short streams (N) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in levels:
        b, n, a = base[c], best[c], anchor_results[c]
        print(f"| {c} | {b['tok_s']:.0f} | {n['tok_s']:.0f} | {n['tok_s'] / b['tok_s']:.2f}x "
              f"| {a['tok_s']:.0f} | {n['tok_s'] / a['tok_s']:.0%} "
              f"| {b['ttft_med']:.0f} | {n['ttft_med']:.0f} | {a['ttft_med']:.0f} "
              f"| {n['ttft_max']:.0f} | {n['short']} |")
    for p, (idle, loaded) in rss.items():
        print(f"\nRSS at N_CTX={args.ctx}, N_PARALLEL={p}: {idle:.0f} MB idle, {loaded:.0f} MB "
              "after the run")
    print(f"llama-server RSS at -c {args.ctx}x{args.parallel}, -np {args.parallel}: "
          f"{anchor_rss[0]:.0f} MB idle, {anchor_rss[1]:.0f} MB after the run")

    single = best[1] if 1 in best else None
    if single is None:
        server = Server(N_PARALLEL=args.parallel, N_THREADS=args.threads, N_CTX=args.ctx)
        try:
            single = run_level(server.url, 1, args.tokens)
        finally:
            server.stop()
    http_rate = single["tok_s"]
    local_rate = in_process_tok_s(args.tokens, args.threads)
    print(f"\nsingle stream: HTTP {http_rate:.1f} tok/s, in-process llama-cpp-python "
          f"{local_rate:.1f} tok/s, ratio {http_rate / local_rate:.2f}")


if __name__ == "__main__":
    main()
