"""The grammar cases (119) through the server's /v1/extract at 96 new tokens.

Each schema of tests/support/grammar_cases.py is sent once (temperature 0, 8 at a time) to a server
started with STRUCTURED_BUDGET on or off. Outcomes: fit (200, data validates), invalid (a 502:
the output did not parse or fit), cut (the JSON was not complete within max_tokens: with the
budget on, a 400 max_tokens_too_small; off, a 400 output_truncated), refused (400 for the
schema itself), crashed (no answer or another 5xx).

    PYTHONPATH=src python bench/grammar_fit.py [--budget on|off] [--step K] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from server import Server  # noqa: E402
from support.grammar_cases import CASES  # noqa: E402

from slm_api.grammar import validation_errors  # noqa: E402

TEXT = "Alice Martin, 31, paid 12.50 EUR on 2024-03-05 at 10:20:00Z for order A-17."
MAX_TOKENS = 96


def outcome(url: str, schema: object) -> tuple[str, int]:
    try:
        r = requests.post(f"{url}/v1/extract", json={
            "text": TEXT, "schema": schema, "max_tokens": MAX_TOKENS, "temperature": 0},
            timeout=600)
    except requests.RequestException:
        return "crashed", 0
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    code = (body.get("error") or {}).get("code")
    if r.status_code == 200:
        tokens = body["usage"]["completion_tokens"]
        return ("fit" if not validation_errors(body["data"], schema) else "invalid"), tokens
    if code in ("max_tokens_too_small", "output_truncated"):
        return "cut", MAX_TOKENS
    if r.status_code == 502:
        return "invalid", 0
    if r.status_code == 400:
        return "refused", 0
    return "crashed", 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", choices=["on", "off"], default="on")
    ap.add_argument("--limit", type=int, default=len(CASES))
    ap.add_argument("--step", type=int, default=1, help="every step-th case (a spread)")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    cases = CASES[:: args.step][: args.limit]
    server = Server(STRUCTURED_BUDGET="1" if args.budget == "on" else "0", N_PARALLEL="8",
                    N_CTX="2048", REQUEST_TIMEOUT_S="1800")
    try:
        time.sleep(15)  # llguidance builds its tokenizer in the background
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda c: outcome(server.url, c.schema), cases))
        wall = time.perf_counter() - started
    finally:
        server.stop()
    counts = Counter(r for r, _ in results)
    print(json.dumps({"budget": args.budget, "cases": len(cases), **counts,
                      "tokens": sum(t for _, t in results), "wall_s": round(wall, 1)}))
    for case, (result, _) in zip(cases, results, strict=True):
        if result != "fit":
            print(f"  {result:8} {case.id}")


if __name__ == "__main__":
    main()
