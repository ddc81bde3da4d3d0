"""DiscoveryCluster's own behaviour: id formula, port races, stop order, data dirs."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from realstack import FAKE, ClusterFactory, Stack, wait_healthy

from pytest_etcd_discovery._real.cluster import (
    PORT_TAKEN_PATTERN,
    DiscoveryCluster,
    etcd_member_id,
)


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


def _wal_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*.wal"))


@pytest.mark.parametrize("stack", [FAKE], indirect=True)
def test_stop_removes_the_members_data_unless_asked_to_keep_it(
    stack: Stack, tmp_path: Path
) -> None:
    """etcd preallocates 64 MB of WAL per member: a suite of clusters filled gigabytes."""
    dropped = DiscoveryCluster(stack.new_token_url(1), 1, base_dir=tmp_path / "dropped")
    kept = DiscoveryCluster(stack.new_token_url(1), 1, base_dir=tmp_path / "kept", keep_data=True)
    try:
        for cluster in (dropped, kept):
            cluster.start()
            wait_healthy(cluster, stack)
        extra = dropped.add_extra_member(fallback="exit")
        assert extra.wait_exit(30) == 1  # a full token: it exits; its dir goes too
        data = [m.data_dir for m in (*dropped.members, extra)]
        assert _wal_bytes(dropped.members[0].data_dir) > 0  # there was something to remove
    finally:
        dropped.stop()
        kept.stop()
    assert not any(path.exists() for path in data)
    assert (tmp_path / "dropped").is_dir()  # only the members' dirs: base_dir is the caller's
    assert _wal_bytes(kept.members[0].data_dir) > 0
    # With its data a member starts again as itself (same id, no new registration).
    kept.start()
    try:
        wait_healthy(kept, stack)
    finally:
        kept.stop()
    assert kept.members[0].data_dir.exists()
    shutil.rmtree(kept.members[0].data_dir)  # kept on purpose; the suite's tmp stays small


@pytest.mark.parametrize("stack", [FAKE], indirect=True)
def test_keep_data_on_error_keeps_it_only_when_the_with_block_raised(
    stack: Stack, tmp_path: Path
) -> None:
    with DiscoveryCluster(
        stack.new_token_url(1), 1, base_dir=tmp_path / "fine", keep_data="on-error"
    ) as fine:
        wait_healthy(fine, stack)
    assert not fine.members[0].data_dir.exists()
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        DiscoveryCluster(
            stack.new_token_url(1), 1, base_dir=tmp_path / "failed", keep_data="on-error"
        ) as failed,
    ):
        wait_healthy(failed, stack)
        raise RuntimeError("the test failed")
    assert _wal_bytes(failed.members[0].data_dir) > 0
    shutil.rmtree(tmp_path / "failed")  # this test's own leftover


def test_keep_data_takes_a_bool_or_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_data"):
        DiscoveryCluster("http://127.0.0.1:1/t", 1, base_dir=tmp_path, keep_data="yes")  # type: ignore[arg-type]
