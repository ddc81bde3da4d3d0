"""One check for the URLs a user gives: a discovery service's URL and the discovery hosts.

The ini values, ``fake_discovery(hosts=...)`` and the command all go through here, so
a host that one of them refuses is refused by all three with the same words.  Standard
library only: the plugin reads its ini values with it in every pytest run.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from ._constants import DEFAULT_HOSTS, normalize_host
from ._errors import Error

__all__ = ["URLError", "discovery_hosts", "listen_address", "service_url"]

#: A host name: labels of letters, digits, hyphens and underscores (container names have
#: them; IDNA names go in their ``xn--`` form), separated by dots.
_HOST_NAME = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?\Z"
)


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
    elif not parts.hostname or not port_ok or parts.netloc.endswith(":"):
        problem = "it needs a host (and a valid port, if any)"
    elif not _is_host(parts.hostname):
        problem = "its host is not a host name (IDN in its xn-- form) or an IP address"
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
        if "://" not in host:
            # A bare name is an https host, when it reads as one: a dotted name, an IP
            # address or localhost; "notaurl" is more likely a mistake than a host.
            name = urlsplit("https://" + host).hostname or ""
            if not (_is_ip(name) or name == "localhost" or "." in name.strip(".")):
                raise URLError(
                    f"{what}: {host!r} is neither scheme://host[:port] nor a host name "
                    "with a domain (discovery.internal.example), an IP address or localhost"
                )
            host = "https://" + host
        url = service_url(host, what)
        if urlsplit(url).path:
            raise URLError(f"{what}: {host!r} has a path; give scheme://host[:port]")
        checked.append(url)
    return tuple(dict.fromkeys(normalize_host(h) for h in (*DEFAULT_HOSTS, *checked)))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_host(name: str) -> bool:
    return _is_ip(name) or bool(_HOST_NAME.match(name))


def listen_address(value: str, what: str) -> str:
    """``value`` checked as an address to listen on: an IP address or ``localhost``.
    Checked without DNS: a name that does not resolve would otherwise fail every test's
    setup with a resolver error instead of stopping the run once."""
    text = value.strip()
    if text == "localhost" or _is_ip(text.strip("[]")):
        return text.strip("[]")
    raise URLError(
        f"{what}: {value!r} is not an address to listen on: give an IP address "
        "(127.0.0.1, ::1, 0.0.0.0) or localhost"
    )
