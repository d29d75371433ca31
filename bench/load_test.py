"""Load test for slm-api: N chat completions from C threads; latency percentiles, errors by
status, tokens per second. Standard library only.

    python bench/load_test.py --url http://127.0.0.1:8000 --requests 40 --concurrency 4
    python bench/load_test.py --requests 20 --concurrency 4   # starts its own server
    python bench/load_test.py --probe-streams 32,64,128   # /health and /ready under streams

Without --url it runs `python -m slm_api serve` on a free loopback port (settings from the
environment and .env, as usual), waits for /health, and stops the server at the end; then it
runs the same load against llama.cpp's own llama-server (bench/anchors.py) with N_PARALLEL
slots and N_CTX per slot (the environment's, else 8 and 4096) and prints its summary and the
tokens/s ratio, measured in the same invocation (--no-anchor skips it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    status: int
    latency_s: float
    completion_tokens: int = 0
    ttft_s: float | None = None


@dataclass
class Options:
    url: str
    requests: int
    concurrency: int
    max_tokens: int
    stream: bool
    prompt: str
    model: str | None
    api_key: str | None
    timeout: float
    results: list[Result] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _body(opts: Options, i: int) -> bytes:
    body: dict = {
        "messages": [{"role": "user", "content": f"{opts.prompt} (request {i})"}],
        "max_tokens": opts.max_tokens,
        "temperature": 0.7,
    }
    if opts.model:
        body["model"] = opts.model
    if opts.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def _one(conn: http.client.HTTPConnection, opts: Options, i: int) -> Result:
    headers = {"Content-Type": "application/json"}
    if opts.api_key:
        headers["Authorization"] = f"Bearer {opts.api_key}"
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=_body(opts, i), headers=headers)
    response = conn.getresponse()
    if response.status != 200 or not opts.stream:
        payload = response.read()
        latency = time.perf_counter() - started
        tokens = 0
        if response.status == 200:
            tokens = json.loads(payload)["usage"]["completion_tokens"]
        return Result(response.status, latency, tokens)
    ttft, tokens = None, 0
    for raw in response:  # SSE: one `data: {...}` line per event
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        for choice in event.get("choices", []):
            if ttft is None and choice.get("delta", {}).get("content"):
                ttft = time.perf_counter() - started
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
    return Result(200, time.perf_counter() - started, tokens, ttft)


def _worker(opts: Options, indices: list[int], lock: threading.Lock) -> None:
    parts = urlsplit(opts.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=opts.timeout)
    for i in indices:
        try:
            result = _one(conn, opts, i)
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()  # a broken connection is rebuilt for the next request
            conn = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                              timeout=opts.timeout)
            result = Result(0, float("nan"))
        with lock:
            opts.results.append(result)
    conn.close()


def run(opts: Options) -> dict:
    lock = threading.Lock()
    shares = [list(range(w, opts.requests, opts.concurrency)) for w in range(opts.concurrency)]
    threads = [threading.Thread(target=_worker, args=(opts, s, lock)) for s in shares if s]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok = [r for r in opts.results if r.status == 200]
    latencies = [r.latency_s for r in ok]
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    tokens = sum(r.completion_tokens for r in ok)
    summary = {
        "url": opts.url,
        "requests": opts.requests,
        "concurrency": opts.concurrency,
        "max_tokens": opts.max_tokens,
        "stream": opts.stream,
        "ok": len(ok),
        "errors_by_status": dict(Counter(str(r.status) for r in opts.results if r.status != 200)),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(ok) / wall, 2) if wall else None,
        "latency_p50_s": round(_percentile(latencies, 0.5), 3),
        "latency_p95_s": round(_percentile(latencies, 0.95), 3),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1) if wall else None,
    }
    if ttfts:
        summary["ttft_p50_s"] = round(_percentile(ttfts, 0.5), 3)
        summary["ttft_p95_s"] = round(_percentile(ttfts, 0.95), 3)
    return summary


def _probe_once(url: str, path: str) -> tuple[int, float]:
    # A new connection per probe, as Docker and the kubelet make them.
    parts = urlsplit(url)
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status, time.perf_counter() - started
    except (OSError, http.client.HTTPException):
        return 0, time.perf_counter() - started


def _hold_stream(opts: Options, i: int, stop: threading.Event, statuses: list[int]) -> None:
    parts = urlsplit(opts.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=opts.timeout)
    try:
        conn.request("POST", "/v1/chat/completions", body=_body(opts, i),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        statuses.append(response.status)
        while not stop.is_set() and response.readline():
            pass
    except (OSError, http.client.HTTPException):
        statuses.append(0)
    finally:
        conn.close()  # a stream dropped mid-way: the server aborts its generation


def probe_under_streams(opts: Options, streams: int, seconds: float) -> dict:
    """Open `streams` chat streams, then probe /health and /ready every 50 ms for `seconds`
    while they run; percentiles of probe latency, and how the streams were answered."""
    stop = threading.Event()
    statuses: list[int] = []
    holders = [threading.Thread(target=_hold_stream, args=(opts, i, stop, statuses), daemon=True)
               for i in range(streams)]
    opened = time.perf_counter()
    for t in holders:
        t.start()
    while len(statuses) < streams and time.perf_counter() - opened < 60:
        time.sleep(0.05)  # every stream has its status line: all are held or refused
    refused_in = time.perf_counter() - opened
    latencies: dict[str, list[float]] = {"/health": [], "/ready": []}
    codes: Counter = Counter()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for path, values in latencies.items():
            code, took = _probe_once(opts.url, path)
            codes[f"{path} {code}"] += 1
            values.append(took)
        time.sleep(0.05)
    stop.set()
    for t in holders:
        t.join(timeout=opts.timeout)
    out: dict = {"streams": streams, "stream_status": dict(Counter(map(str, statuses))),
                 "all_answered_s": round(refused_in, 2), "probe_codes": dict(codes)}
    for path, values in latencies.items():
        name = path.strip("/")
        out[f"{name}_p50_ms"] = round(_percentile(values, 0.5) * 1000, 1)
        out[f"{name}_p99_ms"] = round(_percentile(values, 0.99) * 1000, 1)
        out[f"{name}_max_ms"] = round(max(values) * 1000, 1)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} while starting")
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no healthy server at {url} after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="server to test; omitted: start one on a free port")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="stream, and measure TTFT")
    parser.add_argument("--prompt", default="Write one sentence about the sea.")
    parser.add_argument("--model")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY") or None)
    parser.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    parser.add_argument("--no-anchor", action="store_true", help="skip the llama-server run")
    parser.add_argument("--probe-streams", help="comma-separated stream counts: measure probe "
                        "latency while that many streams run (idle first, as the baseline)")
    parser.add_argument("--probe-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")

    proc = None
    url = args.url
    if url is None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "slm_api", "serve", "--host", "127.0.0.1", "--port",
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if proc is not None:
            _wait_healthy(url, proc, args.startup_timeout)
        opts = Options(url.rstrip("/"), args.requests, args.concurrency, args.max_tokens,
                       args.stream, args.prompt, args.model, args.api_key, args.timeout)
        if args.probe_streams:
            opts.stream = True
            counts = [0, *(int(n) for n in args.probe_streams.split(","))]
            for n in counts:
                print(json.dumps(probe_under_streams(opts, n, args.probe_seconds)), flush=True)
            return 0
        summary = run(opts)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    anchor = None
    if args.url is None and not args.no_anchor:
        anchor = _anchor_summary(args)
    if args.json:
        print(json.dumps({**summary, "llama_server": anchor} if anchor else summary))
    else:
        _print(summary)
        if anchor:
            print("\nllama-server, same load:")
            _print(anchor)
            ours, theirs = summary.get("tokens_per_s"), anchor.get("tokens_per_s")
            if ours and theirs:
                print(f"\ntokens/s, ours vs llama-server: {ours / theirs:.0%}")
    return 0 if summary["ok"] == args.requests else 1


def _print(summary: dict) -> None:
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")


def _anchor_summary(args: argparse.Namespace) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from anchors import LlamaServer

    n_parallel = int(os.environ.get("N_PARALLEL", 8))
    n_ctx = int(os.environ.get("N_CTX", 4096))
    with LlamaServer(n_ctx=n_ctx, n_parallel=n_parallel) as server:
        return run(Options(server.url, args.requests, args.concurrency, args.max_tokens,
                           args.stream, args.prompt, None, None, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
