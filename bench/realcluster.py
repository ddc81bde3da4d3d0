"""Group 5: a real 3-node etcd 3.4 cluster bootstrapped through a discovery URL."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pytest_etcd_discovery._real.cluster import FAST_RAFT_ARGS, DiscoveryCluster
from pytest_etcd_discovery._real.processes import missing_binaries

from .common import RunError, new_token
from .stats import clock
from .targets import Target

SIZE = 3


def cluster_missing() -> str | None:
    return missing_binaries("etcd", "etcdctl")


def bootstrap_cluster(target: Target) -> float:
    """Seconds from starting the members to all of them healthy (and 3 in member list)."""
    token_url = new_token(target, SIZE)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = DiscoveryCluster(token_url, SIZE, base_dir=Path(tmp), extra_args=FAST_RAFT_ARGS)
        start = clock()
        with cluster:
            cluster.wait_healthy(timeout=60)
            seconds = clock() - start
            members = cluster.member_list()
            if len(members) != SIZE:
                raise RunError(f"{target.name}: cluster has {len(members)} members, not {SIZE}")
    return seconds
