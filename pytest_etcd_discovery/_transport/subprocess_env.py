"""The environment a child process needs to reach the fake at ``https://discovery.etcd.io``.

A subprocess (``curl``, ``wget``, ``etcd``, a Go or Node program, another Python) cannot be
patched from here; it is pointed at the fake's front instead, with the variables such
programs read:

- ``HTTPS_PROXY``/``https_proxy``/``HTTP_PROXY``/``http_proxy``: the front, which answers
  ``CONNECT discovery.etcd.io:443`` itself and tunnels every other host untouched;
- ``NO_PROXY``/``no_proxy``: loopback (a cluster's own peers and clients are not sent
  through the front), plus what the caller had, minus anything that would exempt a
  discovery host (so no lookup of it ever leaves the machine);
- ``SSL_CERT_FILE`` (OpenSSL, Go, Python), ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``: a
  bundle of the system roots plus the test CA, so other hosts still verify;
  ``NODE_EXTRA_CA_CERTS``: the test CA (Node adds it to its own roots);
- ``NODE_OPTIONS``: the caller's plus ``--require`` of ``node_preload.cjs``, because Node
  (18 and 20 at least) ignores the proxy variables; the preload sends Node's connections
  to the discovery hosts (``https``, ``http``, ``fetch``, ``net``, ``tls``) to the front,
  which it finds in ``PYTEST_ETCD_DISCOVERY_FRONT`` and ``PYTEST_ETCD_DISCOVERY_HOSTS``
  (not ``ETCD_*`` names: etcd reads those as its flags);
- ``WGETRC``: a wgetrc naming the bundle (GnuTLS builds of wget read no variable for
  it), with the caller's own wgetrc read first;
- ``ETCD_DISCOVERY_PROXY``: etcd's ``--discovery-proxy`` flag as a variable, because
  etcd's discovery client ignores ``HTTPS_PROXY`` (it would look the host up in DNS and
  go to the public service); a ``--discovery-proxy`` on etcd's command line still wins.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .hosts import canonical_name
from .proxy import DiscoveryFront

__all__ = ["LOOPBACK", "NODE_PRELOAD", "child_env", "env_additions", "node_options"]

#: What never goes through the front: the machine itself.
LOOPBACK = ("localhost", "127.0.0.1", "::1", "127.0.0.0/8")

_PROXY_KEYS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
_NO_PROXY_KEYS = ("NO_PROXY", "no_proxy")

#: The CommonJS file Node preloads (package data next to this module).
NODE_PRELOAD = Path(__file__).with_name("node_preload.cjs")


def _exempts(entry: str, names: Iterable[str]) -> bool:
    """Whether a no_proxy entry would let a discovery host bypass the front (curl, Go and
    Python all read ``*``, ``name``, ``.suffix`` and ``suffix`` alike)."""
    value = entry.strip().lower()
    if value == "*":
        return True
    host = urlsplit(f"//{value}").hostname or value  # drop a :port
    host = canonical_name(host).lstrip("*").lstrip(".")
    if not host:
        return False
    return any(name == host or name.endswith("." + host) for name in names)


def no_proxy_value(names: Iterable[str], inherited: Iterable[str | None]) -> str:
    names = list(names)
    kept = [
        e.strip()
        for value in inherited
        if value
        for e in value.split(",")
        if e.strip() and not _exempts(e, names)
    ]
    return ",".join(dict.fromkeys([*LOOPBACK, *kept]))


def _wgetrc(front: DiscoveryFront, base: Mapping[str, str]) -> Path:
    """A wgetrc with the caller's settings and then the bundle (later lines win)."""
    own = base.get("WGETRC") or str(Path(base.get("HOME", "~")).expanduser() / ".wgetrc")
    try:
        previous = Path(own).read_text(encoding="utf-8", errors="replace")
    except OSError:
        previous = ""
    path = front.ca.directory / f"wgetrc-{zlib.crc32(previous.encode()):08x}"
    if not path.exists():
        path.write_text(f"{previous.rstrip()}\nca_certificate = {front.ca.bundle_file}\n")
    return path


def node_options(inherited: str | None, preload: Path = NODE_PRELOAD) -> str:
    """``inherited`` (the caller's ``NODE_OPTIONS``) with ``--require <preload>`` appended
    once; the path in double quotes with ``\\`` and ``"`` escaped, as Node parses it."""
    quoted = '"' + str(preload).replace("\\", "\\\\").replace('"', '\\"') + '"'
    option = f"--require {quoted}"
    inherited = (inherited or "").strip()
    if option in inherited:
        return inherited  # a base that already came from env()
    return f"{inherited} {option}" if inherited else option


def env_additions(front: DiscoveryFront, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Only the variables :func:`child_env` sets (what ``--env-file`` writes)."""
    base = os.environ if base is None else base
    proxy = front.proxy_url
    bundle = str(front.ca.bundle_file)
    no_proxy = no_proxy_value(front.hosts.names, (base.get(k) for k in _NO_PROXY_KEYS))
    values = dict.fromkeys(_PROXY_KEYS, proxy)
    values.update(dict.fromkeys(_NO_PROXY_KEYS, no_proxy))
    values.update(
        SSL_CERT_FILE=bundle,
        REQUESTS_CA_BUNDLE=bundle,
        CURL_CA_BUNDLE=bundle,
        NODE_EXTRA_CA_CERTS=str(front.ca.ca_cert_file),
        NODE_OPTIONS=node_options(base.get("NODE_OPTIONS")),
        PYTEST_ETCD_DISCOVERY_FRONT=proxy.removeprefix("http://"),
        PYTEST_ETCD_DISCOVERY_HOSTS=",".join(front.hosts.urls),
        WGETRC=str(_wgetrc(front, base)),
        ETCD_DISCOVERY_PROXY=proxy,
    )
    return values


def child_env(front: DiscoveryFront, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with :func:`env_additions`."""
    base = os.environ if base is None else base
    merged = dict(base)
    merged.update(env_additions(front, base))
    return merged
