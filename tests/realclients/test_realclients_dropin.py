"""A real 3-member etcd 3.4 cluster bootstraps from ``https://discovery.etcd.io/<token>``.

etcd is handed the public token URL, as in production, with ``--discovery-proxy`` naming
the fake's front and the environment's ``SSL_CERT_FILE`` (system roots plus the test CA):
etcd's Go client sends ``CONNECT discovery.etcd.io:443`` to the front, verifies the fake's
certificate, and registers through the fake.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from realstack import ClusterFactory

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._real.cluster import DiscoveryCluster
from pytest_etcd_discovery._real.processes import EtcdProcess

PUBLIC = "https://discovery.etcd.io"


@pytest.mark.etcd_discovery
def test_cluster_bootstraps_through_the_front(
    etcd_discovery: EtcdDiscovery, etcd_binaries: None, make_cluster: ClusterFactory
) -> None:
    token_url = etcd_discovery.new_token(3, base_url=PUBLIC)
    assert token_url.startswith(PUBLIC + "/")
    # Only the CA bundle from env(): the proxy is etcd's own --discovery-proxy flag.
    env = {**etcd_discovery.env(), "SSL_CERT_FILE": etcd_discovery.ca_file}
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(key)
    cluster = DiscoveryCluster(
        token_url,
        3,
        base_dir=make_cluster.base / "dropin",
        extra_args=[f"--discovery-proxy={etcd_discovery.front.proxy_url}"],
        env=env,
    )
    make_cluster.clusters.append(cluster)  # stopped after the test like the factory's
    cluster.start()
    cluster.wait_healthy(60)
    assert sorted(m.name for m in cluster.member_list()) == ["m1", "m2", "m3"]
    view = etcd_discovery.token(token_url)
    assert sorted(view.names) == ["m1", "m2", "m3"]
    # Every member's discovery traffic came through the front, over TLS, to the fake.
    puts = [c for c in etcd_discovery.calls if c.method == "PUT"]
    assert len(puts) == 3 and {c.transport for c in puts} == {"live"}


@pytest.mark.etcd_discovery
def test_a_member_started_with_env_alone(
    etcd_discovery: EtcdDiscovery, etcd_binaries: None, tmp_path: Path
) -> None:
    # No --discovery-proxy flag: env()'s ETCD_DISCOVERY_PROXY and SSL_CERT_FILE suffice.
    token_url = etcd_discovery.new_token(1, base_url=PUBLIC)
    member = EtcdProcess("solo", tmp_path / "solo.etcd", extra_args=["--discovery", token_url])
    member.env = etcd_discovery.env()  # as given: EtcdProcess would drop ETCD_* variables
    try:
        with member:
            member.wait_ready(60)
    finally:
        shutil.rmtree(member.data_dir, ignore_errors=True)  # its WAL is 62 MB
    assert etcd_discovery.token(token_url).names == ["solo"]
    assert {c.transport for c in etcd_discovery.calls} == {"live"}
