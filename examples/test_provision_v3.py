"""``provision_v3.py`` against the fake's etcd v3 API (``etcd_discovery.v3``).

Needs the ``etcd-v3`` extra (``pip install 'pytest-etcd-discovery[etcd-v3]'``) and ``etcdctl``.
"""

from __future__ import annotations

import shutil

import pytest

# The README's main command installs the package alone: there these skip, saying why.
pytest.importorskip(
    "grpc",
    reason="the v3 examples need the etcd-v3 extra: pip install 'pytest-etcd-discovery[etcd-v3]'",
)
if shutil.which("etcdctl") is None:
    pytest.skip(
        "the v3 examples drive etcdctl: apt-get install etcd-client", allow_module_level=True
    )

import provision_v3

from pytest_etcd_discovery import EtcdDiscovery


def test_new_cluster_writes_the_size_key(etcd_discovery: EtcdDiscovery) -> None:
    token = provision_v3.new_cluster(etcd_discovery.v3.endpoints, 3)

    view = etcd_discovery.v3.token(token)
    assert view.size == 3
    assert view.members == ()


def test_members_start_with_the_endpoints_and_the_token(etcd_discovery: EtcdDiscovery) -> None:
    endpoints, token = etcd_discovery.v3.new_token(3)

    env = provision_v3.member_env(endpoints, token, "infra0", "http://10.0.0.10:2380")

    assert env == {
        "ETCD_NAME": "infra0",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": "http://10.0.0.10:2380",
        **etcd_discovery.v3.env(token, base={}),
    }


def test_registered_ranks_members_as_etcd_does(etcd_discovery: EtcdDiscovery) -> None:
    v3 = etcd_discovery.v3
    endpoints, token = v3.new_token(2)
    v3.register(token, "infra0", "http://10.0.0.10:2380")
    v3.register(token, "infra1", "http://10.0.0.11:2380")
    # A third member would be told "discovery: cluster is full"; written anyway, it ranks
    # after the first two.
    v3.register(token, "infra2", "http://10.0.0.12:2380", check_full=False)

    assert provision_v3.registered(endpoints, token) == ["infra0", "infra1", "infra2"]
    assert [m.name for m in v3.token(token).cluster] == ["infra0", "infra1"]


def test_a_store_outage_is_an_error(etcd_discovery: EtcdDiscovery) -> None:
    v3 = etcd_discovery.v3
    v3.faults.fail("UNAVAILABLE", "etcdserver: request timed out", method="Put", times=1)

    with pytest.raises(provision_v3.ProvisionError, match="request timed out"):
        provision_v3.new_cluster(v3.endpoints, 3)
    assert [call.error for call in v3.calls_to("Put")] == [
        ("UNAVAILABLE", "etcdserver: request timed out")
    ]
