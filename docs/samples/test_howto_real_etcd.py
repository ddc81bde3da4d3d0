"""How-to: real etcd clusters through the fake (docs/howto/real-etcd.rst)."""

# [head]
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_etcd_discovery import DiscoveryCluster, EtcdDiscovery

pytestmark = pytest.mark.skipif(
    not (shutil.which("etcd") and shutil.which("etcdctl")), reason="needs etcd and etcdctl"
)
# [head end]


# [cluster]
@pytest.mark.etcd_discovery(size=3)
def test_three_members_bootstrap(
    etcd_discovery: EtcdDiscovery, etcd_discovery_url: str, tmp_path: Path
) -> None:
    with DiscoveryCluster(etcd_discovery_url, size=3, base_dir=tmp_path) as cluster:
        cluster.wait_healthy()

        assert sorted(m.name for m in cluster.member_list()) == ["m1", "m2", "m3"]
    # Every member registered under the token, as etcd 3.4 does it.
    assert etcd_discovery.token(etcd_discovery_url).full
    # [cluster end]
