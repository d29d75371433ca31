"""`n` choices side by side: wall time of one chat request with n=4 against n=1.

The choices share the evaluated prompt (the scheduler copies the first choice's KV cells into
the others) and decode in the same batch, so n=4 should cost far less than 4x n=1. Each request
has a ~600-token prompt (a fresh one per request, so the prompt cache does not help either side)
and generates exactly `--tokens` tokens per choice (end tokens banned).

    .venv/bin/python bench/choices.py [--runs 3] [--tokens 32] [--n 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from server import Server

RULES = " ".join(f"Rule {i}: answer politely and keep replies short." for i in range(60))
END_MARKERS = ("<end_of_turn>", "<eos>", "<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")


def end_bias(url: str) -> dict[str, int]:
    bias = {}
    for marker in END_MARKERS:
        tokens = requests.post(f"{url}/extras/tokenize", json={"input": marker,
                               "add_special": False}, timeout=30).json()["tokens"]
        if len(tokens) == 1:
            bias[str(tokens[0])] = -100
    return bias


def timed(url: str, n: int, tokens: int, nonce: int, bias: dict[str, int]) -> tuple[float, int]:
    body = {"messages": [{"role": "system", "content": f"Session {nonce}. {RULES}"},
                         {"role": "user", "content": "Write a short poem about the sea."}],
            "n": n, "max_tokens": tokens, "temperature": 1.0, "logit_bias": bias}
    start = time.perf_counter()
    r = requests.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    r.raise_for_status()
    elapsed = time.perf_counter() - start
    usage = r.json()["usage"]
    assert usage["completion_tokens"] == n * tokens, usage
    return elapsed, usage["prompt_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    args = parser.parse_args()
    server = Server(N_PARALLEL=max(args.n, 4), N_CTX=2048)
    try:
        bias = end_bias(server.url)
        timed(server.url, 1, 4, -1, bias)  # warm-up
        ones, many, nonce, prompt = [], [], 0, 0
        for _ in range(args.runs):
            for n, times in ((1, ones), (args.n, many)):
                nonce += 1
                elapsed, prompt = timed(server.url, n, args.tokens, nonce, bias)
                times.append(elapsed)
        one, multi = statistics.median(ones), statistics.median(many)
        print(f"prompt {prompt} tokens, {args.tokens} tokens per choice, {args.runs} runs")
        print(f"n=1: {one:.2f} s   n={args.n}: {multi:.2f} s   ratio {multi / one:.2f}x "
              f"(n x n=1 would be {args.n:.0f}.00x)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
