"""/health and a chat request while N sockets of each stalling kind are held open (issue 36):
connect and send nothing, half a request line, half the headers, a body trickled a byte a
second (Content-Length, chunked). Prints probe latency (p50, p99, max) and the chat's latency
idle and under each N, with the ratio to idle, measured in the same invocation. Standard
library only.

    python bench/stalled_sockets.py --stalled 120,480   # starts its own `slm-api serve`
    python bench/stalled_sockets.py --url http://127.0.0.1:8000 --stalled 120

Without --url it runs `python -m slm_api serve` on a free loopback port (settings from the
environment and .env, as usual) and stops it at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import threading
import time
from urllib.parse import urlsplit

from server import Server

STALLS = [
    b"",
    b"POST /v1/chat/compl",
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: appl",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
]
CHAT = json.dumps({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})


def _timed(url: str, method: str, path: str, body: str | None = None) -> tuple[int, float]:
    parts = urlsplit(url)
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        status = conn.getresponse().status
        conn.close()
    except OSError:
        status = 0  # no answer within 30 s
    return status, time.perf_counter() - started


def measure(url: str, stalled: int, probes: int) -> dict:
    parts = urlsplit(url)
    held: list[socket.socket] = []
    stop = threading.Event()
    try:
        for data in STALLS:
            for _ in range(stalled):
                sock = socket.create_connection((parts.hostname, parts.port))
                sock.sendall(data)
                held.append(sock)

        def trickle() -> None:
            while not stop.wait(1.0):
                for sock in held[3 * stalled:]:
                    try:
                        sock.send(b" ")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()
        took, statuses = [], []
        for _ in range(probes):
            status, seconds = _timed(url, "GET", "/health")
            statuses.append(status)
            took.append(seconds)
            time.sleep(0.05)
        chat_status, chat_s = _timed(url, "POST", "/v1/chat/completions", CHAT)
    finally:
        stop.set()
        for sock in held:
            sock.close()
    took.sort()
    return {"stalled_per_kind": stalled, "health_ok": statuses.count(200), "probes": probes,
            "p50_ms": statistics.median(took) * 1e3,
            "p99_ms": took[min(len(took) - 1, int(0.99 * len(took)))] * 1e3,
            "max_ms": took[-1] * 1e3, "chat_status": chat_status, "chat_s": chat_s}


def _measure_all(url: str, args: argparse.Namespace) -> list[dict]:
    return [measure(url, n, args.probes) for n in (0, *(int(n) for n in args.stalled.split(",")))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="server to test; omitted: start one on a free port")
    parser.add_argument("--stalled", default="120", help="comma-separated sockets per kind")
    parser.add_argument("--probes", type=int, default=40)
    args = parser.parse_args(argv)
    if args.url:
        rows = _measure_all(args.url, args)
    else:
        with Server(N_CTX=4096, MAX_QUEUE=64) as server:  # slm-api serve's defaults
            rows = _measure_all(server.url, args)
    idle = rows[0]
    print(f"{'stalled/kind':>12} {'health ok':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'chat':>5} {'chat s':>7} {'p99/idle':>9} {'chat/idle':>10}")
    for r in rows:
        print(f"{r['stalled_per_kind']:>12} {r['health_ok']:>4}/{r['probes']:<5} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} "
              f"{r['chat_status']:>5} {r['chat_s']:>7.2f} {r['p99_ms'] / idle['p99_ms']:>9.1f}"
              f" {r['chat_s'] / idle['chat_s']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
