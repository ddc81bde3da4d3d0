"""Which host names and ports are discovery hosts: what the guard, the client cover and
the front agree on.

Kept free of werkzeug and the server, so that the guard the plugin installs for every
pytest run (:mod:`.client_cover`) costs unrelated runs nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from .._constants import normalize_host

__all__ = ["HostMap", "canonical_name", "is_loopback"]


class HostMap:
    """Which ``(host name, port)`` pairs are discovery hosts, and over which scheme.

    Built from base URLs such as ``https://discovery.etcd.io`` (port 443 implied) or
    ``http://discovery.internal:8087``.
    """

    def __init__(self, hosts: Iterable[str]) -> None:
        self.urls = tuple(dict.fromkeys(normalize_host(h) for h in hosts))
        self.schemes: dict[tuple[str, int], str] = {}
        for url in self.urls:
            parts = urlsplit(url)
            name = canonical_name(parts.hostname or "")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self.schemes[(name, port)] = parts.scheme
        #: The host names alone (any port): what the guard watches.
        self.names = frozenset(name for name, _ in self.schemes)

    def scheme(self, host: str, port: int) -> str | None:
        """``"https"``/``"http"`` when ``host:port`` is a discovery host, else None."""
        return self.schemes.get((canonical_name(host), port))

    def is_discovery_name(self, host: str | bytes | None) -> bool:
        if host is None:
            return False
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        return canonical_name(host) in self.names

    def served(self, name: str) -> list[str]:
        """The base URLs the fake serves for host ``name`` (for error messages)."""
        name = canonical_name(name)
        return [u for u in self.urls if canonical_name(urlsplit(u).hostname or "") == name]


def canonical_name(host: str) -> str:
    """A host name as DNS compares it: lower case, no trailing dot, no IPv6 brackets."""
    return host.strip().strip("[]").rstrip(".").lower()


def is_loopback(host: str) -> bool:
    """Whether an address to listen on is this machine's loopback (``localhost`` too);
    a host name may resolve beyond it, so it is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=64)
def host_pattern(base_url: str) -> re.Pattern[str]:
    """A discovery base URL and any path on it, compiled once per process (the plugin
    starts and stops its interception for every test). Anchored on the host and a path
    boundary, so ``https://discovery.etcd.io.example`` or another port on the same name
    is not matched."""
    return re.compile(re.escape(normalize_host(base_url)) + r"(?:[/?#].*)?\Z", re.DOTALL)
