"""A member that registers again after a stray key keeps its slot (today's service).

etcd 3.4 orders the keys under a token by ``createdIndex`` and only the first ``size``
may join. discoveryserver stores through etcd's v2 API over v3, where a key's
``createdIndex`` is its v3 create revision: a member that re-registers (its PUT is a
plain set there) keeps the index of its first registration, so a stray key written in
between does not push it out. Checked against a build of etcd-io/discoveryserver in
front of etcd 3.4 (the cluster became healthy, the member kept its index); with an
overwrite that reset ``createdIndex`` the member exits "discovery: cluster is full".
"""

from __future__ import annotations

import pytest
import requests
from realstack import EXIT_TIMEOUT, FAKE_DS, ClusterFactory, Stack, wait_healthy
from unitutil import wait_until

from pytest_etcd_discovery._real.cluster import FULL_CLUSTER_PATTERN, EtcdMember


def wait_registered(stack: Stack, discovery_url: str, member: EtcdMember) -> None:
    """Block until ``member`` has put its key under the token (bounded)."""

    def registered() -> bool:
        assert member.running, member.describe()
        return member.member_id in stack.registered(discovery_url)

    wait_until(registered, f"{member.name} registers", timeout=EXIT_TIMEOUT, interval=0.02)


def created_indexes(discovery_url: str) -> dict[str, int]:
    nodes = requests.get(discovery_url, timeout=5).json()["node"].get("nodes", [])
    return {n["key"].rsplit("/", 1)[1]: n["createdIndex"] for n in nodes}


def reregister_after_stray_key(stack: Stack, make_cluster: ClusterFactory) -> None:
    url = stack.new_token_url(2)
    cluster = make_cluster(url, 2)
    first, second = cluster.members
    first.fallback = "exit"  # a full cluster ends it at once instead of proxying
    # 1. The first member registers, then goes away before the second arrives.
    first.start()
    wait_registered(stack, url, first)
    first.stop()
    first.wipe_data()
    registered_at = created_indexes(url)[first.member_id]
    # 2. The second registers, sees two members and starts, waiting for its peer.
    second.start()
    wait_registered(stack, url, second)
    # 3. A stray key lands under the token.
    stray = requests.put(f"{url}/stray", data={"value": "not a member"}, timeout=5)
    assert stray.status_code == 200, stray.text
    # 4. The first comes back: it registers again and must still be inside the size.
    first.start()
    wait_healthy(cluster, stack)
    assert not FULL_CLUSTER_PATTERN.search(first.output), first.describe()
    indexes = created_indexes(url)
    assert indexes[first.member_id] == registered_at < indexes["stray"]
    assert indexes[second.member_id] < indexes["stray"]
    assert sorted(m.name for m in cluster.member_list()) == ["m1", "m2"]


@pytest.mark.parametrize("stack", [FAKE_DS], indirect=True)
def test_member_registering_again_after_a_stray_key_keeps_its_slot(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    reregister_after_stray_key(stack, make_cluster)
