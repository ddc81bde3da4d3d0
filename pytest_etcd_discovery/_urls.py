"""One check for the URLs a user gives: a discovery service's URL and the discovery hosts.

The ini values, ``fake_discovery(hosts=...)`` and the command all go through here, so
a host that one of them refuses is refused by all three with the same words.  Standard
library only: the plugin reads its ini values with it in every pytest run.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from ._constants import DEFAULT_HOSTS, normalize_host
from ._errors import Error

__all__ = ["URLError", "discovery_hosts", "service_url"]


class URLError(Error, ValueError):
    """A service URL or discovery host that cannot be served."""


def service_url(value: str, what: str) -> str:
    """``value`` checked as a discovery service's base URL: ``http(s)://host[:port][/path]``,
    without a trailing slash."""
    text = value.strip()
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or past 65535
        port_ok = False
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it must start with http:// or https://"
    elif not parts.hostname or not port_ok:
        problem = "it needs a host (and a valid port, if any)"
    elif parts.query or parts.fragment or "@" in parts.netloc:
        problem = "it may not carry a query, a fragment or user info"
    if problem:
        raise URLError(f"{what}: {value!r} is not a discovery service URL: {problem}")
    return text.rstrip("/")


def discovery_hosts(extra: Iterable[str], what: str) -> tuple[str, ...]:
    """``https://discovery.etcd.io`` and the ``extra`` hosts, each checked and given as
    ``scheme://host[:port]`` (a bare name is an https host); duplicates dropped."""
    if isinstance(extra, str):
        extra = [extra]
    checked = []
    for host in (h.strip() for h in extra):
        if not host:
            continue
        url = service_url(host if "://" in host else "https://" + host, what)
        if urlsplit(url).path:
            raise URLError(f"{what}: {host!r} has a path; give scheme://host[:port]")
        checked.append(url)
    return tuple(dict.fromkeys(normalize_host(h) for h in (*DEFAULT_HOSTS, *checked)))
