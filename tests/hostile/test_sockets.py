"""Issue 36, class 2: sockets that stall. Through `slm-api serve` (gunicorn, the production
worker), with deadlines of a few seconds: 120 sockets of each stalling kind, from one address,
hold no thread, `/health` answers within 1 s and a chat request is served throughout, and the
server closes each socket at its deadline (408, or EOF for one that sent nothing). A stream
whose client stops reading gives its thread and its slot back after SEND_TIMEOUT_S. A slow but
steady client is still served."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from support.http_server import gunicorn_server
from support.streams import NO_END

from slm_api.config import Settings, SettingsError

DEADLINES = {"HEADER_TIMEOUT_S": 5, "BODY_TIMEOUT_S": 5, "BODY_MIN_RATE": 100,
             "SEND_TIMEOUT_S": 3}
HOLD = 120  # sockets of each kind
CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}

# What an attacker sends before it stops: nothing; half a request line; half the headers (of a
# probe, which the lane would take); full headers and 1 byte of a 1000-byte body, or of a
# chunked one (both then trickled a byte a second); 4900 bytes of a 5000-byte body at once,
# which at BODY_MIN_RATE would buy 49 s more (the pause is what ends it).
STALLS = {
    "nothing": b"",
    "half a request line": b"POST /v1/chat/compl",
    "half the headers": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: appl",
    "a trickled body": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"),
    "a trickled chunked body": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"),
    "most of a body, then a pause": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     b"Content-Type: application/json\r\n"
                                     b"Content-Length: 5000\r\n\r\n" + b" " * 4900),
}
TRICKLED = {"a trickled body": b" ", "a trickled chunked body": b"1\r\n \r\n"}


def _connect(url: str, rcvbuf: int | None = None, mss: int | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if mss:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.connect((parts.hostname, parts.port))
    return sock


def _until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after `within` s)."""
    sock.settimeout(within)
    got = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data
    raise AssertionError(f"still open after {within} s; got {got[:80]!r}")


def _read_reply(sock: socket.socket) -> bytes:
    """One reply with a Content-Length, read to its end (the connection stays open)."""
    sock.settimeout(30)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _probes(url: str) -> None:
    for _ in range(3):
        started = time.monotonic()
        health = requests.get(f"{url}/health", timeout=30)
        assert health.status_code == 200, health.text
        assert time.monotonic() - started < 1.0


def _chat(url: str) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=120)


def _served(chat: requests.Response) -> None:
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["role"] == "assistant"


def _probe_and_chat(url: str) -> None:
    _probes(url)
    _served(_chat(url))


def _trickle(socks: list[socket.socket], byte: bytes, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for sock in socks:
            try:
                sock.send(byte)
            except OSError:
                pass  # closed by the server: what the test waits for


def test_stalled_sockets_of_every_kind_hold_no_thread_and_are_closed(models_dir: Path):
    # 16 request threads and 4 lane threads: before the deadlines, 5 stalled heads held the
    # lane and 16 stalled sockets every request thread, for as long as the client liked.
    with gunicorn_server(models_dir, N_PARALLEL=2, HTTP_THREADS=16, **DEADLINES) as proc:
        held: dict[str, list[socket.socket]] = {}
        stop = threading.Event()
        try:
            for kind, data in STALLS.items():
                held[kind] = [_connect(proc.url) for _ in range(HOLD)]
                for sock in held[kind]:
                    sock.sendall(data)
            opened = time.monotonic()
            for kind, byte in TRICKLED.items():
                threading.Thread(target=_trickle, args=(held[kind], byte, stop),
                                 daemon=True).start()
            _probes(proc.url)
            # The probes were answered, and the chat request arrives, while every stalled socket
            # is still open; the chat may finish later (2 cores shared).
            assert time.monotonic() - opened < DEADLINES["HEADER_TIMEOUT_S"] - 1
            chat = _chat(proc.url)

            answers: dict[str, Counter] = {}
            for kind, socks in held.items():
                replies = [_until_closed(sock, within=30) for sock in socks]
                answers[kind] = Counter(r.split(b"\r\n", 1)[0] for r in replies)
                if kind != "nothing":
                    body = json.loads(replies[0].split(b"\r\n\r\n", 1)[1])
                    assert body["error"]["code"] == "request_timeout"
            # Neither the trickle (1 byte/s, under BODY_MIN_RATE) nor bytes sent early keep a
            # request alive long past its deadline (5 s; 54 s for the paused body if the bytes sent
            # early bought time).
            assert time.monotonic() - opened < DEADLINES["BODY_TIMEOUT_S"] + 30
            _served(chat)
            assert answers == {
                "nothing": Counter({b"": HOLD}),
                **{kind: Counter({b"HTTP/1.1 408 Request Timeout": HOLD})
                   for kind in list(STALLS)[1:]},
            }
            _probe_and_chat(proc.url)
        finally:
            stop.set()
            for socks in held.values():
                for sock in socks:
                    sock.close()


def _stalled_body(path: str, length: int = 100) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % (path.encode(), length))


