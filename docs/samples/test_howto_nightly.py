"""How-to: a nightly job against a real service (docs/howto/nightly.rst).

These tests pass against the fake and, with ``--etcd-discovery-url URL``, against a real
discovery service at URL: they use only what a real service offers too.
"""

# [head]
from __future__ import annotations

import urllib.request

import pytest
import requests

from pytest_etcd_discovery import ClusterFullError, EtcdDiscovery

# [head end]


# [both]
def test_members_register_until_the_cluster_is_full(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(2)  # on the fake, or on the real service

    etcd_discovery.register(token_url, "infra0", ["http://10.0.0.1:2380"])
    etcd_discovery.register(token_url, "infra1", ["http://10.0.0.2:2380"])

    assert etcd_discovery.token(token_url).names == ["infra0", "infra1"]
    with pytest.raises(ClusterFullError):
        etcd_discovery.register(token_url, "infra2", ["http://10.0.0.3:2380"])


def test_a_missing_member_is_etcds_404(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)

    reply = requests.get(f"{token_url}/no-such-member", timeout=5)

    assert reply.status_code == 404
    assert reply.json()["errorCode"] == 100
    # [both end]


# [forwarded]
@pytest.mark.etcd_discovery
def test_code_with_the_public_url_written_in_it(etcd_discovery: EtcdDiscovery) -> None:
    # urllib here; requests, httpx, aiohttp and child processes with env() alike.
    with urllib.request.urlopen("https://discovery.etcd.io/new?size=3", timeout=10) as reply:
        token_url = reply.read().decode()

    # The fake answers https://discovery.etcd.io/<token>; a real service, its own URL.
    assert etcd_discovery.token(token_url).size == 3
    # [forwarded end]


# [fake-only]
def test_needs_the_fakes_clock(etcd_discovery: EtcdDiscovery) -> None:
    # Skips with a reason under --etcd-discovery-url: a real service has no such clock.
    etcd_discovery.clock.advance(60)
    # [fake-only end]
