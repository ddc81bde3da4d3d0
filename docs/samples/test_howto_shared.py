"""How-to: shared state (docs/howto/shared-state.rst): a token made once, seen by later
tests; what a test writes stays its own."""

# [head]
from __future__ import annotations

import pytest
import requests

from pytest_etcd_discovery import EtcdDiscovery

PUBLIC = "https://discovery.etcd.io"
# [head end]


# [fixture]
@pytest.fixture(scope="module")
def cluster_token(etcd_discovery_module: EtcdDiscovery) -> str:
    """A token provisioned once for every test of the module, with one member."""
    token_url = etcd_discovery_module.new_token(3, base_url=PUBLIC)
    etcd_discovery_module.register(token_url, "infra0", "http://10.0.0.1:2380")
    return token_url
    # [fixture end]


# [tests]
def test_a_member_joins(etcd_discovery: EtcdDiscovery, cluster_token: str) -> None:
    assert etcd_discovery.token(cluster_token).names == ["infra0"]
    etcd_discovery.register(cluster_token, "infra1", "http://10.0.0.2:2380")
    etcd_discovery.faults.fail(503, route="new")  # for this test only
    assert requests.get(f"{PUBLIC}/new", timeout=5).status_code == 503
    assert etcd_discovery.token(cluster_token).names == ["infra0", "infra1"]


def test_the_next_test_starts_from_the_shared_state(
    etcd_discovery: EtcdDiscovery, cluster_token: str
) -> None:
    # infra1 and the fault stayed in the test before.
    assert etcd_discovery.token(cluster_token).names == ["infra0"]
    assert requests.get(f"{PUBLIC}/new", timeout=5).status_code == 200
    # [tests end]


# [intercept]
@pytest.fixture(scope="module")
def provisioned_by_the_code(etcd_discovery_module: EtcdDiscovery) -> str:
    """Code under test called from a module fixture: served inside intercept()."""
    with etcd_discovery_module.intercept():
        return requests.get(f"{PUBLIC}/new?size=5", timeout=5).text


def test_sees_what_the_code_made(
    etcd_discovery: EtcdDiscovery, provisioned_by_the_code: str
) -> None:
    assert etcd_discovery.token(provisioned_by_the_code).size == 5
    # [intercept end]
