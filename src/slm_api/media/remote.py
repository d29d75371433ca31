"""Remote images (`http(s)` URLs in image parts) fetched into data URLs before a Turn is built,
only where the operator allows it (REMOTE_IMAGE_HOSTS; empty: never).

A URL a client sends makes this server open a connection: without care, to anything the server
can reach (its own admin routes on 127.0.0.1, a cloud metadata service on 169.254.169.254, the
LAN). So:
- the host must be one the operator listed (`images.example.com`, `*.example.com`, or `*`);
- every address the name resolves to must be public (not loopback, private, link-local,
  multicast, reserved, CGNAT...), and the connection goes to one of those checked addresses and
  no other (the name is not resolved again: no DNS rebinding between the check and the
  connect), and the peer the socket is connected to is checked once more;
- a redirect is a new URL: each hop is checked the same way, at most MAX_REDIRECTS of them;
- the whole fetch (the name's lookup, every hop, every read) ends within
  REMOTE_IMAGE_TIMEOUT_S, and one request's fetches share that deadline (its images are
  fetched in turn on its thread: 16 hosts each answering just in time held it 16 x), the body within
  MAX_IMAGE_BYTES (a Content-Length above it is refused before the body is read), and the reply
  must say it is an image and be one (magic bytes).
REMOTE_IMAGE_ALLOW_PRIVATE lifts the address rule for a LAN operator whose images live on the
LAN; the host list still applies.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from slm_api.errors import APIError
from slm_api.media.inline import data_url, image_type

MAX_REDIRECTS = 3
_READ = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class RemotePolicy:
    hosts: tuple[str, ...]  # REMOTE_IMAGE_HOSTS
    allow_private: bool  # REMOTE_IMAGE_ALLOW_PRIVATE
    timeout_s: float  # REMOTE_IMAGE_TIMEOUT_S, for the whole fetch
    max_bytes: int  # MAX_IMAGE_BYTES

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for entry in self.hosts:
            entry = entry.lower().rstrip(".")
            if entry == "*" or entry == host or (
                    entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False


def address_allowed(address: str, allow_private: bool) -> bool:
    """Whether a connection to `address` may be made for a client's URL."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one is where the packets go: mapped, 6to4
        # (2002:7f00:1:: reaches 127.0.0.1 through a 6to4 relay or the host's own tunnel) or
        # Teredo's client; each must pass as itself.
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return address_allowed(str(inner), allow_private)
        if ip.is_site_local and not allow_private:
            return False  # fec0::/10, deprecated but still routed on some LANs
    if ip.is_multicast or ip.is_unspecified:
        return False  # never a server, LAN or not
    if allow_private:
        return True
    return ip.is_global and not (ip.is_loopback or ip.is_link_local or ip.is_private
                                 or ip.is_reserved)


def fetch_image(url: str, policy: RemotePolicy, *, param: str,
                deadline: float | None = None) -> str:
    """The image at `url` as a data URL, or an APIError naming `param` saying why not. The
    fetch ends by `deadline` (time.monotonic()), by default REMOTE_IMAGE_TIMEOUT_S from now; a
    request's fetches pass the one deadline of its first."""
    if not policy.hosts:
        raise APIError(400, f"{param}: this server does not fetch remote images (the operator "
                       "has not set REMOTE_IMAGE_HOSTS); send the image inline as a base64 "
                       "data: URL", param=param, code="remote_images_disabled")
    if deadline is None:
        deadline = time.monotonic() + policy.timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, body = _get(url, policy, deadline, param)
        if status in _REDIRECTS and headers.get("location"):
            url = urljoin(url, headers["location"])
            continue
        if status != 200:
            raise APIError(400, f"{param}: fetching the image answered HTTP {status}",
                           param=param, code="image_fetch_failed")
        claimed = headers.get("content-type", "").split(";")[0].strip().lower()
        if not claimed.startswith("image/"):
            raise APIError(400, f"{param}: the URL answered {claimed or 'no content type'}, "
                           "not an image", param=param, code="invalid_image")
        mime = image_type(body)
        if mime is None:
            raise APIError(400, f"{param}: the URL's body is not a PNG, JPEG, WebP or GIF "
                           "image", param=param, code="invalid_image")
        return data_url(mime, base64.b64encode(body).decode("ascii"))
    raise APIError(400, f"{param}: more than {MAX_REDIRECTS} redirects", param=param,
                   code="image_fetch_failed")


