"""The gunicorn worker: gthread with a probe lane, admission at the door, and a drain on SIGTERM.

Why not plain gthread with more threads: a thread is held for the whole life of a stream, so
however many there are, enough streams hold all of them and a probe then waits in the pool's
queue behind them (3.6 s with 48 streams and 32 threads, issue 13). Why not gevent: the engine's
decode loop is a real thread calling into llama.cpp, and monkey-patching would turn every lock it
shares with the HTTP threads into a greenlet primitive. So this worker keeps gthread and changes
only where a connection goes once its first bytes are readable:

- `GET /health`, `/ready`, `/metrics` go to a small pool of their own (the probe lane), which
  streams never occupy, so they answer in milliseconds however busy the main pool is;
- anything else goes to the main pool if one of its threads is free, else it is answered at
  once on the lane with 503 + Retry-After (no unbounded wait in a queue);
- SIGTERM starts the app's drain (see lifecycle.py) while the worker keeps accepting, so probes
  still answer (`/ready` says 503 "draining") and new work is refused with 503; the worker stops
  when the app is idle or the drain timeout has passed.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import threading
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from slm_api.errors import APIError

# The request line of a probe; the lane never serves anything else.
_PROBE = re.compile(rb"^GET /(?:health|ready|metrics)(?:[ ?]|$)")
LANE_THREADS = 4
# What _peek says of a connection: the client closed it, or its head cannot be seen (the main
# pool takes those, as plain gthread would).
_CLOSED = b""
_UNSEEN = b"?"
# A refused request's body is read (so the reply is not lost to a TCP reset) only this far.
_MAX_DRAIN_BYTES = 1 << 20


def _busy_response() -> bytes:
    body = json.dumps(APIError(
        503, "server busy: every request thread is serving a request; retry shortly",
        code="server_busy",
    ).body()).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class ProbeLaneWorker(ThreadWorker):
    """gthread, plus a lane for probes and refusals; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lane: futures.ThreadPoolExecutor | None = None
        self.busy = 0  # main-pool requests submitted and not finished (main thread only)
        self.draining = False

    def init_process(self) -> None:
        self.lane = futures.ThreadPoolExecutor(LANE_THREADS, thread_name_prefix="probe-lane")
        super().init_process()

    # -- dispatch (every call runs on the worker's main thread) -------------------------------

    def enqueue_req(self, conn: Any) -> None:
        head = self._peek(conn)
        if head is None:  # nothing to read yet: wait on the poller, not in a thread
            self._wait_readable(conn)
            return
        if head == _CLOSED or _PROBE.match(head):
            # A keep-alive connection the client closed needs no request thread: counting it
            # would refuse a real request that arrives in the instant before it is reaped.
            self._submit(self.lane, self.handle, conn, counted=False)
        elif self.busy >= self.cfg.threads:
            self._submit(self.lane, self._refuse, conn, counted=False)
        else:
            self._submit(self.tpool, self.handle, conn, counted=True)

    def _peek(self, conn: Any) -> bytes | None:
        if self.cfg.is_ssl:
            return _UNSEEN  # encrypted bytes say nothing: such a server has no lane
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            return _UNSEEN  # the next request is already read into the parser's buffer
        try:
            return conn.sock.recv(32, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"" at EOF
        except BlockingIOError:
            return None
        except OSError:
            return _UNSEEN  # let the main path meet the error and close the connection

    def _wait_readable(self, conn: Any) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + max(self.cfg.keepalive, 1)
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))

    def _submit(self, pool: Any, fn: Any, conn: Any, *, counted: bool) -> None:
        if counted:
            self.busy += 1
        fs = pool.submit(fn, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self._done, conn, fut, counted))

    def _done(self, conn: Any, fut: futures.Future, counted: bool) -> None:
        if counted:
            self.busy -= 1
        self.finish_request(conn, fut)

    # -- the lane's refusal (runs on a lane thread) -------------------------------------------

    def _refuse(self, conn: Any) -> bool:
        try:
            conn.init()
            req = next(conn.parser)
            if req is not None:
                length = getattr(req.body.reader, "length", None)
                if length is not None and length <= _MAX_DRAIN_BYTES:
                    req.body.read()
            conn.sock.sendall(_busy_response())
        except Exception:  # the client went away or sent garbage: nothing to answer
            self.log.debug("refusing a request failed", exc_info=True)
        return False

    # -- drain --------------------------------------------------------------------------------

    def handle_exit(self, sig: Any, frame: Any) -> None:
        # Imported here: the arbiter imports this module before any app (or Flask) is loaded.
        from slm_api.plumbing.lifecycle import get_lifecycle

        lifecycle = get_lifecycle(self.wsgi)
        if lifecycle is None or not self.alive:
            super().handle_exit(sig, frame)
            return
        if self.draining:
            return
        self.draining = True
        self.log.info("SIGTERM: draining (at most %.0f s)", lifecycle.drain_timeout_s)
        threading.Thread(target=self._drain, args=(lifecycle,), name="slm-drain",
                         daemon=True).start()

    def _drain(self, lifecycle: Any) -> None:
        try:
            lifecycle.drain()
        finally:
            # The worker's own graceful stop (close listeners, finish open connections) runs on
            # the main thread; wake it through its method queue.
            self.method_queue.defer(self._stop)

    def _stop(self) -> None:
        self.alive = False
