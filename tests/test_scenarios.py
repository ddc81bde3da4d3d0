"""Scenario helpers (pytest_etcd_discovery.scenarios): what each sets up, and how a real
etcd 3.4 member reacts to it.

The real-client tests use one-member tokens so each etcd run takes about a second (the
retry test waits out etcd's first 2 s backoff). They skip with a "real binaries
missing" reason without etcd/etcdctl (a failure under ETCD_DISCOVERY_REQUIRE_REAL=1).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from realutil import require_real

from pytest_etcd_discovery import scenarios
from pytest_etcd_discovery._etcd_discovery import DiscoveryError, EtcdDiscovery
from pytest_etcd_discovery._real.cluster import (
    DUPLICATE_ID_PATTERN,
    FULL_CLUSTER_PATTERN,
    DiscoveryCluster,
    EtcdMember,
)

PUBLIC = "https://discovery.etcd.io"
#: etcd's own bound for one member's bootstrap here (seconds).
BOOT_TIMEOUT = 30


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=10)


# -- what the helpers set up (fake only, no binaries) ------------------------------------


def test_full_cluster(etcd_discovery: EtcdDiscovery) -> None:
    url, members = scenarios.full_cluster(etcd_discovery, 3)
    view = etcd_discovery.token(url)
    assert view.full and view.size == 3
    assert [m.key for m in view.members] == [m.key for m in members]
    # etcd 3.4's own registration of a 4th member would still be accepted by the
    # service: "full" is the client's decision, from the listing.
    assert len({m.key for m in members}) == 3


def test_full_cluster_public_url(etcd_discovery: EtcdDiscovery) -> None:
    url, _ = scenarios.full_cluster(etcd_discovery, 1, base_url=PUBLIC)
    assert url.startswith(PUBLIC + "/")
    with etcd_discovery.intercept():
        listing = get(url).json()
    assert len(listing["node"]["nodes"]) == 1


def test_duplicate_member(etcd_discovery: EtcdDiscovery) -> None:
    url = etcd_discovery.new_token(3)
    first = scenarios.duplicate_member(etcd_discovery, url, ["http://10.0.0.1:2380"])
    with pytest.raises(DiscoveryError) as refused:
        etcd_discovery.register(url, "again", ["http://10.0.0.1:2380"])
    assert refused.value.status == 412
    assert refused.value.error_code == 105
    assert refused.value.error is not None
    assert refused.value.error["cause"] == first.key  # etcd names the full key


def test_stale_state(etcd_discovery: EtcdDiscovery) -> None:
    url = scenarios.stale_state(etcd_discovery, 3)
    view = etcd_discovery.token(url)
    assert (view.state, view.members) == ("started", ())
    # etcd 0.4's first step then fails: _state exists already.
    reply = requests.put(f"{url}/_state?prevExist=false", data={"value": "started"}, timeout=10)
    assert reply.status_code == 412


def test_missing_size(etcd_discovery: EtcdDiscovery) -> None:
    url = scenarios.missing_size(etcd_discovery)
    reply = get(f"{url}/_config/size")
    assert reply.status_code == 404
    assert reply.json()["errorCode"] == 100
    assert get(url).status_code == 200  # the token itself is still there


def test_delete_token_now(etcd_discovery: EtcdDiscovery) -> None:
    url = etcd_discovery.new_token(3)
    etcd_discovery.register(url, "m1", ["http://10.0.0.1:2380"])
    scenarios.delete_token(etcd_discovery, url)
    assert get(url).status_code == 404
    assert etcd_discovery.tokens() == []


@pytest.mark.etcd_discovery(profile="discoveryserver")
def test_delete_token_on_discoveryserver(etcd_discovery: EtcdDiscovery) -> None:
    url = etcd_discovery.new_token(3)
    scenarios.delete_token(etcd_discovery, url)
    reply = get(url)
    assert (reply.status_code, reply.text) == (400, "unable to GET token\n")


def test_delete_token_on_a_later_request(etcd_discovery: EtcdDiscovery) -> None:
    url = etcd_discovery.new_token(3)
    rule = scenarios.delete_token_on(etcd_discovery, url, method="GET", nth=2)
    assert get(f"{url}/_config/size").status_code == 200
    # The second GET finds the token gone: deleted just before it was answered.
    assert get(url).status_code == 404
    assert rule.fired == 1
    assert [c.fault for c in etcd_discovery.calls] == [None, rule.describe()]


def test_outage_bounded_and_manual(etcd_discovery: EtcdDiscovery) -> None:
    url = etcd_discovery.new_token(3)
    bounded = scenarios.outage(etcd_discovery, requests=2)
    assert [get(url).status_code for _ in range(3)] == [503, 503, 200]
    assert (bounded.failed, bounded.over) == (2, True)
    manual = scenarios.outage(etcd_discovery, 500, method="PUT")
    for _ in range(3):
        assert requests.put(f"{url}/x", data={"value": "1"}, timeout=10).status_code == 500
    manual.recover()
    assert requests.put(f"{url}/x", data={"value": "1"}, timeout=10).status_code == 201
    with (
        scenarios.outage_during(etcd_discovery, drop=True),
        pytest.raises(requests.ConnectionError),
    ):
        get(url)
    assert get(url).status_code == 200


# -- a real etcd 3.4 member's reaction ---------------------------------------------------


@pytest.fixture
def etcd_bin() -> None:
    require_real("etcd", "etcdctl")


@pytest.fixture
def cluster_factory(tmp_path: Path, etcd_bin: None) -> Iterator[list[DiscoveryCluster]]:
    made: list[DiscoveryCluster] = []
    try:
        yield made
    finally:
        for cluster in made:
            cluster.stop()


def one_member(made: list[DiscoveryCluster], url: str, base: Path, **kw: object) -> EtcdMember:
    cluster = DiscoveryCluster(url, 1, base_dir=base, **kw)  # type: ignore[arg-type]
    made.append(cluster)
    cluster.start()
    return cluster.members[0]


def test_real_etcd_retries_a_503_on_get_then_joins(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    url = etcd_discovery.new_token(1)
    outage = scenarios.outage(etcd_discovery, 503, method="GET", requests=1)
    started = time.monotonic()
    member = one_member(cluster_factory, url, tmp_path)
    member.wait_ready(BOOT_TIMEOUT)
    took = time.monotonic() - started
    assert outage.failed == 1
    journal = [(c.method, c.status, c.fault) for c in etcd_discovery.calls]
    assert journal[0] == ("GET", 503, "503 GET")
    assert ("PUT", 201, None) in journal
    # etcd waited out its first backoff (2 s) before asking again.
    first, second = etcd_discovery.calls[0], etcd_discovery.calls[1]
    assert second.time - first.time >= 1.5, journal
    assert took >= 1.5
    # zap: "retry connecting to discovery service" ... "backoff":"2s"
    assert re.search(r'retry connecting to discovery service.*"backoff":"2s"', member.output)


def test_real_etcd_retries_a_dropped_get_then_joins(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    url = etcd_discovery.new_token(1)
    scenarios.outage(etcd_discovery, method="GET", requests=1, drop=True)
    member = one_member(cluster_factory, url, tmp_path)
    member.wait_ready(BOOT_TIMEOUT)
    statuses = [c.status for c in etcd_discovery.calls]
    assert statuses[0] == 0 and 201 in statuses


def test_real_etcd_exits_on_a_503_to_its_put(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    url = etcd_discovery.new_token(1)
    scenarios.outage(etcd_discovery, 503, method="PUT")
    member = one_member(cluster_factory, url, tmp_path)
    code = member.wait_exit(BOOT_TIMEOUT)
    assert code != 0, member.describe()
    puts = [c for c in etcd_discovery.calls if c.method == "PUT"]
    assert [(c.status, c.fault) for c in puts] == [(503, "503 PUT")]
    # etcd's v2 client reads a 503 as "no leader"; on the PUT that is fatal.
    assert re.search(
        r"failed to join discovery cluster \(client: etcd member http://\S+ has no leader\)",
        member.output,
    ), member.describe()


def test_real_etcd_refuses_a_full_cluster(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    url, _ = scenarios.full_cluster(etcd_discovery, 1)
    member = one_member(cluster_factory, url, tmp_path, fallback="exit")
    assert member.wait_exit(BOOT_TIMEOUT) != 0
    assert FULL_CLUSTER_PATTERN.search(member.output), member.describe()
    assert not [c for c in etcd_discovery.calls if c.method == "PUT"]


def test_real_etcd_exits_on_its_duplicate_id(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    url = etcd_discovery.new_token(2)
    cluster = DiscoveryCluster(url, 1, base_dir=tmp_path)
    cluster_factory.append(cluster)
    member = cluster.members[0]
    taken = scenarios.duplicate_member(etcd_discovery, url, [member.peer_url])
    assert taken.id == member.member_id
    cluster.start()
    assert member.wait_exit(BOOT_TIMEOUT) != 0
    assert DUPLICATE_ID_PATTERN.search(member.output), member.describe()
    puts = [(c.method, c.status) for c in etcd_discovery.calls if c.method == "PUT"]
    assert puts == [("PUT", 412)]


def test_real_etcd_3_4_ignores_a_stale_state(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    """``_state`` only mattered to etcd 0.4: 3.4 hides ``_`` keys and bootstraps."""
    url = scenarios.stale_state(etcd_discovery, 1)
    member = one_member(cluster_factory, url, tmp_path)
    member.wait_ready(BOOT_TIMEOUT)
    assert etcd_discovery.token(url).state == "started"


def test_real_etcd_fails_without_a_size_key(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    url = scenarios.missing_size(etcd_discovery, 1)
    member = one_member(cluster_factory, url, tmp_path)
    assert member.wait_exit(BOOT_TIMEOUT) == 1
    assert "100: Key not found" in member.output, member.describe()


def test_real_etcd_fails_when_the_token_vanishes_mid_bootstrap(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    """The token is garbage-collected right after etcd read its size: the listing
    etcd asks for next is a 404, which is fatal."""
    url = etcd_discovery.new_token(1)
    scenarios.delete_token_on(etcd_discovery, url, nth=2)
    member = one_member(cluster_factory, url, tmp_path)
    assert member.wait_exit(BOOT_TIMEOUT) == 1
    assert "100: Key not found" in member.output, member.describe()
    journal = [(c.method, c.status) for c in etcd_discovery.calls]
    assert journal[:2] == [("GET", 200), ("GET", 404)], journal


def _probe(url: str, token: str) -> list[tuple[int, str]]:
    out = []
    for path in (f"/{token}", f"/{token}/_config/size", f"/{token}/m1", "/new", "/health"):
        try:
            reply = requests.get(url + path, timeout=10)
            out.append((reply.status_code, reply.text))
        except requests.ConnectionError:
            out.append((0, "connection dropped"))
    return out


def test_backend_down_matches_the_real_service_without_its_etcd(
    etcd_discovery: EtcdDiscovery,
) -> None:
    require_real("etcd", "discovery.etcd.io")
    from pytest_etcd_discovery._real.processes import RealDiscoveryService

    real = RealDiscoveryService()
    real.start()
    try:
        token = new_real_token(real.url)
        assert real.etcd is not None
        real.etcd.stop()  # the service stays up, its etcd is gone
        expected = _probe(real.url, token)
    finally:
        real.stop()
    fake_token = etcd_discovery.new_token(3).rsplit("/", 1)[1]
    scenarios.backend_down(etcd_discovery)
    assert _probe(etcd_discovery.url, fake_token) == expected
    assert expected[0] == (0, "connection dropped")
    assert expected[3] == (400, "Unable to generate token\n")


def new_real_token(url: str) -> str:
    return requests.get(f"{url}/new", timeout=10).text.rsplit("/", 1)[1]


def test_real_etcd_gives_up_on_a_reply_slower_than_5_s(
    etcd_discovery: EtcdDiscovery, cluster_factory: list[DiscoveryCluster], tmp_path: Path
) -> None:
    """etcd's discovery client bounds every non-watch request with a 5 s context: a slow
    reply is not retried, the member exits (operators saw "context deadline exceeded")."""
    url = etcd_discovery.new_token(1)
    etcd_discovery.faults.delay(6, route="size", times=1)
    member = one_member(cluster_factory, url, tmp_path)
    started = time.monotonic()
    assert member.wait_exit(BOOT_TIMEOUT) == 1
    assert time.monotonic() - started >= 4.5
    assert "context deadline exceeded" in member.output, member.describe()
