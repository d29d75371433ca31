"""Which embedded model should be the default? A small eval of both, through the real server.

- chat: plain factual questions, greedy, 48 tokens; a reply scores when it contains one of the
  expected words (whole words, case-insensitive). The README's quick-start prompts are among them.
- extraction: short texts with known values through /v1/extract; a case scores when every
  expected field has the expected value.
- schemas: the 113 schema cases of tests/support/grammar_cases.py through /v1/extract
  (max_tokens 128):
  200 with data that fits, or cut (400 output_truncated / max_tokens_too_small, counted as
  truncated), or 502 schema_mismatch, or another status.

Each model is served by its own `slm_api serve` (gunicorn, as users run it) from models/.

    .venv/bin/python bench/model_eval.py [--models smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m]
        [--schemas-every 1] [--json build/model_eval.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from grammar_schemas import SCHEMAS
from server import REPO, Server

sys.path.insert(0, str(REPO / "src"))

from slm_api.config import GEMMA_MODEL_FILE, SMOLLM2_MODEL_FILE  # noqa: E402
from slm_api.default_model import write_embedded_model  # noqa: E402
from slm_api.grammar import validation_errors  # noqa: E402

QUESTIONS: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("What is the capital of Italy?", ["Rome"]),
    ("What is the capital of Germany?", ["Berlin"]),
    ("What is the capital of England?", ["London"]),
    ("What is 2+2?", ["4", "four"]),
    ("What is 10 times 10?", ["100", "hundred"]),
    ("How many days are in a week?", ["7", "seven"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("How many continents are there?", ["7", "seven"]),
    ("Name three primary colors.", ["red", "blue", "yellow"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("What color are bananas when they are ripe?", ["yellow"]),
    ("What is the largest ocean on Earth?", ["Pacific"]),
    ("What is the largest planet in our solar system?", ["Jupiter"]),
    ("Which planet is known as the Red Planet?", ["Mars"]),
    ("What star is at the center of our solar system?", ["Sun"]),
    ("What do bees make?", ["honey"]),
    ("What is frozen water called?", ["ice"]),
    ("What gas do plants absorb from the air?", ["carbon dioxide", "CO2"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("What is the boiling point of water in Celsius?", ["100"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("Who painted the Mona Lisa?", ["Leonardo", "da Vinci"]),
    ("Who was the first president of the United States?", ["Washington"]),
    ("What language is spoken in Spain?", ["Spanish"]),
    ("What is the opposite of hot?", ["cold"]),
    ("What animal says moo?", ["cow"]),
    ("What is the tallest animal in the world?", ["giraffe"]),
    ("Translate 'hello' into Spanish.", ["hola"]),
]

EXTRACTIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("Alice is 31 and lives in Lyon.",
     {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
      "required": ["name", "age"]},
     {"name": "Alice", "age": 31}),
    ("Order 1182 by Alice: 2 mugs. Shipped.",
     {"type": "object", "properties": {"order_id": {"type": "integer"},
                                       "status": {"type": "string",
                                                  "enum": ["pending", "shipped"]}},
      "required": ["order_id", "status"]},
     {"order_id": 1182, "status": "shipped"}),
    ("Bob Stone, 45, works as a plumber in Leeds.",
     {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                       "city": {"type": "string"}},
      "required": ["name", "age", "city"]},
     {"name": "Bob Stone", "age": 45, "city": "Leeds"}),
    ("The meeting is on 2024-05-17 in room B12.",
     {"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                       "room": {"type": "string", "maxLength": 10}},
      "required": ["date", "room"]},
     {"date": "2024-05-17", "room": "B12"}),
    ("I bought 3 apples for 1.20 dollars.",
     {"type": "object", "properties": {"item": {"type": "string", "maxLength": 20},
                                       "quantity": {"type": "integer"},
                                       "price": {"type": "number"}},
      "required": ["item", "quantity", "price"]},
     {"item": "apples", "quantity": 3, "price": 1.2}),
    ("Contact: carol@example.com, phone 555-0142.",
     {"type": "object", "properties": {"email": {"type": "string", "format": "email"}},
      "required": ["email"]},
     {"email": "carol@example.com"}),
    ("The review says: terrible food, rude staff, never again.",
     {"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative"]}},
      "required": ["sentiment"]},
     {"sentiment": "negative"}),
    ("Flight AF123 leaves Paris at 09:45 for Tokyo.",
     {"type": "object", "properties": {"flight": {"type": "string", "maxLength": 8},
                                       "from": {"type": "string", "maxLength": 20},
                                       "to": {"type": "string", "maxLength": 20}},
      "required": ["flight", "from", "to"]},
     {"flight": "AF123", "from": "Paris", "to": "Tokyo"}),
]
SCHEMA_TEXT = "Alice Martin, 31, paid 12.50 EUR on 2024-03-05 at 10:20:00Z for order A-17."


def contains_any(reply: str, expected: list[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", reply, re.I) for w in expected)


def same_value(got: Any, want: Any) -> bool:
    if isinstance(want, str):
        return isinstance(got, str) and got.strip().lower() == want.lower()
    if isinstance(want, float):
        return isinstance(got, (int, float)) and abs(got - want) < 1e-9
    return got == want


def chat_eval(url: str) -> list[dict[str, Any]]:
    rows = []
    for question, expected in QUESTIONS:
        body = {"messages": [{"role": "user", "content": question}], "max_tokens": 48,
                "temperature": 0}
        r = requests.post(f"{url}/v1/chat/completions", json=body, timeout=300)
        r.raise_for_status()
        reply = r.json()["choices"][0]["message"]["content"]
        rows.append({"question": question, "reply": reply, "ok": contains_any(reply, expected)})
    return rows


def extraction_eval(url: str) -> list[dict[str, Any]]:
    rows = []
    for text, schema, want in EXTRACTIONS:
        r = requests.post(f"{url}/v1/extract", json={"text": text, "schema": schema,
                                                     "max_tokens": 96}, timeout=300)
        data = r.json().get("data") if r.status_code == 200 else None
        ok = isinstance(data, dict) and all(same_value(data.get(k), v) for k, v in want.items())
        rows.append({"text": text, "status": r.status_code, "data": data, "ok": ok})
    return rows


def schema_outcome(url: str, schema: Any) -> str:
    try:
        r = requests.post(f"{url}/v1/extract", json={"text": SCHEMA_TEXT, "schema": schema,
                                                     "max_tokens": 128}, timeout=600)
    except requests.RequestException as exc:
        return f"client {type(exc).__name__}"
    if r.status_code == 200:
        # The server validates before answering; checked again so the count cannot lie.
        return "fits" if validation_errors(r.json()["data"], schema) == [] else "violated"
    json_reply = r.headers.get("content-type", "").startswith("application/json")
    code = (r.json().get("error") or {}).get("code") if json_reply else None
    if code in ("max_tokens_too_small", "output_truncated"):  # 400s since budget-aware closing
        return "output_truncated"
    if code == "schema_mismatch":
        return code
    return f"http {r.status_code}"


def evaluate(model_file: str, schemas_every: int) -> dict[str, Any]:
    path = write_embedded_model(REPO / "models", model_file)
    # REQUEST_TIMEOUT_S: a busy machine must not stall the run on one schema (such a reply
    # counts as truncated, like max_tokens).
    # One thread: on a shared, busy machine two threads spin-wait on each other (10x slower).
    server = Server(MODEL_PATH=path, N_CTX=2048, N_THREADS=1, N_PARALLEL=1,
                    REQUEST_TIMEOUT_S=180)
    print(f"{path.stem}: chat...", file=sys.stderr, flush=True)
    try:
        t0 = time.perf_counter()
        chat = chat_eval(server.url)
        t_chat = time.perf_counter() - t0
        print(f"{path.stem}: chat {sum(r['ok'] for r in chat)}/{len(chat)} in {t_chat:.0f} s; "
              "extraction...", file=sys.stderr, flush=True)
        extraction = extraction_eval(server.url)
        print(f"{path.stem}: extraction {sum(r['ok'] for r in extraction)}/{len(extraction)}; "
              "schemas...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        schemas = {name: schema_outcome(server.url, schema)
                   for name, schema in SCHEMAS[::schemas_every]}
        t_schemas = time.perf_counter() - t0
    finally:
        server.stop()
    return {"model": path.stem, "chat": chat, "chat_s": t_chat, "extraction": extraction,
            "schemas": schemas, "schemas_s": t_schemas}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=f"{SMOLLM2_MODEL_FILE},{GEMMA_MODEL_FILE}")
    ap.add_argument("--schemas-every", type=int, default=1, help="every Nth schema case only")
    ap.add_argument("--json", help="write every reply and outcome here")
    ap.add_argument("--verbose", action="store_true", help="print each reply")
    args = ap.parse_args()
    results = [evaluate(f if f.endswith(".gguf") else f"{f}.gguf", args.schemas_every)
               for f in args.models.split(",")]
    n_schemas = len(SCHEMAS[::args.schemas_every])
    print(f"| model | plain questions answered ({len(QUESTIONS)}) | extractions right "
          f"({len(EXTRACTIONS)}) | schemas that fit ({n_schemas}) | truncated | mismatch | "
          "other | chat s | schemas s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for res in results:
        outcomes = Counter(res["schemas"].values())
        other = n_schemas - outcomes["fits"] - outcomes["output_truncated"] \
            - outcomes["schema_mismatch"]
        print(f"| `{res['model']}` | {sum(r['ok'] for r in res['chat'])} | "
              f"{sum(r['ok'] for r in res['extraction'])} | {outcomes['fits']} | "
              f"{outcomes['output_truncated']} | {outcomes['schema_mismatch']} | {other} | "
              f"{res['chat_s']:.0f} | {res['schemas_s']:.0f} |")
    if args.verbose:
        for res in results:
            print(f"\n## {res['model']}")
            for row in res["chat"]:
                print(f"{'ok ' if row['ok'] else 'NO '} {row['question']} -> {row['reply']!r}")
            for row in res["extraction"]:
                print(f"{'ok ' if row['ok'] else 'NO '} {row['text']} -> {row['data']!r}")
            for name, outcome in res["schemas"].items():
                if outcome != "fits":
                    print(f"    schema {name}: {outcome}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