def _resolve(host: str, port: int, policy: RemotePolicy, deadline: float, param: str) -> str:
    """One address to connect to, once every address `host` resolves to has been checked: a
    name with one private address among public ones is refused (the resolver might hand that
    one to the next lookup)."""
    infos = _lookup(host, port, deadline, param)
    addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if not address_allowed(a, policy.allow_private)]
    if refused or not addresses:
        raise _private(param, host)
    return addresses[0]


def _lookup(host: str, port: int, deadline: float, param: str) -> list[Any]:
    """getaddrinfo within the deadline. It takes no timeout, and under `*` the name's DNS
    server is the client's to choose: one that never answers held the request for the
    resolver's own retries. The lookup runs on a daemon thread the request stops waiting for;
    that thread ends with the resolver's timeout."""
    found: list[Any] = []

    def look() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            found.append(exc)

    thread = threading.Thread(target=look, name="image-dns", daemon=True)
    thread.start()
    thread.join(_remaining(deadline, param))
    if not found:
        raise _timeout(param)
    if isinstance(found[0], BaseException):
        raise APIError(400, f"{param}: the image host {host!r} does not resolve", param=param,
                       code="image_fetch_failed")
    return found[0]


def _timeout(param: str) -> APIError:
    return APIError(400, f"{param}: fetching the image took longer than this server allows "
                    "(REMOTE_IMAGE_TIMEOUT_S)", param=param, code="image_fetch_timeout")


def _private(param: str, host: str) -> APIError:
    return APIError(400, f"{param}: the image host {host!r} resolves to a loopback, private, "
                    "link-local or otherwise non-public address, which this server does not "
                    "fetch from (REMOTE_IMAGE_ALLOW_PRIVATE)", param=param,
                    code="image_host_not_allowed")


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTP(S) connection to an address checked beforehand, the TLS name still the host's.

    A per-read timeout does not bound a server that drips a byte a second into its headers, so
    a timer shuts the socket at the deadline: whatever read is waiting then ends."""

    def __init__(self, host: str, port: int, address: str, *, tls: bool, deadline: float,
                 param: str):
        super().__init__(host, port, timeout=_remaining(deadline, param),
                         context=ssl.create_default_context() if tls else None)
        self.address, self.tls, self.deadline, self.param = address, tls, deadline, param
        self.expired = False
        self._timer: threading.Timer | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self._timer = threading.Timer(_remaining(self.deadline, self.param), self._expire, (sock,))
        self._timer.daemon = True
        self._timer.start()
        self.sock = (self._context.wrap_socket(sock, server_hostname=self.host)
                     if self.tls else sock)

    def _expire(self, sock: socket.socket) -> None:
        self.expired = True
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().close()


def _remaining(deadline: float, param: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timeout(param)
    return left


def _get(url: str, policy: RemotePolicy, deadline: float, param: str
         ) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise APIError(400, f"{param}: an image URL must be a data: URL or an http(s) URL",
                       param=param, code="invalid_image_url")
    host = parts.hostname
    if not policy.host_allowed(host):
        raise APIError(400, f"{param}: the image host {host!r} is not in this server's "
                       "REMOTE_IMAGE_HOSTS", param=param, code="image_host_not_allowed")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    address = _resolve(host, port, policy, deadline, param)
    conn = _PinnedConnection(host, port, address, tls=tls, deadline=deadline, param=param)
    try:
        path = parts.path or "/"
        conn.request("GET", f"{path}?{parts.query}" if parts.query else path,
                     headers={"Accept": "image/*", "User-Agent": "slm-api"})
        peer = conn.sock.getpeername()[0] if conn.sock is not None else ""
        if not address_allowed(peer, policy.allow_private):
            raise _private(param, host)
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.status != 200:
            return resp.status, headers, b""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > policy.max_bytes:
            raise _too_large(param, policy.max_bytes)
        body = bytearray()
        while True:
            _remaining(deadline, param)
            piece = resp.read1(_READ) if hasattr(resp, "read1") else resp.read(_READ)
            if not piece:
                break
            body += piece
            if len(body) > policy.max_bytes:
                raise _too_large(param, policy.max_bytes)
        if conn.expired:
            raise TimeoutError
        return resp.status, headers, bytes(body)
    except TimeoutError:
        raise _timeout(param) from None
    except (OSError, http.client.HTTPException) as exc:
        if conn.expired:
            raise _timeout(param) from None
        raise APIError(400, f"{param}: fetching the image failed ({type(exc).__name__})",
                       param=param, code="image_fetch_failed") from None
    finally:
        conn.close()


def _too_large(param: str, max_bytes: int) -> APIError:
    return APIError(413, f"{param}: the remote image is larger than this server's limit of "
                    f"{max_bytes:,} bytes per image (MAX_IMAGE_BYTES)", param=param,
                    code="image_too_large")
