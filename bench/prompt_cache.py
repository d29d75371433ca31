"""Prompt cache: time to first token for a ~1,000-token system prompt, cold vs warm.

Cold: every request has a system prompt no sequence has seen (a different first line), so the
whole prompt is evaluated. Warm: the same system prompt with a new question each time, so only
the question is evaluated. Disk: PROMPT_CACHE=disk, the server restarted between the request that
saved the prefix and the one measured, with a new question each run (median of --runs, one
restart per run). Anchor: llama.cpp's own llama-server (bench/anchors.py, the same llama.cpp as
the wheel) on the same model and prompts, cold and warm, measured in the same invocation.

    .venv/bin/python bench/prompt_cache.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import requests
from anchors import LlamaServer
from server import Server

RULES = " ".join(f"Rule {i}: answer politely, cite sources, and keep replies short." for i in
                 range(80))


def system_prompt(nonce: str) -> str:
    return f"Session {nonce}. You are the support assistant of a bookshop. {RULES}"


def ttft(url: str, system: str, question: str) -> tuple[float, int, int]:
    body = {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": question}],
            "max_tokens": 4, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = None
    usage = {}
    with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=300) as r:
        for line in r.iter_lines():
            if not line.startswith(b"data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                usage = event["usage"]
            if first is None and any(c["delta"].get("content") for c in event["choices"]):
                first = time.perf_counter() - start
    cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    return (first or time.perf_counter() - start) * 1000, usage.get("prompt_tokens", 0), cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(N_CTX=2048, N_PARALLEL=4, PROMPT_CACHE="disk", CACHE_DIR=cache_dir)
        server = Server(**env)
        try:
            ttft(server.url, "warm-up", "hi")
            cold = [ttft(server.url, system_prompt(f"cold-{i}"), "Do you sell maps?")
                    for i in range(args.runs)]
            ttft(server.url, system_prompt("shared"), "Hello")
            warm = [ttft(server.url, system_prompt("shared"), f"Question {i}: opening hours?")
                    for i in range(args.runs)]
            for i in range(args.runs):  # saved to disk as each finishes
                ttft(server.url, system_prompt(f"disk-{i}"), "Hello")
            time.sleep(2)
        finally:
            server.stop()
        disk = []
        for i in range(args.runs):
            server = Server(**env)
            try:
                disk.append(ttft(server.url, system_prompt(f"disk-{i}"), f"Question {i}: maps?"))
            finally:
                server.stop()
    with LlamaServer(n_ctx=2048, n_parallel=4) as anchor:
        ttft(anchor.url, "warm-up", "hi")
        a_cold = [ttft(anchor.url, system_prompt(f"cold-{i}"), "Do you sell maps?")
                  for i in range(args.runs)]
        ttft(anchor.url, system_prompt("shared"), "Hello")
        a_warm = [ttft(anchor.url, system_prompt("shared"), f"Question {i}: opening hours?")
                  for i in range(args.runs)]
    for name, runs in (("cold", cold), ("warm (RAM)", warm), ("after restart (disk)", disk),
                       ("llama-server cold", a_cold), ("llama-server warm", a_warm)):
        rows.append((name, statistics.median(r[0] for r in runs), runs[0][1],
                     statistics.median(r[2] for r in runs)))
    base = rows[0][1]
    print("\n| prompt | TTFT median ms | prompt tokens | cached tokens | speed-up vs cold |")
    print("|---|---|---|---|---|")
    for name, ms, n_prompt, n_cached in rows:
        print(f"| {name} | {ms:.0f} | {n_prompt} | {n_cached:.0f} | {base / ms:.1f}x |")


if __name__ == "__main__":
    main()
