"""ALLOWED_HOSTS: the host names this server answers to where it trusts network position.

DNS rebinding: a web page's own name is made to resolve to 127.0.0.1, so the browser sends the
page's requests to this server as same-origin, with `Host: attacker.example`. Without API keys
the server trusts "the request came from loopback"; the Host header is the one thing such a
request cannot fake, so it is checked against a list of names that really mean this server.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# HOST values that mean "every interface": they name no host a client would type.
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def normalize(host: str) -> str:
    """A host name or address as compared: lower case, no trailing dot, IPv6 in brackets."""
    host = host.strip().lower().rstrip(".")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return host
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def host_without_port(header: str) -> str:
    """`Host` header value -> the host part (`[::1]:8000` -> `[::1]`, `a.example:80` -> ...)."""
    header = header.strip()
    if header.startswith("["):
        return normalize(header.partition("]")[0] + "]")
    if header.count(":") > 1:
        return normalize(header)  # a bare IPv6 address, which a client should not send
    return normalize(header.partition(":")[0])


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """Loopback names, HOST when it names one host, and this machine's host name."""
    hosts = list(LOOPBACK_HOSTS)
    if normalize(bind_host) not in {normalize(h) for h in WILDCARD_BINDS}:
        hosts.append(bind_host)
    hosts.append(socket.gethostname())
    return tuple(dict.fromkeys(normalize(h) for h in hosts if h.strip()))


class HostAllowlist:
    """Answers "may a request carrying this Host header be served on trust of its origin?"."""

    def __init__(self, configured: Iterable[str], bind_host: str):
        entries = tuple(configured)
        self.any = "*" in entries
        # Loopback names stay allowed whatever is configured: only a page this machine serves
        # itself can make a browser send them, and such a page is cross-origin (CORS) anyway.
        listed = entries or default_allowed_hosts(bind_host)
        self.hosts = frozenset(normalize(h) for h in (*LOOPBACK_HOSTS, *listed) if h != "*")

    def allows(self, host_header: str | None) -> bool:
        if self.any or host_header is None:
            # No Host at all is an HTTP/1.0 tool, never a browser: rebinding always sends one.
            return True
        host = host_without_port(host_header)
        # Rebinding needs a name: a browser sends an address as Host only for a page loaded
        # from that address, i.e. from this server. So `http://192.168.1.5:8000` from the LAN
        # keeps working without listing every address the machine has.
        return host in self.hosts or is_address(host)


def is_address(host: str) -> bool:
    """True for an IPv4 address or a bracketed IPv6 address (as `normalize` writes them)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return False
    return True
