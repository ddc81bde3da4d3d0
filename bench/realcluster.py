"""Group 5: real etcd 3.4 clusters (3 and 5 members) bootstrapped through a discovery URL.

``live-tls`` members reach the fake at ``https://discovery.etcd.io`` through its TLS
front (:class:`~bench.targets.FrontTarget`), the others the service's plain URL."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pytest_etcd_discovery._real.cluster import FAST_RAFT_ARGS, DiscoveryCluster
from pytest_etcd_discovery._real.processes import missing_binaries

from .common import RunError, new_token
from .stats import clock
from .targets import Target


def cluster_missing() -> str | None:
    return missing_binaries("etcd", "etcdctl")


def bootstrap_cluster(target: Target, size: int = 3) -> float:
    """Seconds from starting the members to all of them healthy (and ``size`` in the
    member list)."""
    token_url = new_token(target, size)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = DiscoveryCluster(
            token_url,
            size,
            base_dir=Path(tmp),
            extra_args=[*FAST_RAFT_ARGS, *target.etcd_args()],
            env=target.child_env(),
        )
        start = clock()
        with cluster:
            cluster.wait_healthy(timeout=60)
            seconds = clock() - start
            members = cluster.member_list()
            if len(members) != size:
                raise RunError(f"{target.name}: cluster has {len(members)} members, not {size}")
    return seconds
