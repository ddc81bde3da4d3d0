"""Support code for the end-to-end tests: real etcd 3.4 members bootstrapping through a
discovery service, which is either the fake (both profiles) or the real stack
(``/usr/bin/discovery.etcd.io`` in front of a real etcd with the v2 API).

A :class:`Stack` hides which one a test talks to, so one test body checks the same
outcome on all of them; :meth:`Stack.journal` gives the requests seen for a token,
normalised so that the fake's ``app.calls`` and the real server's access log compare.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import requests
from unitutil import wait_until

from pytest_etcd_discovery._real.cluster import DiscoveryCluster
from pytest_etcd_discovery._real.processes import RealDiscoveryService
from pytest_etcd_discovery._transport.server import DiscoveryServer

#: Stack kinds; test modules parametrize the ``stack`` fixture with a subset.
FAKE = "fake"  # DiscoveryServer(), etcd-v2 profile
FAKE_DS = "fake-discoveryserver"  # DiscoveryServer(profile="discoveryserver")
REAL = "real"  # discovery.etcd.io + etcd --enable-v2

#: Generous: loopback clusters are healthy ~0.2 s after start (measured), CI boxes are slower.
HEALTHY_TIMEOUT = 30.0
#: How long a refused member may take to exit (measured: ~10 ms of discovery traffic).
EXIT_TIMEOUT = 20.0
#: How long the fallback proxy may take to listen (measured: ~10 ms).
PROXY_TIMEOUT = 20.0

# One access-log line of discovery.etcd.io (gorilla handlers, Apache common log format).
_ACCESS_LOG = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')

#: etcd 3.4's discovery requests, as :meth:`Stack.journal` shows them.
GET_SIZE = "GET /T/_config/size?quorum=false&recursive=false&sorted=false 200"
GET_TOKEN = "GET /T?quorum=false&recursive=false&sorted=false 200"


@dataclass
class Stack:
    """One discovery service that real etcd members can use."""

    kind: str
    url: str  # base URL: /new, /<token> ...
    keys_url: str | None  # an etcd v2 keys API root (".../v2/keys"), if the stack has one
    fake: DiscoveryServer | None = None
    real: RealDiscoveryService | None = None

    def new_token_url(self, size: int) -> str:
        """``GET /new?size=N``: the discovery URL to hand to etcd."""
        resp = requests.get(f"{self.url}/new", params={"size": size}, timeout=5)
        resp.raise_for_status()
        assert resp.text.startswith(self.url + "/"), resp.text
        return resp.text

    def registered(self, discovery_url: str) -> dict[str, str]:
        """Members registered under a discovery URL: ``{member id: value}``."""
        resp = requests.get(discovery_url, timeout=5)
        resp.raise_for_status()
        nodes = resp.json()["node"].get("nodes", [])
        return {node["key"].rsplit("/", 1)[1]: node["value"] for node in nodes}

    def journal(self, token: str) -> list[str]:
        """Requests for ``token`` so far as ``"METHOD /T/<rest>?<query> <status>"`` lines, in
        the order the service answered them (a long poll shows up once it is answered).
        The path keeps any prefix before the token (``/v2/keys/discovery/T/...``).
        """
        if self.fake is not None:
            seen = [
                (c.method, c.path + (f"?{c.query}" if c.query else ""), c.status)
                for c in list(self.fake.app.calls)
            ]
        else:
            assert self.real is not None
            # A custom /v2/keys URL goes to the real etcd, which keeps no access log.
            log = self.real.discovery.output if self.real.discovery is not None else ""
            seen = [(m["method"], m["target"], int(m["status"])) for m in _ACCESS_LOG.finditer(log)]
        return [
            f"{method} {target.replace(token, 'T')} {status}"
            for method, target, status in seen
            if f"/{token}" in target
        ]

    def journal_after(self, token: str, before: int, count: int, timeout: float = 10) -> list[str]:
        """The journal for ``token`` past its first ``before`` lines, once it holds ``count``
        more. The real service's access log reaches the test through a pipe, so a client
        can have its reply (and a member have exited on it) before the line is read."""
        if self.fake is None and self.real is not None and self.real.discovery is not None:
            line = rf'"[A-Z]+ \S*{re.escape(token)}\S* HTTP/[\d.]+" \d{{3}}'
            lines = re.compile(rf"(?:{line}[\s\S]*?){{{before + count}}}")
            self.real.discovery.wait_for_output(lines, timeout)
        return self.journal(token)[before:]

    def watchers(self) -> int:
        """Long polls currently blocked in the service's store (all tokens).

        The fake's store counts them; the real stack's etcd exports the same number as
        the ``etcd_debugging_store_watchers`` gauge of its v2 store.
        """
        if self.fake is not None:
            return self.fake.app.store.watcher_count
        assert self.real is not None
        metrics = requests.get(f"{self.real.etcd_url}/metrics", timeout=5).text
        found = re.search(r"^etcd_debugging_store_watchers (\S+)$", metrics, re.MULTILINE)
        assert found is not None, "etcd exports no etcd_debugging_store_watchers gauge"
        return int(float(found[1]))

    def wait_for_watchers(self, count: int, timeout: float = EXIT_TIMEOUT) -> None:
        """Block until at least ``count`` long polls are blocked in the store."""
        seen = [0]  # the last count, for the message

        def enough() -> bool:
            seen[0] = self.watchers()
            return seen[0] >= count

        wait_until(
            enough,
            lambda: f"{count} watchers wait (the last count: {seen[0]})",
            timeout=timeout,
            interval=0.02,
        )

    def describe(self, token: str) -> str:
        """The journal as text, for failure messages."""
        return "\n".join([f"--- {self.kind}: requests for {token} ---", *self.journal(token)])


def token_of(discovery_url: str) -> str:
    """The last path segment of a discovery URL (the token, or a custom id)."""
    return discovery_url.rstrip("/").rsplit("/", 1)[1]


def new_custom_id() -> str:
    """An id for a custom ``/v2/keys/discovery/<id>`` discovery URL (a uuid's worth of hex)."""
    return secrets.token_hex(16)


def wait_healthy(cluster: DiscoveryCluster, stack: Stack, timeout: float = HEALTHY_TIMEOUT) -> None:
    """:meth:`DiscoveryCluster.wait_healthy`, adding the service's requests to any failure."""
    __tracebackhide__ = True
    try:
        cluster.wait_healthy(timeout)
    except Exception as err:
        raise AssertionError(f"{err}\n{stack.describe(token_of(cluster.discovery_url))}") from err


class ClusterFactory:
    """Makes :class:`DiscoveryCluster` s under one directory and stops them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.clusters: list[DiscoveryCluster] = []

    def __call__(
        self, discovery_url: str, size: int, *, enable_v2: bool = False
    ) -> DiscoveryCluster:
        # A directory per cluster: member names (m1, m2 ...) repeat across clusters.
        base = self.base / f"cluster{len(self.clusters)}"
        cluster = DiscoveryCluster(discovery_url, size, base_dir=base, enable_v2=enable_v2)
        self.clusters.append(cluster)
        return cluster

    def stop_all(self) -> None:
        for cluster in reversed(self.clusters):
            cluster.stop()
