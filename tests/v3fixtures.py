"""Fixtures of the v3 API's tests, loaded by ``pytest_plugins = ["v3fixtures"]``:
``real_etcd`` (a real etcd 3.4 per module), ``fake_server`` (the fake, on a controllable
clock), ``side`` (each of them in turn) and ``sides`` (both, for lockstep comparison)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from v3util import Side, start_real

from pytest_etcd_discovery._real.processes import EtcdProcess
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v3.client import V3Client
from pytest_etcd_discovery._v3.server import V3Server


@pytest.fixture(scope="module")
def real_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """A real etcd 3.4 member for the module (skips, or fails under
    ``ETCD_DISCOVERY_REQUIRE_REAL=1``, when the binary is missing)."""
    data = tmp_path_factory.mktemp("v3real")
    etcd = start_real(data)
    yield etcd
    etcd.stop()
    # etcd preallocates 64 MB of WAL: pytest's kept tmp_path trees would keep them all.
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[V3Server]:
    with V3Server(clock=ControllableClock()) as server:
        yield server
    server.store.close()


def _side(name: str, request: pytest.FixtureRequest) -> Iterator[Side]:
    if name == "real":
        etcd: EtcdProcess = request.getfixturevalue("real_etcd")
        endpoint, server = f"127.0.0.1:{etcd.client_port}", None
    else:
        server = request.getfixturevalue("fake_server")
        endpoint = server.endpoint
    with V3Client(endpoint) as client:
        side = Side(name, endpoint, client, server)
        side.rebase()
        yield side


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that talk to the real etcd carry the ``real`` marker (``-m "not real"`` runs
    the fake's half alone)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        on_real = callspec is not None and callspec.params.get("side") == "real"
        if on_real or "sides" in names or "real_etcd" in names:
            item.add_marker(pytest.mark.real)


@pytest.fixture(params=["real", "fake"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    """Each of the real etcd and the fake, in turn (the same test runs against both)."""
    yield from _side(request.param, request)


@pytest.fixture
def sides(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side]]:
    """The real etcd and the fake together, for lockstep comparisons."""
    real = _side("real", request)
    fake = _side("fake", request)
    pair = (next(real), next(fake))
    yield pair
    for gen in (real, fake):
        gen.close()
