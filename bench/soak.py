"""Soak: does the worker's memory stay flat under hours of mixed traffic?

Starts `slm-api serve` (N_PARALLEL=8, N_CTX=4096, as by default) and keeps --clients threads
busy for --minutes with a mix of what clients send: plain and streamed chat over prompts that
differ (so the prompt cache keeps turning over), extraction against a schema, a forced tool
call, three choices of one prompt, and a stream the client drops half way. Every --every
seconds it reads the gunicorn worker's RSS; at the end it prints the samples and the growth
from the first sample after --warmup minutes to the last, with the requests and errors seen.

    PYTHONPATH=src python bench/soak.py [--minutes 30] [--clients 8] [--every 30]
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from collections import Counter

import requests
from server import Server

WORDS = ("river bread chess volcano owl train tea glass harbour lantern orchard comet violin "
         "desert meadow bridge").split()
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                           "city": {"type": "string"}},
          "required": ["name", "age", "city"]}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def one_request(url: str, rng: random.Random) -> int:
    """One request of a kind drawn at random; returns its HTTP status (0: no response)."""
    topic = " ".join(rng.sample(WORDS, 3))
    ask = [{"role": "user", "content": f"Write two sentences about {topic}."}]
    kind = rng.choice(("chat", "stream", "extract", "tool", "choices", "dropped"))
    try:
        if kind == "extract":
            r = requests.post(f"{url}/v1/extract", timeout=300, json={
                "text": f"{topic.title()} Smith, aged {rng.randint(20, 80)}, lives in Lyon.",
                "schema": SCHEMA, "max_tokens": 64})
            return r.status_code
        body: dict = {"messages": ask, "max_tokens": 48, "temperature": 0.8}
        if kind == "tool":
            body.update(tools=[TOOL], tool_choice="required")
        elif kind == "choices":
            body.update(n=3, max_tokens=24)
        elif kind in ("stream", "dropped"):
            body["stream"] = True
        with requests.post(f"{url}/v1/chat/completions", json=body, stream=body.get("stream",
                           False), timeout=300) as r:
            if kind == "dropped":
                for _ in itertools.islice(r.iter_lines(), 6):
                    pass  # then close the connection mid-stream
            else:
                _ = r.content
            return r.status_code
    except requests.RequestException:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--every", type=float, default=30, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=2, help="minutes before the baseline")
    args = parser.parse_args()

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    with Server(N_PARALLEL=8, N_CTX=4096) as server:
        end = time.monotonic() + args.minutes * 60

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < end:
                status = one_request(server.url, rng)
                with lock:
                    statuses[status] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        started = time.monotonic()
        samples: list[tuple[float, float, int]] = []
        while time.monotonic() < end:
            time.sleep(min(args.every, max(0.0, end - time.monotonic())))
            with lock:
                done = sum(statuses.values())
            samples.append(((time.monotonic() - started) / 60, server.rss_mb(), done))
        for t in threads:
            t.join()

    print(f"\n{args.clients} clients for {args.minutes:g} minutes, mixed requests\n")
    print("| minute | worker RSS MiB | requests done |")
    print("|---|---|---|")
    for minute, rss, done in samples:
        print(f"| {minute:.1f} | {rss:.0f} | {done} |")
    base = next((s for s in samples if s[0] >= args.warmup), samples[0])
    last = samples[-1]
    print(f"\nRSS after {base[0]:.1f} min: {base[1]:.0f} MiB; at the end: {last[1]:.0f} MiB "
          f"({last[1] - base[1]:+.0f} MiB over {last[0] - base[0]:.1f} min, "
          f"{last[2] - base[2]} requests)")
    print("statuses:", dict(sorted(statuses.items())))


if __name__ == "__main__":
    main()
