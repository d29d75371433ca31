"""Concurrent streaming throughput: continuous batching against the one-at-a-time baseline.

Starts the server itself (once with N_PARALLEL=1, once with the N_PARALLEL under test), sends
1, 2, 4, 8, 16 concurrent streaming chat requests of --tokens tokens each, and prints aggregate
tokens/s, median and max time to first token, and the ratio against N_PARALLEL=1 measured in
the same run, and against llama.cpp's own llama-server with as many slots (bench/anchors.py:
the same llama.cpp the wheel was built from), also in the same run. The three servers run
side by side and each level is measured --rounds times, the servers taking turns, so a busy
machine slows all three alike; the median round is reported. Then single-stream tokens/s
through HTTP against in-process llama-cpp-python on the same prompt, resident memory of each
server at --ctx, and the same work through llama.cpp alone (llama_decode and its sampler
chain, no HTTP), with a KV stream per sequence and with one pool for all.

Every end-of-generation token of the model is banned (logit_bias) so that every stream runs
its full length on both servers; "short" counts streams that still ended early.

    .venv/bin/python bench/concurrency.py [--parallel 8] [--tokens 64] [--levels 1,2,4,8,16]
                                          [--ctx 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time
from pathlib import Path

import requests
from anchors import LlamaServer
from server import MODEL, Server, sse_events

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def end_tokens(model: Path = MODEL) -> dict[str, float]:
    """A logit_bias banning every end-of-generation token of `model`."""
    import llama_cpp

    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    ends = [t for t in range(llama_cpp.llama_vocab_n_tokens(vocab))
            if llama_cpp.llama_vocab_is_eog(vocab, t)]
    llm.close()
    return {str(t): -100.0 for t in ends}


NO_EOS = end_tokens()


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
        for event in sse_events(r.iter_lines()):
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
    messages = [{"role": "user", "content": f"{PROMPT} (0)"}]
    llm.create_chat_completion(messages, max_tokens=4)  # warm-up
    start = time.perf_counter()
    out = llm.create_chat_completion(messages, max_tokens=tokens, temperature=0.7, seed=0,
                                     logit_bias={int(t): b for t, b in NO_EOS.items()})
    rate = out["usage"]["completion_tokens"] / (time.perf_counter() - start)
    llm.close()
    return rate


def decode_ceiling_tok_s(n_seq: int, tokens: int, threads: int, ctx: int, unified: bool) -> float:
    """What llama.cpp alone does with the same work: `n_seq` sequences of a 30-token prompt,
    then `tokens` steps of one token each, decoded together and sampled with llama.cpp's own
    chain (top-k 40, top-p 0.95, min-p 0.05, temperature 0.7, as both servers default to). No
    HTTP, no Python between steps beyond the calls: the rate both servers are measured against.
    `unified`: one KV pool for all sequences instead of a stream each."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(str(MODEL).encode(),
                                                 llama_cpp.llama_model_default_params())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_seq_max, params.kv_unified = ctx * 8, 8, unified
    params.n_threads = params.n_threads_batch = threads
    context = llama_cpp.llama_init_from_model(model, params)
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(rows: list[tuple[int, int, int, bool]]) -> None:  # (token, pos, seq, logits)
        batch.n_tokens = len(rows)
        for i, (token, pos, seq, logits) in enumerate(rows):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits
        if llama_cpp.llama_decode(context, batch) != 0:
            raise RuntimeError("llama_decode failed")

    chains = []
    for seq in range(n_seq):
        decode([(100 + seq + j, j, seq, j == 29) for j in range(30)])
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        for sampler in (llama_cpp.llama_sampler_init_top_k(40),
                        llama_cpp.llama_sampler_init_top_p(0.95, 1),
                        llama_cpp.llama_sampler_init_min_p(0.05, 1),
                        llama_cpp.llama_sampler_init_temp(0.7),
                        llama_cpp.llama_sampler_init_dist(seq)):
            llama_cpp.llama_sampler_chain_add(chain, sampler)
        chains.append(chain)
    picked = [200] * n_seq
    start = time.perf_counter()
    for step in range(tokens):
        decode([(picked[seq], 30 + step, seq, True) for seq in range(n_seq)])
        picked = [llama_cpp.llama_sampler_sample(chains[seq], context, seq)
                  for seq in range(n_seq)]
    rate = n_seq * tokens / (time.perf_counter() - start)
    for chain in chains:
        llama_cpp.llama_sampler_free(chain)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(context)
    llama_cpp.llama_model_free(model)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--levels", default="1,2,4,8,16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx", type=int, default=1024, help="N_CTX per sequence")
    parser.add_argument("--rounds", type=int, default=3, help="turns per level and server")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    # A stack, so that servers already started are stopped when a later one fails to start.
    with contextlib.ExitStack() as running:
        ours = {p: running.enter_context(Server(N_PARALLEL=p, N_THREADS=args.threads,
                                                N_CTX=args.ctx))
                for p in (1, args.parallel)}
        anchor = running.enter_context(
            LlamaServer(n_ctx=args.ctx, n_parallel=args.parallel, threads=args.threads))
        urls = {**{p: s.url for p, s in ours.items()}, "anchor": anchor.url}
        idle = {**{p: s.rss_mb() for p, s in ours.items()}, "anchor": anchor.rss_mb()}
        runs: dict = {key: {c: [] for c in levels} for key in urls}
        for url in urls.values():
            # Warm-up, at the widest level too: the first wide batch after start is slow
            # (219 ms median TTFT at 8 streams, then 44 ms), and llama-server warms itself up.
            run_level(url, max(levels), 8)
        for c in levels:
            for _ in range(args.rounds):
                for key, url in urls.items():
                    runs[key][c].append(run_level(url, c, args.tokens))
        loaded = {**{p: s.rss_mb() for p, s in ours.items()}, "anchor": anchor.rss_mb()}

    def median(rounds: list[dict]) -> dict:
        return sorted(rounds, key=lambda r: r["tok_s"])[len(rounds) // 2]

    results = {key: {c: median(r) for c, r in by_level.items()}
               for key, by_level in runs.items()}
    anchor_results = results["anchor"]
    rss = {p: (idle[p], loaded[p]) for p in ours}
    anchor_rss = (idle["anchor"], loaded["anchor"])

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
    print("\nllama_decode and llama.cpp's sampler alone, no HTTP (the ceiling of both servers):")
    for n_seq in sorted({1, min(max(levels), args.parallel)}):
        # In turns too, median of --rounds: one run is only a few seconds.
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for unified, got in rates.items():
                got.append(decode_ceiling_tok_s(n_seq, args.tokens, args.threads, args.ctx,
                                                unified))
        split, pooled = (statistics.median(rates[u]) for u in (False, True))
        print(f"  {n_seq} sequence(s): {split:.0f} tok/s with a KV stream each, {pooled:.0f} "
              "with one pool (kv_unified)")


if __name__ == "__main__":
    main()
