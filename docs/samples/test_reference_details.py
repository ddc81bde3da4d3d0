"""Reference: the fixture and the marker in detail (docs/reference/details.rst)."""

from __future__ import annotations

import pytest

from pytest_etcd_discovery import EtcdDiscovery


# [fixture]
def test_bootstrap(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(size=3)  # http://127.0.0.1:PORT/<token>
    etcd_discovery.register(token_url, "infra0", ["http://10.0.0.1:2380"])  # as etcd 3.4 does
    etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.2:7001")  # 7-day TTL + _state
    view = etcd_discovery.token(token_url)
    assert view.size == 3 and view.names == ["infra0", "core-1"] and view.state == "started"
    etcd_discovery.clock.advance(7 * 86400)  # the 0.4 registration expires now
    assert etcd_discovery.token(token_url).names == ["infra0"]
    # [fixture end]


# [marker]
@pytest.mark.etcd_discovery(size=3, members=["infra0", "infra1"], state="started", frozen=True)
def test_reset(etcd_discovery: EtcdDiscovery, etcd_discovery_url: str) -> None:
    view = etcd_discovery.token(etcd_discovery_url)
    assert view.size == 3 and view.names == ["infra0", "infra1"] and view.state == "started"
    # [marker end]


# [v04]
def test_who_started(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(size=2)
    core1 = etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.1:7001", start=False)
    assert etcd_discovery.create_state(token_url)  # True: core-1 created _state, it starts
    core2 = etcd_discovery.register_v04(token_url, "core-2", "http://10.0.0.2:7001", start=False)
    assert not etcd_discovery.create_state(token_url)  # core-2 joins the started cluster
    assert (core1.id, core2.id) == ("core-1", "core-2")  # the last segment of .key
    assert core1.key.endswith(f"/{core1.id}")  # .key as etcd lists it
    # [v04 end]
