"""A request's bytes gathered on the worker's selector before it gets a thread, and the deadlines
on every socket read and write after that (issue 36).

Why on the selector: a thread blocked in recv() is held for as long as the client likes, so five
sockets that stopped half-way through their headers held the probe lane (4 threads) and 120 held
the main pool, no key needed. A socket waiting on the selector costs a file descriptor and a
buffer, not a thread. So the worker hands a connection to a thread only once its head and (up to
MAX_REQUEST_BYTES) its body are complete, and a thread never waits on a client before it
answers. What a thread still reads itself (a body behind `Expect: 100-continue`, one over
MAX_REQUEST_BYTES, a head over 64 KiB) and everything it writes go through a `TimedSocket` held
to the same deadlines:

- the head: HEADER_TIMEOUT_S from the connection's accept (or from the first byte of a kept-alive
  connection's next request) to the blank line that ends it;
- the body: BODY_TIMEOUT_S from the end of the head, plus one second per BODY_MIN_RATE bytes
  received, so a body must keep arriving at that average rate once its grace is spent; and no
  gap between two reads longer than BODY_TIMEOUT_S, so bytes sent early buy no long stall (a
  body sent fast to within a byte of 1 MiB would otherwise hold its buffer for 17 minutes);
- each write (a whole reply, or one frame of a stream): SEND_TIMEOUT_S, so a client that stops
  reading a stream frees its thread and (through the closed generator) its slot.

This module knows sockets and bytes, not the worker: worker.py drives it.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from slm_api.config import Settings
from slm_api.errors import ClientTooSlow

# A head longer than this is left to the thread's parser (its own limits refuse a head too
# large), still under the head's deadline: gathering stays a small buffer per connection.
MAX_GATHERED_HEAD = 64 * 1024
_HEAD_END = b"\r\n\r\n"
_HEADER = re.compile(rb"\r\n(content-length|transfer-encoding|expect)[ \t]*:[ \t]*([^\r\n]*)",
                     re.IGNORECASE)
_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (/[^ \r\n]*) HTTP/1\.[01]\r\n")
# A chunk-size line longer than this is garbage (the parser refuses it on the thread).
_MAX_CHUNK_LINE = 1024

log = logging.getLogger("gunicorn.error")


@dataclass(frozen=True)
class Limits:
    """The deadlines of docs/security-and-operations.md ("Limits on client input")."""

    header_timeout_s: float
    body_timeout_s: float
    body_min_rate: int
    send_timeout_s: float
    max_body: int  # bodies up to this size are gathered before a thread takes the request

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.header_timeout_s, settings.body_timeout_s, settings.body_min_rate,
                   settings.send_timeout_s, settings.max_request_bytes)


class Intake:
    """One request as it arrives: gathered on the selector, then counted on the thread."""

    def __init__(self, limits: Limits, now: float, data: bytes = b"") -> None:
        self.limits = limits
        self.started = now
        self.buf = bytearray()
        self.seen = 0  # every byte of this request so far, gathered or read by the thread
        self.head_end = -1  # where the body starts, once the blank line has arrived
        self.body_started = 0.0
        self.last_at = now  # when the last byte arrived
        self.body_len = 0  # body bytes to gather before a thread takes the request
        # A chunked body: where the next chunk (or trailer line) starts, its size so far, and
        # where it ends once the last chunk and the trailers are in (-1: not yet).
        self.chunked = False
        self._chunk_at = 0
        self._chunked_size = 0
        self._chunked_end = -1
        self.thread_reads = False  # the rest is the thread's to read (under these deadlines)
        if data:
            self.feed(data, now)

    @property
    def head(self) -> bytes:
        return bytes(self.buf[: self.head_end]) if self.head_end >= 0 else bytes(self.buf)

    @property
    def complete(self) -> bool:
        """Whether a thread may take the request: it will not wait on the client to begin."""
        if self.thread_reads:
            return True
        if self.chunked:
            return self._chunked_end >= 0
        return self.head_end >= 0 and len(self.buf) >= self.head_end + self.body_len

    def feed(self, data: bytes, now: float) -> None:
        """Bytes read on the selector."""
        scan_from = max(0, len(self.buf) - len(_HEAD_END) + 1)
        self.buf += data
        self.seen += len(data)
        self.last_at = now
        if self.head_end < 0:
            end = self.buf.find(_HEAD_END, scan_from)
            if end >= 0:
                self.head_end = end + len(_HEAD_END)
                self.body_started = now
                self._plan_body(self.head)
            elif len(self.buf) > MAX_GATHERED_HEAD:
                self._leave_to_thread(now)
        if self.chunked and not self.thread_reads:
            self._scan_chunks()

    def count(self, size: int, now: float) -> None:
        """Bytes the thread read itself."""
        self.seen += size
        self.last_at = now

    def take(self) -> bytes:
        """What was gathered, for the thread's parser; the deadlines go on counting."""
        data, self.buf = bytes(self.buf), bytearray()
        return data

    def deadline(self) -> float:
        """When the next byte this request still owes is overdue (time.monotonic())."""
        if self.head_end < 0:
            return self.started + self.limits.header_timeout_s
        received = self.seen - self.head_end
        at_rate = (self.body_started + self.limits.body_timeout_s
                   + received / self.limits.body_min_rate)
        return min(at_rate, self.last_at + self.limits.body_timeout_s)

    def _plan_body(self, head: bytes) -> None:
        found: dict[bytes, list[bytes]] = {}
        for name, value in _HEADER.findall(head):
            found.setdefault(name.lower(), []).append(value.strip())
        lengths = found.get(b"content-length", [])
        codings = found.get(b"transfer-encoding", [])
        if b"expect" in found or len(lengths) + len(codings) > 1:
            # (Both headers, or two of one: the parser refuses the request on the thread.)
            self.thread_reads = True
        elif codings:
            self.chunked = codings[0].lower() == b"chunked"
            self.thread_reads = not self.chunked
            self._chunk_at = self.head_end
        elif lengths:
            if not lengths[0].isdigit() or int(lengths[0]) > self.limits.max_body:
                self.thread_reads = True  # the parser's 400, or the app's 413, without reading
            else:
                self.body_len = int(lengths[0])

    def _scan_chunks(self) -> None:
        """Find where a chunked body ends; anything odd, or a body over the limit, is left to
        the thread's parser (which refuses it) and the app (413)."""
        while self._chunked_end < 0:
            line_end = self.buf.find(b"\r\n", self._chunk_at)
            if line_end < 0:
                self.thread_reads = len(self.buf) - self._chunk_at > _MAX_CHUNK_LINE
                return
            line = bytes(self.buf[self._chunk_at:line_end])
            if self._chunked_size < 0:  # past the last chunk: trailer lines, then a blank one
                if not line:
                    self._chunked_end = line_end + 2
                self._chunk_at = line_end + 2
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.thread_reads = True
                return
            if size == 0:
                self._chunked_size = -1
                self._chunk_at = line_end + 2
                continue
            if self._chunked_size + size > self.limits.max_body:
                self.thread_reads = True
                return
            if len(self.buf) < line_end + 2 + size + 2:
                return  # this chunk is still arriving
            self._chunked_size += size
            self._chunk_at = line_end + 2 + size + 2

    def _leave_to_thread(self, now: float) -> None:
        # Where this head ends is the parser's to find; the rest of the request counts as body.
        self.thread_reads = True
        self.head_end = self.seen
        self.body_started = now


