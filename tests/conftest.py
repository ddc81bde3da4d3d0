"""Shared fixtures: the real discovery stack and the fake, both started once per session."""

from __future__ import annotations

import socket
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

# The plugin loads the HTTP stack lazily. pytester's in-process runs drop the modules an
# inner run imported; importing them here keeps one copy for every inner run.
import requests  # noqa: F401
import responses  # noqa: F401

# The same for the test CA's cryptography: its compiled core keeps the classes of the
# first copy of its Python modules, so a second copy (imported again after an inner run
# dropped the first) fails with "curve must be an EllipticCurve instance".
from cryptography import x509  # noqa: F401
from cryptography.hazmat.primitives import hashes, serialization  # noqa: F401
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: F401
from realutil import FAIL_SUFFIX, real_required, real_skip_reason, require_real
from unitutil import START, Control

from pytest_etcd_discovery._real.processes import RealDiscoveryService
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.store import Store

if TYPE_CHECKING:
    from pytest_etcd_discovery._transport.server import DiscoveryServer


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fake: runs against the fake discovery service")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Turn "real binaries missing" skips into failures when the real stack is required.

    ``require_real`` already fails in that case; this catches skips raised any other way
    (a plain ``pytest.skip(missing_binaries(...))``, a skip marker with such a reason).
    """
    report = yield
    if report.skipped and real_required():
        reason = real_skip_reason(report.longrepr)
        if reason is not None:
            report.outcome = "failed"
            report.longrepr = f"{reason} {FAIL_SUFFIX}"
    return report


@pytest.fixture
def clock() -> ControllableClock:
    """A controllable clock, frozen at ``START``: time moves only by ``advance()``."""
    return ControllableClock(start=START, frozen=True)


@pytest.fixture
def store(clock: ControllableClock) -> Iterator[Store]:
    """An empty store on ``clock``, closed after the test."""
    s = Store(clock)
    yield s
    s.close()


@pytest.fixture
def control(etcd_discovery: Any) -> Iterator[Control]:
    """The control API (``/_fake/``) of the test's fake, over HTTP."""
    ctl = Control(etcd_discovery.url)
    yield ctl
    ctl.session.close()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other socket is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def real_service() -> Iterator[RealDiscoveryService]:
    """The original discovery server (``/usr/bin/discovery.etcd.io``) in front of a real
    etcd 3.4 with the v2 API, on free loopback ports, for the whole session.

    Skips (or fails under ``ETCD_DISCOVERY_REQUIRE_REAL=1``) when the binaries are absent.
    """
    require_real()
    service = RealDiscoveryService()
    service.start()
    try:
        yield service
    finally:
        service.stop()


#: The session's shared fakes and the store each started with (see ``_shared_fakes_intact``).
_SHARED: list[tuple[DiscoveryServer, Store]] = []


@pytest.fixture(autouse=True)
def _shared_fakes_intact() -> Iterator[None]:
    """Fail the test that swaps or freezes the store of a session-wide fake.

    Later tests share those servers: a frozen clock there stops every TTL from expiring
    (with pytest 7's collection order the conformance suite ran after such a test, and
    its TTL scenarios waited in vain). A test that needs its own clock starts its own
    server.
    """
    yield
    for server, store in _SHARED:
        clock = server.app.store.clock
        assert server.app.store is store and not getattr(clock, "frozen", False), (
            f"this test replaced or froze the store of the session's {server!r}; "
            "start a DiscoveryServer of its own instead"
        )


def _shared_server(**options: Any) -> Iterator[DiscoveryServer]:
    """A ``DiscoveryServer(**options)`` live for the session, watched by
    ``_shared_fakes_intact``."""
    from pytest_etcd_discovery._transport.server import DiscoveryServer

    server = DiscoveryServer(**options)
    server.start()
    _SHARED.append((server, server.app.store))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_service() -> Iterator[DiscoveryServer]:
    """The fake discovery server (``DiscoveryServer()``, etcd-v2 profile) for the session."""
    yield from _shared_server()


@pytest.fixture(scope="session")
def fake_ds_service() -> Iterator[DiscoveryServer]:
    """The fake in the ``discoveryserver`` profile (today's public service), live on
    loopback for the session: the real-client tests and the transcript replays share it."""
    yield from _shared_server(profile="discoveryserver")


@pytest.fixture(scope="session")
def fake_keys_service() -> Iterator[DiscoveryServer]:
    """The fake with the generic keys API switched on (``DiscoveryServer(keys_api=True)``):
    a custom discovery URL below ``/v2/keys``, like real etcd's own keys API."""
    yield from _shared_server(keys_api=True)


#: A downstream user's suite, run by tests/test_fail_closed.py in a network namespace.
collect_ignore = ["downstream"]
