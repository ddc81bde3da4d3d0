"""Real etcd 3.4 members that must not join are turned away the same way by fake and real.

Measured against etcd 3.4.23 and the real discovery.etcd.io (zap logger, as EtcdProcess runs it):

* extra member, ``--discovery-fallback=exit``: exit code 1, ``"failed to bootstrap; discovery
  token was already used"`` with error ``"failed to join discovery cluster (discovery: cluster
  is full)"``; it only sends the size and token GETs (no PUT: the "fast path").
* extra member, default fallback (``proxy``): ``"discovery cluster is full, falling back to
  proxy"``, then ``"v2 proxy started listening on client requests"``; it keeps running as a
  v2-only HTTP proxy on its client URL (v3/etcdctl do not work through it) and writes
  ``<data-dir>/proxy/cluster`` = ``{"PeerURLs":[...]}``. It sends the two GETs twice.
* wiped data dir, same name/peer URL/token: same member id, ``PUT ...?prevExist=false`` -> 412,
  exit code 1, ``"member has been registered with discovery service"`` / ``"found duplicate id"``.
"""

from __future__ import annotations

import json

import pytest
import requests
from realstack import (
    EXIT_TIMEOUT,
    FAKE,
    FAKE_DS,
    GET_SIZE,
    GET_TOKEN,
    PROXY_TIMEOUT,
    REAL,
    ClusterFactory,
    Stack,
    token_of,
    wait_healthy,
)

from pytest_etcd_discovery._real.cluster import (
    DUPLICATE_ID_PATTERN,
    FULL_CLUSTER_PATTERN,
    PROXY_FALLBACK_PATTERN,
    PROXY_STARTED_PATTERN,
    DiscoveryCluster,
)

SIZE = 3


def started_cluster(
    stack: Stack, make_cluster: ClusterFactory, *, enable_v2: bool = False
) -> DiscoveryCluster:
    cluster = make_cluster(stack.new_token_url(SIZE), SIZE, enable_v2=enable_v2)
    cluster.start()
    wait_healthy(cluster, stack)
    return cluster


def assert_membership_unchanged(cluster: DiscoveryCluster, stack: Stack) -> None:
    __tracebackhide__ = True
    names = [m.name for m in cluster.member_list()]
    assert names == [m.name for m in cluster.members]
    registered = stack.registered(cluster.discovery_url)
    assert sorted(registered) == sorted(m.member_id for m in cluster.members)


@pytest.mark.parametrize("stack", [FAKE, FAKE_DS, REAL], indirect=True)
def test_extra_member_with_exit_fallback_exits_cluster_full(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    cluster = started_cluster(stack, make_cluster)
    token = token_of(cluster.discovery_url)
    before = len(stack.journal(token))

    extra = cluster.add_extra_member(fallback="exit")
    code = extra.wait_exit(EXIT_TIMEOUT)

    assert code == 1, extra.describe()
    assert FULL_CLUSTER_PATTERN.search(extra.output), extra.describe()
    # The full token is seen before registering: nothing written, nobody added.
    assert stack.journal_after(token, before, 2) == [GET_SIZE, GET_TOKEN]
    assert_membership_unchanged(cluster, stack)


@pytest.mark.parametrize("stack", [FAKE, FAKE_DS, REAL], indirect=True)
def test_extra_member_by_default_falls_back_to_a_v2_proxy(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    cluster = started_cluster(stack, make_cluster, enable_v2=True)
    token = token_of(cluster.discovery_url)
    before = len(stack.journal(token))

    extra = cluster.add_extra_member()  # etcd's default: --discovery-fallback=proxy
    extra.wait_for_log(PROXY_STARTED_PATTERN, PROXY_TIMEOUT)

    assert extra.running
    assert FULL_CLUSTER_PATTERN.search(extra.output), extra.describe()
    assert PROXY_FALLBACK_PATTERN.search(extra.output), extra.describe()
    # The proxy learnt the cluster's peers from the discovery service ...
    cluster_file = json.loads((extra.data_dir / "proxy" / "cluster").read_text())
    assert sorted(cluster_file["PeerURLs"]) == sorted(m.peer_url for m in cluster.members)
    # ... and forwards v2 requests to the cluster.
    put = requests.put(f"{extra.client_url}/v2/keys/via-proxy", data={"value": "x"}, timeout=5)
    assert put.status_code == 201, put.text
    # quorum=true: a plain v2 GET reads the member's local store, which may not have
    # applied the write yet (seen: 404 "Key not found" right after the 201).
    got = requests.get(
        f"{cluster.members[-1].client_url}/v2/keys/via-proxy", params={"quorum": "true"}, timeout=5
    )
    assert got.status_code == 200, got.text
    assert got.json()["node"]["value"] == "x"
    # Fast-path check in the member, then GetCluster in the proxy: two GETs each, no PUT.
    assert stack.journal_after(token, before, 4) == [GET_SIZE, GET_TOKEN, GET_SIZE, GET_TOKEN]
    assert_membership_unchanged(cluster, stack)


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_member_with_wiped_data_dir_is_refused_as_duplicate(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    cluster = started_cluster(stack, make_cluster)
    token = token_of(cluster.discovery_url)
    member = cluster.members[1]
    member.stop()
    member.wipe_data()
    before = len(stack.journal(token))

    member.start()  # same name, peer URL and discovery URL: the same member id
    code = member.wait_exit(EXIT_TIMEOUT)

    assert code == 1, member.describe()
    assert DUPLICATE_ID_PATTERN.search(member.output), member.describe()
    put_refused = f"PUT /T/{member.member_id}?prevExist=false 412"
    assert stack.journal_after(token, before, 3) == [GET_SIZE, GET_TOKEN, put_refused]
    assert_membership_unchanged(cluster, stack)


@pytest.mark.parametrize("stack", [FAKE_DS], indirect=True)
def test_wiped_member_passes_discoveryserver_then_raft_panics(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    """Today's public service never answers 412 (every PUT is a plain set), so the wiped
    member re-registers, "finds" the cluster and starts with an empty raft log; the leader
    still remembers its old progress and etcd panics. Measured through the fake's
    discoveryserver profile (the real discoveryserver is not runnable here).
    """
    cluster = started_cluster(stack, make_cluster)
    token = token_of(cluster.discovery_url)
    member = cluster.members[1]
    member.stop()
    member.wipe_data()
    before = len(stack.journal(token))

    member.start()
    code = member.wait_exit(EXIT_TIMEOUT)

    assert code != 0, member.describe()
    assert "is out of range" in member.output, member.describe()  # tocommit(N) > lastIndex
    assert not DUPLICATE_ID_PATTERN.search(member.output)
    after = stack.journal(token)[before:]
    assert f"PUT /T/{member.member_id}?prevExist=false 200" in after
