"""Copy-heavy extraction: a 10-field schema filled from a ~250-token document, constrained
(/v1/extract) against free text (/v1/chat/completions, same document, no grammar) on the same
server in the same run; sequential and 8 concurrent; per feature configuration:

    masks    llguidance masks only (llama.cpp's grammar sampler, the `today` of the numbers
             in docs/structured-output.md, is no longer a setting: issue 26)
    budget   llguidance + budget guide
    ff       llguidance + budget guide + fast-forward (the defaults)
    all      ff + prompt-lookup drafts (LOOKUP_DRAFT_MAX=8, off by default)

Reported per mode: wall seconds, completion tokens, tokens/s, the ratio of constrained to
free-text tokens/s (the issue's target: >= 1.5), and the share of prompt-lookup draft tokens
the model accepted (from /metrics' slm_draft_tokens_total), for each; plus `copy`, the
document repeated word for word (prompt lookup's best case).

    PYTHONPATH=src python bench/extract.py [--rounds 2] [--configs masks,all] [--modes seq,conc]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import Server  # noqa: E402

DOCUMENT = """\
Customer record, updated 2024-03-05.
Name: Alice Martin. Alice is a 31-year-old software engineer who lives at 14 rue des Lilas,
69003 Lyon, France. She joined Northwind Analytics in September 2019 as a data engineer and
was promoted to staff engineer in 2023. Her work email is alice.martin@northwind.example and
her phone number is +33 4 72 00 12 34. She speaks French, English and Spanish.
Her current order, number A-1782, is a standing desk (model Ergo Pro 2) priced at 489.90 EUR,
paid by card on 2024-03-01 and shipped on 2024-03-04 with carrier Colissimo, tracking number
6A19283746501. The order status is "shipped". She rated her last purchase 4 out of 5 stars and
wrote: "Sturdy desk, easy to assemble, but the motor is a little loud."
Account notes: prefers email contact, newsletter subscribed, loyalty tier gold since 2022.
"""

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "employer": {"type": "string"},
        "email": {"type": "string"},
        "phone": {"type": "string"},
        "order_number": {"type": "string"},
        "product": {"type": "string"},
        "price_eur": {"type": "number"},
        "status": {"type": "string", "enum": ["pending", "paid", "shipped", "delivered"]},
    },
    "required": ["name", "age", "city", "employer", "email", "phone", "order_number",
                 "product", "price_eur", "status"],
    "additionalProperties": False,
}
MAX_TOKENS = 160
INSTRUCTIONS = ("Extract the information from the text below as JSON with the fields name, age, "
                "city, employer, email, phone, order_number, product, price_eur and status.")


def constrained(url: str) -> int:
    r = requests.post(f"{url}/v1/extract", json={
        "text": DOCUMENT, "schema": SCHEMA, "max_tokens": MAX_TOKENS, "temperature": 0,
        "instructions": INSTRUCTIONS}, timeout=900)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


def free_text(url: str) -> int:
    r = requests.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "system", "content": INSTRUCTIONS},
                     {"role": "user", "content": DOCUMENT}],
        "max_tokens": MAX_TOKENS, "temperature": 0}, timeout=900)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


def copy_text(url: str) -> int:
    """Prompt lookup's best case: the document repeated word for word."""
    r = requests.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Repeat this text exactly:\n\n" + DOCUMENT}],
        "max_tokens": MAX_TOKENS, "temperature": 0}, timeout=900)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


def drafts(url: str) -> dict[str, float]:
    out = {"accepted": 0.0, "rejected": 0.0}
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("slm_draft_tokens_total{"):
            out[line.split('outcome="')[1].split('"')[0]] = float(line.split()[-1])
    return out


def measure(fn, url: str, n: int, concurrency: int) -> dict[str, float]:
    before = drafts(url)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(lambda _: fn(url), range(n)))
    wall = time.perf_counter() - started
    after = drafts(url)
    accepted = after["accepted"] - before["accepted"]
    drafted = accepted + after["rejected"] - before["rejected"]
    return {"wall_s": round(wall, 2), "tokens": tokens, "tok_s": round(tokens / wall, 1),
            "drafted": int(drafted), "accepted": round(accepted / drafted, 2) if drafted else None}


CONFIGS = {
    "masks": {"STRUCTURED_BUDGET": "0", "STRUCTURED_FAST_FORWARD": "0", "LOOKUP_DRAFT_MAX": "0"},
    "budget": {"STRUCTURED_BUDGET": "1", "STRUCTURED_FAST_FORWARD": "0", "LOOKUP_DRAFT_MAX": "0"},
    "ff": {"STRUCTURED_BUDGET": "1", "STRUCTURED_FAST_FORWARD": "1", "LOOKUP_DRAFT_MAX": "0"},
    "all": {"STRUCTURED_BUDGET": "1", "STRUCTURED_FAST_FORWARD": "1", "LOOKUP_DRAFT_MAX": "8"},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2, help="sequential requests per mode")
    ap.add_argument("--configs", default="masks,budget,ff,all")
    ap.add_argument("--modes", default="seq,conc")
    args = ap.parse_args()
    modes = {"seq": ("sequential", args.rounds, 1), "conc": ("8 concurrent", 8, 8)}
    for name in args.configs.split(","):
        server = Server(N_PARALLEL="8", N_CTX="1024", REQUEST_TIMEOUT_S="1800", **CONFIGS[name])
        try:
            time.sleep(15)  # llguidance builds its tokenizer in the background
            constrained(server.url)  # warm-up: model pages, prompt cache of the instructions
            for mode in args.modes.split(","):
                label, n, conc = modes[mode]
                c = measure(constrained, server.url, n, conc)
                f = measure(free_text, server.url, n, conc)
                k = measure(copy_text, server.url, n, conc)
                print(json.dumps({"config": name, "mode": label, "constrained": c,
                                  "free_text": f, "copy": k,
                                  "ratio": round(c["tok_s"] / f["tok_s"], 2)}), flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
