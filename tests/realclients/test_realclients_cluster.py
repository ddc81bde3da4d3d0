"""DiscoveryCluster's own behaviour: id formula, port races, stop order."""

from __future__ import annotations

import socket
import time

import pytest
from realstack import FAKE, ClusterFactory, Stack, wait_healthy

from pytest_etcd_discovery.real.cluster import PORT_TAKEN_PATTERN, etcd_member_id


def test_member_id_formula_matches_an_id_etcd_registered() -> None:
    # Measured: etcd 3.4.23 registered this key for this peer URL and discovery URL.
    # 15 hex digits: the id is printed without zero padding.
    url = "http://127.0.0.1:28087/8d64c987c9ae2a1964a66a7ff775b701"
    assert etcd_member_id(["http://127.0.0.1:23002"], url) == "521f2ae9dc80ca0"
    # Peer URLs are sorted before hashing, so their order does not matter.
    urls = ["http://127.0.0.2:2380", "http://127.0.0.1:2380"]
    assert etcd_member_id(urls, url) == etcd_member_id(sorted(urls), url)


@pytest.mark.parametrize("stack", [FAKE], indirect=True)
def test_member_that_lost_its_port_is_restarted_on_new_ports(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    cluster = make_cluster(stack.new_token_url(1), 1)
    member = cluster.members[0]
    with socket.socket() as squatter:
        # Someone else takes the client port between free_port() and etcd's bind.
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        member.client_port = squatter.getsockname()[1]
        cluster.start()
        wait_healthy(cluster, stack)
    assert PORT_TAKEN_PATTERN.search(member.previous_output)
    assert [m.name for m in cluster.member_list()] == ["m1"]


@pytest.mark.parametrize("stack", [FAKE], indirect=True)
def test_stop_is_quick_and_leaves_nothing_running(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    cluster = make_cluster(stack.new_token_url(3), 3)
    cluster.start()
    wait_healthy(cluster, stack)
    extra = cluster.add_extra_member(fallback="exit")
    started = time.monotonic()
    cluster.stop()
    # Leader last: no member waits out a leadership handover (5.5 s when it goes wrong).
    assert time.monotonic() - started < 5.0
    assert not any(m.running for m in [*cluster.members, extra])
    cluster.stop()  # twice is harmless
