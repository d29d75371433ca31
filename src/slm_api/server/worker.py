"""The gunicorn worker: gthread with a probe lane, admission at the door, and a drain on SIGTERM.

Why not plain gthread with more threads: a thread is held for the whole life of a stream, so
however many there are, enough streams hold all of them and a probe then waits in the pool's
queue behind them (3.6 s with 48 streams and 32 threads, issue 13). Why not gevent: the engine's
decode loop is a real thread calling into llama.cpp, and monkey-patching would turn every lock it
shares with the HTTP threads into a greenlet primitive. So this worker keeps gthread and changes
when and where a connection goes to a thread:

- not before its request has arrived: the head and the body are gathered on the selector under
  deadlines (intake.py), so a client that stalls holds no thread, and every later read and write
  on a thread has a deadline too (issue 36);
- `GET /health`, `/ready`, `/metrics` go to a small pool of their own (the probe lane), which
  streams never occupy, so they answer in milliseconds however busy the main pool is;
- anything else goes to the main pool if one of its threads is free, else it is answered at
  once from the main loop with 503 + Retry-After (no unbounded wait in a queue);
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
from http import HTTPStatus
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from slm_api.config import Settings
from slm_api.errors import APIError, SlmError
from slm_api.server.intake import Intake, Limits, TimedSocket, request_target, too_slow

# The request line of a probe; the lane never serves anything else.
_PROBE = re.compile(rb"^GET /(?:health|ready|metrics)(?:[ ?]|$)")
LANE_THREADS = 4
# A probe's reply is a few KB: a client that takes none of it in this long is no probe, and
# must not hold one of the lane's 4 threads for SEND_TIMEOUT_S.
_LANE_SEND_TIMEOUT_S = 2.0
# A closed connection's unread bytes are drained (so the kernel sends FIN, not an RST that can
# destroy the reply still in flight) this long and this far at most, on the selector.
_LINGER_S = 2.0
_LINGER_BYTES = 1 << 20
_RECV = 64 * 1024
_DRAIN_ON_THREAD_S = 0.05
# Deadlines are checked this often (the selector wakes at least once a second anyway).
_SWEEP_S = 0.25


def _busy() -> APIError:
    return APIError(503, "server busy: every request thread is serving a request; retry shortly",
                    code="server_busy")


def _http_reply(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("connection", "content-length")]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _plain_reply(exc: SlmError) -> bytes:
    """`exc` in the OpenAI envelope, where no route (or no app) can say which family's."""
    headers = [("Content-Type", "application/json"), *exc.headers.items()]
    return _http_reply(exc.status, headers, json.dumps(exc.body()).encode())


