"""Fixtures for the end-to-end tests with real etcd 3.4 members (see realstack.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from realstack import FAKE, FAKE_DS, REAL, ClusterFactory, Stack
from realutil import require_real

from pytest_etcd_discovery._real.processes import RealDiscoveryService
from pytest_etcd_discovery._transport.server import DiscoveryServer


@pytest.fixture
def etcd_binaries() -> None:
    """Skip (or fail under ETCD_DISCOVERY_REQUIRE_REAL=1) without etcd and etcdctl."""
    require_real("etcd", "etcdctl")


@pytest.fixture
def stack(request: pytest.FixtureRequest, etcd_binaries: None) -> Stack:
    """The discovery service named by the test's (indirect) ``stack`` parameter."""
    kind: str = request.param
    if kind == FAKE:
        # The fake with its keys API on: custom discovery URLs below /v2/keys.
        server: DiscoveryServer = request.getfixturevalue("fake_keys_service")
        return Stack(kind, server.url, f"{server.url}/v2/keys", fake=server)
    if kind == FAKE_DS:
        ds: DiscoveryServer = request.getfixturevalue("fake_ds_service")
        return Stack(kind, ds.url, None, fake=ds)
    if kind == REAL:
        real: RealDiscoveryService = request.getfixturevalue("real_service")
        return Stack(kind, real.url, f"{real.etcd_url}/v2/keys", real=real)
    raise ValueError(f"unknown stack {kind!r}")


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """A factory of :class:`DiscoveryCluster` s that are all stopped after the test."""
    factory = ClusterFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
