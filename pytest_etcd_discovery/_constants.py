"""Names several layers need: markers, the intercepted hosts, the transport names.

Kept apart from the modules that import werkzeug, requests and responses, so that
loading the plugin costs a pytest run next to nothing until a test uses the fake.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_HOSTS",
    "FAULT_MARKER",
    "FAULT_MARKER_DOC",
    "MARKER",
    "PROFILE_DISCOVERYSERVER",
    "PROFILE_ETCD_V2",
    "PROFILE_NAMES",
    "TRANSPORT_FIXTURE",
    "TRANSPORT_INPROCESS",
    "TRANSPORT_LIVE",
    "V04_TTL",
    "forwarded_hosts",
    "normalize_host",
]

#: The marker that seeds and configures a test's fake.
MARKER = "etcd_discovery"

#: The marker that adds a fault rule to a test's fake.
FAULT_MARKER = "etcd_discovery_fault"
FAULT_MARKER_DOC = (
    f"{FAULT_MARKER}(status=503, *, action='status', route=None, path=None, method=None, "
    "nth=None, times=None, delay=0, body=None, error_code=None): make matching requests to "
    "this test's fake discovery service fail (a status with the real body, a delay, a "
    "dropped connection, an empty watch reply); one marker per rule, nearest first"
)

#: The profiles' names, default first. The plugin needs only these (for its option's
#: choices and the marker's check); ``service.profiles.PROFILES`` holds the profiles
#: themselves, and a test keeps the two in step.
PROFILE_ETCD_V2 = "etcd-v2"
PROFILE_DISCOVERYSERVER = "discoveryserver"
PROFILE_NAMES: tuple[str, ...] = (PROFILE_ETCD_V2, PROFILE_DISCOVERYSERVER)

#: Who carried a request to the fake (``Call.transport``): the live server, the
#: in-process interception of ``requests``, or the fixture's own seeding calls (which
#: faults never touch and ``calls`` leaves out).
TRANSPORT_LIVE = "live"
TRANSPORT_INPROCESS = "inprocess"
TRANSPORT_FIXTURE = "fixture"

#: A WSGI environ key the live server sets on requests with a body: a callable that lets
#: the application read up to N bytes of it (the control API takes bigger bodies than the
#: discovery routes' Go-faithful 10 MiB).
RAISE_BODY_LIMIT = "pytest_etcd_discovery.raise_body_limit"

#: The TTL etcd 0.4 put on its registration (7 days); it heartbeats every 21 hours.
V04_TTL = 604800

#: The public service; always intercepted.
DEFAULT_HOSTS: tuple[str, ...] = ("https://discovery.etcd.io",)


def normalize_host(host: str) -> str:
    """Return ``scheme://netloc`` for ``host`` (``https://`` assumed when missing)."""
    if "://" not in host:
        host = "https://" + host
    parts = urlsplit(host)
    if not parts.netloc:
        raise ValueError(f"not a host URL: {host!r}")
    return f"{parts.scheme}://{parts.netloc}"


def forwarded_hosts(hosts: Iterable[str], service_url: str) -> tuple[str, ...]:
    """The discovery hosts a real service (``--etcd-discovery-url``) is served for: all but
    those on its own host name (forwarding a host to itself would loop, and calls to the
    configured service reach it directly anyway)."""
    own = (urlsplit(service_url).hostname or "").rstrip(".").lower()
    normalized = dict.fromkeys(normalize_host(h) for h in hosts)
    return tuple(h for h in normalized if (urlsplit(h).hostname or "").rstrip(".").lower() != own)
