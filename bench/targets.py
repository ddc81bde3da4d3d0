"""The things a benchmark talks to, all through the same ``requests`` client.

* ``live``: the fake's :class:`DiscoveryServer` on a loopback port, in this process (how
  the pytest plugin runs it: the server threads share the GIL with the client).
* ``live-proc``: the fake's standalone command in its own process (like the real stack).
* ``inprocess``: the fake's WSGI app behind the plugin's ``responses`` interceptor.
* ``real``: ``discovery.etcd.io`` in front of ``etcd --enable-v2`` (RealDiscoveryService).
* ``floor``: ``responses`` answering the same calls with a static body (no fake at all).
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request
from typing import Any

import requests
import responses

from pytest_etcd_discovery._real.processes import (
    ManagedProcess,
    RealDiscoveryService,
    missing_binaries,
)
from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._transport.intercept import Interceptor
from pytest_etcd_discovery._transport.proxy import DiscoveryFront
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._transport.subprocess_env import child_env

from .stats import cpu_seconds, cpu_seconds_fine, rss_bytes

#: Host the in-process transport intercepts: loopback's discard port, so a request that
#: escaped interception is refused locally instead of reaching any outside host.
INPROCESS_HOST = "http://127.0.0.1:9"

#: The public discovery URL the fake's TLS front answers for (``live-tls``).
PUBLIC = "https://discovery.etcd.io"

#: Bound on any single non-watch request (etcd itself gives up after 5 s).
REQUEST_TIMEOUT = 10.0
#: Bound on a long poll; every benchmark also releases its watchers on its own deadline.
WATCH_TIMEOUT = 60.0

ALL_TARGETS = ("live", "live-proc", "inprocess", "real")
FAKE_TARGETS = ("live", "live-proc", "inprocess")


class Target:
    """One service under test. ``start``/``stop`` bracket its use; only one is active."""

    name = "?"
    #: Whether ``watchers()`` can tell how many long polls are blocked right now.
    counts_watchers = True
    #: Whether ``memory()`` means something (RSS of a separate process).
    has_process_memory = False
    #: Whether it answers by patching ``requests`` in this process (so its clients must
    #: run here too).
    patches_this_process = False

    def __init__(self) -> None:
        self.base_url = ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def activate(self) -> None:
        """Make this target the one ``requests`` calls reach (in-process patching)."""

    def deactivate(self) -> None:
        """Undo :meth:`activate`; every target stays started between its turns."""

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # loopback only: no proxy from the environment
        return session

    def timeout(self, watch: bool = False) -> float | None:
        return WATCH_TIMEOUT if watch else REQUEST_TIMEOUT

    def watchers(self) -> int:
        raise NotImplementedError

    def release(self) -> None:
        """Wake every blocked long poll (used when a benchmark hits its deadline)."""

    def memory(self) -> int:
        """Resident memory of the service's own process(es), in bytes."""
        raise NotImplementedError

    def app(self) -> DiscoveryApp | None:
        """The fake's app when it lives in this process (memory is measured on it)."""
        return None

    def service_cpu(self) -> float | None:
        """CPU seconds the service's own process(es) used so far; None when the service
        shares this process. Unlike wall time it does not grow when the machine is busy."""
        return None

    def child_env(self) -> dict[str, str] | None:
        """The environment a child process (a real etcd) needs to reach this target's
        URLs; None: this process's own is fine."""
        return None

    def etcd_args(self) -> list[str]:
        """Flags a real etcd member needs to reach this target's URLs."""
        return []

    def server_cpu(self) -> float | None:
        """CPU seconds of whatever serves this target so far, for a window whose clients
        run elsewhere (the member process): the service's own process(es), or for
        ``live`` this whole process."""
        return self.service_cpu()

    def server_rss(self) -> int | None:
        """Resident bytes of the process(es) serving this target (``live``: this one)."""
        return self.memory() if self.has_process_memory else None

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LiveTarget(Target):
    name = "live"

    def __init__(self) -> None:
        super().__init__()
        self.server = DiscoveryServer()

    def start(self) -> None:
        self.server.start()
        self.base_url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def watchers(self) -> int:
        return self.server.app.store.watcher_count

    def release(self) -> None:
        self.server.app.reset()

    def app(self) -> DiscoveryApp:
        return self.server.app

    def server_cpu(self) -> float | None:
        # The server's threads and this benchmark's, which wait meanwhile (a client here,
        # such as the PUT that wakes watchers, is counted too).
        return time.process_time()

    def server_rss(self) -> int | None:
        return rss_bytes()


class LiveProcTarget(Target):
    name = "live-proc"
    counts_watchers = False
    has_process_memory = True

    def __init__(self) -> None:
        super().__init__()
        self.proc = ManagedProcess(
            [sys.executable, "-m", "pytest_etcd_discovery", "--host", "127.0.0.1", "--port", "0"],
            name="etcd-discovery-fake",
        )

    def start(self) -> None:
        self.proc.start()
        match = self.proc.wait_for_output(r"(http://127\.0\.0\.1:\d+)", timeout=20)
        self.base_url = match.group(1)

    def stop(self) -> None:
        self.proc.stop()

    def memory(self) -> int:
        assert self.proc.pid is not None
        return rss_bytes(self.proc.pid)

    def service_cpu(self) -> float | None:
        assert self.proc.pid is not None
        return cpu_seconds(self.proc.pid)

    def server_cpu(self) -> float | None:
        assert self.proc.pid is not None
        return cpu_seconds_fine(self.proc.pid)


