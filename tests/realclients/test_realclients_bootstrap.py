"""Real etcd 3.4 clusters bootstrap through the fake exactly as through the real service."""

from __future__ import annotations

import re

import pytest
import requests
from realstack import (
    FAKE,
    FAKE_DS,
    GET_SIZE,
    GET_TOKEN,
    REAL,
    ClusterFactory,
    Stack,
    new_custom_id,
    token_of,
    wait_healthy,
)

from pytest_etcd_discovery._real.cluster import DiscoveryCluster, etcd_member_id
from pytest_etcd_discovery._real.processes import RealDiscoveryService
from pytest_etcd_discovery._transport.server import DiscoveryServer


def assert_cluster_formed(cluster: DiscoveryCluster, stack: Stack) -> None:
    """etcdctl sees every member started, under its name, id and URLs; the discovery
    service holds one registration per member, keyed by the id etcd derives.
    """
    __tracebackhide__ = True
    url = cluster.discovery_url
    members = cluster.member_list()
    expected = sorted(cluster.members, key=lambda m: m.name)
    assert [m.name for m in members] == [m.name for m in expected], stack.describe(token_of(url))
    for info, member in zip(members, expected, strict=True):
        assert info.started
        assert info.id == etcd_member_id([member.peer_url], url)
        assert info.peer_urls == (member.peer_url,)
        assert info.client_urls == (member.client_url,)
        assert not info.is_learner
    assert stack.registered(url) == {m.member_id: f"{m.name}={m.peer_url}" for m in expected}


@pytest.mark.parametrize(
    ("stack", "size"),
    [(FAKE, 1), (FAKE, 3), (FAKE, 5), (FAKE_DS, 3), (REAL, 1), (REAL, 3), (REAL, 5)],
    indirect=["stack"],
)
def test_cluster_bootstraps_through_discovery_token(
    stack: Stack, size: int, make_cluster: ClusterFactory
) -> None:
    url = stack.new_token_url(size)
    cluster = make_cluster(url, size)
    cluster.start()
    wait_healthy(cluster, stack)
    assert_cluster_formed(cluster, stack)


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_cluster_bootstraps_through_custom_v2_keys_url(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    """``--discovery http://host/v2/keys/discovery/<id>`` after creating ``<id>/_config/size``
    (the documented "custom etcd discovery service" setup).
    """
    assert stack.keys_url is not None
    base = f"{stack.keys_url}/discovery/{new_custom_id()}"
    created = requests.put(f"{base}/_config/size", data={"value": "3"}, timeout=5)
    assert created.status_code == 201, created.text
    cluster = make_cluster(base, 3)
    cluster.start()
    wait_healthy(cluster, stack)
    assert_cluster_formed(cluster, stack)


@pytest.mark.parametrize("stack", [FAKE, FAKE_DS, REAL], indirect=True)
def test_two_clusters_bootstrap_at_once_without_crosstalk(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    """Six members blocked in long polls on two tokens at the same time."""
    clusters = [make_cluster(stack.new_token_url(3), 3) for _ in range(2)]
    for cluster in clusters:
        cluster.start()
    for cluster in clusters:
        wait_healthy(cluster, stack)
    for cluster in clusters:
        assert_cluster_formed(cluster, stack)


def normalise(journal: list[str], member_id: str) -> list[str]:
    """Drop what legitimately differs between services: the member id and store indexes."""
    return [
        re.sub(r"waitIndex=\d+", "waitIndex=N", line.replace(member_id, "ID")) for line in journal
    ]


@pytest.mark.usefixtures("etcd_binaries")
def test_single_member_sends_the_same_requests_to_fake_and_real(
    fake_service: DiscoveryServer,
    real_service: RealDiscoveryService,
    make_cluster: ClusterFactory,
) -> None:
    """One member's whole discovery conversation, request by request, fake vs real."""
    journals = []
    for stack in (
        Stack(FAKE, fake_service.url, None, fake=fake_service),
        Stack(REAL, real_service.url, None, real=real_service),
    ):
        url = stack.new_token_url(1)
        cluster = make_cluster(url, 1)
        cluster.start()
        wait_healthy(cluster, stack)
        journals.append(normalise(stack.journal(token_of(url)), cluster.members[0].member_id))
    fake_journal, real_journal = journals
    assert fake_journal == real_journal
    # And it is the conversation the spec describes (section 4), not an accident.
    assert real_journal == [
        GET_SIZE,
        GET_TOKEN,
        "PUT /T/ID?prevExist=false 201",
        "GET /T/ID?recursive=false&wait=true&waitIndex=N 200",
        GET_SIZE,
        GET_TOKEN,
    ]