class TimedSocket(socket.socket):
    """A client's socket whose reads keep to the request's deadlines and whose writes each end
    within a send deadline; outside a request (`intake` None) a plain socket."""

    intake: Intake | None = None
    send_timeout_s: float | None = None

    @classmethod
    def adopt(cls, sock: socket.socket) -> TimedSocket:
        """The same connection (file descriptor) as a TimedSocket, non-blocking as accepted."""
        timed = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        timed.setblocking(False)
        return timed

    def recv(self, bufsize: int, flags: int = 0) -> bytes:  # type: ignore[override]
        intake = self.intake
        if intake is None:
            return super().recv(bufsize, flags)
        outer = self.gettimeout()  # a caller's own bound (gunicorn's body drain) still holds
        remaining = intake.deadline() - time.monotonic()
        if remaining <= 0:
            raise ClientTooSlow(_too_slow(intake))
        super().settimeout(remaining if outer is None else min(outer, remaining))
        try:
            data = super().recv(bufsize, flags)
        except TimeoutError:
            if time.monotonic() >= intake.deadline():
                raise ClientTooSlow(_too_slow(intake)) from None
            raise
        finally:
            super().settimeout(outer)
        intake.count(len(data), time.monotonic())
        return data

    def sendall(self, data: Any, flags: int = 0) -> None:  # type: ignore[override]
        if self.send_timeout_s is None:
            return super().sendall(data, flags)
        outer = self.gettimeout()
        # sendall's timeout bounds the whole call (Python >= 3.5), not each partial send.
        super().settimeout(self.send_timeout_s)
        try:
            super().sendall(data, flags)
        except TimeoutError:
            log.info("closing %s: one write waited %g s for the client to take it"
                     " (SEND_TIMEOUT_S)", _peer(self), self.send_timeout_s)
            # As a broken pipe: gunicorn then closes the connection quietly, and the app's
            # generator is closed, which aborts the generation and frees its slot.
            raise BrokenPipeError(errno.EPIPE, "send deadline passed") from None
        finally:
            super().settimeout(outer)


def request_target(data: bytes) -> tuple[str, str] | None:
    """The method and path of a request line that has arrived whole, else None."""
    match = _REQUEST_LINE.match(data)
    return (match[1].decode(), match[2].decode("latin-1")) if match else None


def too_slow(intake: Intake) -> ClientTooSlow:
    return ClientTooSlow(_too_slow(intake))


def _too_slow(intake: Intake) -> str:
    if intake.head_end < 0:
        return (f"the request's headers did not arrive within {intake.limits.header_timeout_s:g}"
                " s (HEADER_TIMEOUT_S)")
    return (f"the request body stalled for {intake.limits.body_timeout_s:g} s, or arrived slower"
            f" than {intake.limits.body_min_rate} bytes/s after a grace of"
            f" {intake.limits.body_timeout_s:g} s (BODY_TIMEOUT_S, BODY_MIN_RATE)")


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "a client"
    return f"{host}:{port}"