class InProcessTarget(Target):
    name = "inprocess"
    patches_this_process = True

    def __init__(self) -> None:
        super().__init__()
        self._app = DiscoveryApp()
        self.interceptor = Interceptor(self._app, hosts=(INPROCESS_HOST,))

    def start(self) -> None:
        self.base_url = INPROCESS_HOST

    def stop(self) -> None:
        self.interceptor.stop()
        self._app.close()

    def activate(self) -> None:
        self.interceptor.start()

    def deactivate(self) -> None:
        self.interceptor.stop()

    def timeout(self, watch: bool = False) -> float | None:
        # A timeout makes the interceptor run each call in a helper thread (to emulate
        # ReadTimeout); the benchmarks bound in-process calls through release() instead.
        # The latency group measures the with-timeout cost separately.
        return None

    def watchers(self) -> int:
        return self._app.store.watcher_count

    def release(self) -> None:
        self._app.reset()

    def app(self) -> DiscoveryApp:
        return self._app


class RealTarget(Target):
    name = "real"
    has_process_memory = True

    def __init__(self) -> None:
        super().__init__()
        self.service = RealDiscoveryService()

    def start(self) -> None:
        self.service.start()
        self.base_url = self.service.url

    def stop(self) -> None:
        self.service.stop()

    def watchers(self) -> int:
        url = f"{self.service.etcd_url}/v2/stats/store"
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as resp:  # loopback
            stats: dict[str, Any] = json.load(resp)
        return int(stats["watchers"])

    def _pids(self) -> list[int]:
        assert self.service.etcd is not None and self.service.discovery is not None
        pids = (self.service.etcd.pid, self.service.discovery.pid)
        return [pid for pid in pids if pid is not None]

    def memory(self) -> int:
        return sum(rss_bytes(pid) for pid in self._pids())

    def service_cpu(self) -> float | None:
        return sum(cpu_seconds(pid) for pid in self._pids())

    def server_cpu(self) -> float | None:
        return sum(cpu_seconds_fine(pid) for pid in self._pids())


class FrontTarget(Target):
    """``live``'s server as ``https://discovery.etcd.io`` through its TLS + proxy front,
    the way a child process reaches it with ``etcd_discovery.env()``: ``HTTPS_PROXY``
    (etcd: ``--discovery-proxy``) at the front, the test CA in ``SSL_CERT_FILE``."""

    name = "live-tls"

    def __init__(self, live: LiveTarget) -> None:
        super().__init__()
        self.live = live
        self.front: DiscoveryFront | None = None

    def start(self) -> None:
        self.front = DiscoveryFront(self.live.server, [PUBLIC])
        self.front.start()
        self.base_url = PUBLIC

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()

    def _front(self) -> DiscoveryFront:
        if self.front is None:
            raise RuntimeError("live-tls is not started")
        return self.front

    def session(self) -> requests.Session:
        session = super().session()
        session.proxies = {"https": self._front().proxy_url}
        session.verify = str(self._front().ca.bundle_file)
        return session

    def child_env(self) -> dict[str, str] | None:
        return child_env(self._front())

    def etcd_args(self) -> list[str]:
        # EtcdProcess drops inherited ETCD_* variables (env()'s ETCD_DISCOVERY_PROXY
        # among them), so the proxy goes on the command line, as in production.
        return [f"--discovery-proxy={self._front().proxy_url}"]

    def watchers(self) -> int:
        return self.live.watchers()

    def release(self) -> None:
        self.live.release()

    def app(self) -> DiscoveryApp:
        return self.live.app()


class FloorTarget(Target):
    """``responses`` with one static reply per method: the cost of the client and mock."""

    name = "floor"
    counts_watchers = False
    patches_this_process = True

    def __init__(self, replies: dict[str, tuple[int, str]]) -> None:
        super().__init__()
        self._active = False
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        pattern = re.compile(re.escape(INPROCESS_HOST) + r"(?:[/?#].*)?\Z", re.DOTALL)
        for method, (status, body) in replies.items():
            self.mock.add(method, pattern, body=body, status=status)

    def start(self) -> None:
        self.base_url = INPROCESS_HOST

    def stop(self) -> None:
        self.deactivate()

    def activate(self) -> None:
        self.mock.start()
        self._active = True

    def deactivate(self) -> None:
        if self._active:
            self.mock.stop(allow_assert=False)
            self._active = False

    def timeout(self, watch: bool = False) -> float | None:
        return None


def make_target(name: str) -> Target:
    if name == "live":
        return LiveTarget()
    if name == "live-proc":
        return LiveProcTarget()
    if name == "inprocess":
        return InProcessTarget()
    if name == "real":
        return RealTarget()
    raise ValueError(f"unknown target {name!r}")


def real_available() -> str | None:
    """None when the real stack can run, else why not."""
    return missing_binaries("etcd", "discovery.etcd.io")


def wait_watchers(target: Target, count: int, timeout: float = 30) -> None:
    """Block until ``count`` long polls are registered on ``target`` (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = target.watchers()
        if seen >= count:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{target.name}: {seen}/{count} watchers after {timeout} s")
        time.sleep(0.01)