def _body(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def test_each_family_hears_its_own_envelope_and_a_body_too_large_is_refused_at_once(
        models_dir: Path):
    with gunicorn_server(models_dir, N_PARALLEL=2, **DEADLINES) as proc:
        socks = {name: _connect(proc.url) for name in ("anthropic", "ollama", "too large")}
        try:
            socks["anthropic"].sendall(_stalled_body("/v1/messages"))
            socks["ollama"].sendall(_stalled_body("/api/chat"))
            # Past the route's limit (chat takes images: MAX_MEDIA_REQUEST_BYTES, 32 MiB): 413
            # before any of the body is read, then closed.
            started = time.monotonic()
            socks["too large"].sendall(_stalled_body("/v1/chat/completions", 64 << 20))
            too_large = _until_closed(socks["too large"], within=30)
            assert too_large.startswith(b"HTTP/1.1 413"), too_large[:200]
            assert time.monotonic() - started < DEADLINES["BODY_TIMEOUT_S"]
            assert _body(too_large)["error"]["type"] == "invalid_request_error"

            anthropic = _until_closed(socks["anthropic"], within=30)
            assert anthropic.startswith(b"HTTP/1.1 408")
            assert _body(anthropic)["type"] == "error"
            assert "BODY_TIMEOUT_S" in _body(anthropic)["error"]["message"]
            ollama = _until_closed(socks["ollama"], within=30)
            assert ollama.startswith(b"HTTP/1.1 408")
            assert set(_body(ollama)) == {"error"}
            assert "BODY_TIMEOUT_S" in _body(ollama)["error"]
        finally:
            for sock in socks.values():
                sock.close()


def test_idle_keep_alive_connections_are_closed_and_hold_no_thread(models_dir: Path):
    with gunicorn_server(models_dir, N_PARALLEL=2, HTTP_THREADS=4, **DEADLINES) as proc:
        idle = [_connect(proc.url) for _ in range(HOLD)]
        try:
            for sock in idle:
                sock.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for sock in idle:
                assert _read_reply(sock).startswith(b"HTTP/1.1 200")
            _probe_and_chat(proc.url)
            # gunicorn's keepalive (5 s) ends an idle connection quietly.
            for sock in idle:
                assert _until_closed(sock, within=30) == b""
        finally:
            for sock in idle:
                sock.close()


def test_a_stream_nobody_reads_gives_back_its_thread_and_slot(models_dir: Path):
    # 1 slot, 1 request thread, and a stream whose client never reads: without a send deadline
    # the thread stays blocked in a write forever (and the run with it), and every later
    # request is refused.
    with gunicorn_server(models_dir, N_PARALLEL=1, HTTP_THREADS=1, **DEADLINES) as proc:
        body = json.dumps({**CHAT, "stream": True, "max_tokens": 2000,
                           "logit_bias": NO_END}).encode()
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        # A small window and segment size, as a client may ask for: the server's buffers for
        # this connection fill after some 40 KB, not 2 MB (the loopback's).
        with _connect(proc.url, rcvbuf=1024, mss=88) as stalled:
            stalled.sendall(head + body)
            deadline = time.monotonic() + 60
            while requests.get(f"{proc.url}/health", timeout=30).json()["requests_in_flight"] < 1:
                assert time.monotonic() < deadline, "the stream never started"
                time.sleep(0.2)
            busy = requests.post(f"{proc.url}/v1/chat/completions", json=CHAT, timeout=30)
            assert busy.status_code == 503, busy.text  # the one thread is the stream's
            _probes(proc.url)
            # The client never reads; once the buffers are full, the server gives up on the
            # write after SEND_TIMEOUT_S and the generation ends. (Probes go on answering; their
            # latency is asserted above, not in this minute-long poll on 2 shared cores.)
            deadline = time.monotonic() + 240
            while requests.get(f"{proc.url}/health", timeout=30).json()["requests_in_flight"]:
                assert time.monotonic() < deadline, "the unread stream still holds its slot"
                time.sleep(1)
            _probe_and_chat(proc.url)
            # What was sent before the deadline, then the server's close.
            assert _until_closed(stalled, within=30).startswith(b"HTTP/1.1 200")


def test_a_slow_but_steady_client_is_served(models_dir: Path):
    # A phone on a bad link: its head takes 2 s (under HEADER_TIMEOUT_S) and its 1500-byte
    # body 6 s, past the 5 s grace but above BODY_MIN_RATE (250 bytes/s against 100).
    with gunicorn_server(models_dir, N_PARALLEL=2, **DEADLINES) as proc:
        body = json.dumps(CHAT).encode().ljust(1500)
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        with _connect(proc.url) as sock:
            for i in range(0, len(head), len(head) // 4 + 1):
                sock.sendall(head[i:i + len(head) // 4 + 1])
                time.sleep(0.5)
            for i in range(0, len(body), 100):
                sock.sendall(body[i:i + 100])
                time.sleep(0.4)
            reply = _until_closed(sock, within=120)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["object"] == "chat.completion"

        # A chunked body, its chunk-size lines and data split across sends, and a trailer:
        # gathered to its end before a thread takes it.
        data = json.dumps(CHAT).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 7]), data[i:i + 7])
                          for i in range(0, len(data), 7)) + b"0\r\nX-Trailer: 1\r\n\r\n"
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        with _connect(proc.url) as sock:
            sock.sendall(head)
            for i in range(0, len(chunks), 5):
                sock.sendall(chunks[i:i + 5])
                time.sleep(0.01)
            reply = _until_closed(sock, within=120)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


@pytest.mark.fast
@pytest.mark.parametrize("name", ["HEADER_TIMEOUT_S", "BODY_TIMEOUT_S", "SEND_TIMEOUT_S",
                                  "BODY_MIN_RATE"])
@pytest.mark.parametrize("value", ["0", "-1", "inf"])
def test_a_deadline_must_be_positive_and_finite(name: str, value: str):
    if name == "BODY_MIN_RATE" and value == "inf":
        value = "x"  # an int setting
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value}, dotenv_path=None)