class ProbeLaneWorker(ThreadWorker):
    """gthread, plus a lane for probes, whole requests before threads, and socket deadlines;
    see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lane: futures.ThreadPoolExecutor | None = None
        self.busy = 0  # main-pool requests submitted and not finished (main thread only)
        self.draining = False
        self.limits: Limits | None = None
        # Connections on the selector (main thread only): gathering a request (given up at its
        # intake's deadline), or lingering after their last reply (until the time kept here).
        self.gathering: dict[Any, None] = {}
        self.lingering: dict[Any, float] = {}
        self._next_sweep = 0.0

    def init_process(self) -> None:
        # The deadlines come from the environment and .env the app reads too (`slm-api serve`
        # and bare `gunicorn slm_api.app:app` alike); the worker needs them from its first
        # accept, whatever app object it was handed.
        self.limits = Limits.from_settings(Settings.from_env())
        self.lane = futures.ThreadPoolExecutor(LANE_THREADS, thread_name_prefix="probe-lane")
        super().init_process()

    # -- gathering a request (every call runs on the worker's main thread) --------------------

    def enqueue_req(self, conn: Any) -> None:
        if self.cfg.is_ssl:  # encrypted bytes say nothing: such a server has no lane
            self._dispatch_unseen(conn)
            return
        if not isinstance(conn.sock, TimedSocket):
            conn.sock = TimedSocket.adopt(conn.sock)
        intake = getattr(conn, "intake", None)
        if intake is None:
            # A body drain may have read ahead into this request: those bytes come first.
            ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
            intake = conn.intake = Intake(self.limits, time.monotonic(), ahead)
        if not self._gather(conn, intake):
            self.nr_conns -= 1
            conn.close()
        elif intake.complete:
            self._dispatch(conn, intake)
        else:
            self.gathering[conn] = None
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self._on_gathering_readable, conn))

    def _gather(self, conn: Any, intake: Intake) -> bool:
        """Read what has arrived, without waiting; False: the client closed or failed."""
        while not intake.complete:
            try:
                data = conn.sock.recv(_RECV, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False  # half a request, then EOF: no one is left to answer
            intake.feed(data, time.monotonic())
        return True

    def _on_gathering_readable(self, conn: Any, sock: Any) -> None:
        self.poller.unregister(sock)
        del self.gathering[conn]
        self.enqueue_req(conn)

    def _dispatch(self, conn: Any, intake: Intake) -> None:
        if _PROBE.match(intake.head) and not intake.thread_reads:
            self._submit(self.lane, self.handle, conn, counted=False)
        elif self.busy >= self.cfg.threads:
            # Refused here, with no thread: the lane stays the probes' alone.
            conn.intake = None
            self._send_nowait(conn, self._error_reply(intake, _busy()))
            self.nr_conns -= 1
            self._linger(conn)
        else:
            self._submit(self.tpool, self.handle, conn, counted=True)

    def _dispatch_unseen(self, conn: Any) -> None:
        if self.busy >= self.cfg.threads:
            self._submit(self.lane, self._refuse, conn, counted=False)
        else:
            self._submit(self.tpool, self.handle, conn, counted=True)

    def _submit(self, pool: Any, fn: Any, conn: Any, *, counted: bool) -> None:
        if counted:
            self.busy += 1
        fs = pool.submit(fn, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self._done, conn, fut, counted))

    def _done(self, conn: Any, fut: futures.Future, counted: bool) -> None:
        if counted:
            self.busy -= 1
        if not fut.cancelled() and fut.exception() is None and fut.result():
            self.finish_request(conn, fut)  # kept alive: back on the poller
            return
        # gunicorn would linger on this (the main) thread for up to 2 s per connection, which a
        # client that never closes turns into a stalled selector; the lingering is polled here.
        self.nr_conns -= 1
        self._linger(conn)

    # -- deadlines on the selector -------------------------------------------------------------

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_S
        for conn in [c for c in self.gathering if c.intake.deadline() <= now]:
            self._unregister(conn)
            del self.gathering[conn]
            self.nr_conns -= 1
            if conn.intake.seen:
                self._send_nowait(conn, self._error_reply(conn.intake, too_slow(conn.intake)))
                self._linger(conn)  # bytes may still be on their way: no reset over the 408
            else:
                conn.close()  # said nothing at all: nothing to answer
        for conn in [c for c, until in self.lingering.items() if until <= now]:
            self._unregister(conn)
            del self.lingering[conn]
            conn.close()

    def _linger(self, conn: Any) -> None:
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            conn.close()
            return
        conn.lingered = 0
        self.lingering[conn] = time.monotonic() + _LINGER_S
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self._on_lingering_readable, conn))

    def _on_lingering_readable(self, conn: Any, sock: Any) -> None:
        while conn.lingered < _LINGER_BYTES:
            try:
                data = sock.recv(_RECV, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                break
            if not data:
                break
            conn.lingered += len(data)
        self.poller.unregister(sock)
        del self.lingering[conn]
        conn.close()

    def _unregister(self, conn: Any) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _error_reply(self, intake: Intake, exc: SlmError) -> bytes:
        """`exc` in the envelope of the route the request names (Anthropic's, Ollama's, ...),
        from the app's own error handling; OpenAI's where the request line is not whole."""
        target = request_target(bytes(intake.buf[:8192]))
        if target is not None and self._flask_app() is not None:
            from slm_api.api.core.errors import error_reply

            try:
                reply = error_reply(self._flask_app(), *target, exc)
                return _http_reply(reply.status_code, list(reply.headers.items()),
                                   reply.get_data())
            except Exception:  # a path the router cannot even parse: the plain envelope
                self.log.debug("no envelope for %r", target, exc_info=True)
        return _plain_reply(exc)

    def _flask_app(self) -> Any:
        from flask import Flask

        return self.wsgi if isinstance(self.wsgi, Flask) else None

    @staticmethod
    def _send_nowait(conn: Any, data: bytes) -> None:
        # A few hundred bytes into a socket with nothing else queued: they fit its buffer, and
        # if they do not, the client is not reading anyway.
        try:
            conn.sock.send(data, socket.MSG_DONTWAIT)
        except OSError:
            pass

    # -- on a thread ------------------------------------------------------------------------

    def handle(self, conn: Any) -> Any:
        intake = getattr(conn, "intake", None)
        if intake is None:  # TLS: gunicorn reads as it always did
            return super().handle(conn)
        sock = conn.sock
        sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(intake.take())
        lane = threading.current_thread().name.startswith("probe-lane")
        sock.intake = intake
        sock.send_timeout_s = min(self.limits.send_timeout_s, _LANE_SEND_TIMEOUT_S) if lane \
            else self.limits.send_timeout_s
        try:
            return super().handle(conn)
        finally:
            sock.intake = None
            conn.intake = None

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        # gunicorn drains a body the app left unread (one refused with 413, say) on this thread
        # for up to 5 s, which a client sending it slowly turns into a held thread. What has
        # arrived is drained here; for the rest the connection closes and lingers on the
        # selector.
        if not keepalive:
            return False
        return bool(conn.parser.finish_body(deadline=time.monotonic() + _DRAIN_ON_THREAD_S))

    def _refuse(self, conn: Any) -> bool:
        """The lane's refusal of a TLS request (its head is read on the thread)."""
        try:
            conn.init()
            req = next(conn.parser)
            if req is not None:
                length = getattr(req.body.reader, "length", None)
                if length is not None and length <= _LINGER_BYTES:
                    req.body.read()
            conn.sock.sendall(_plain_reply(_busy()))
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
