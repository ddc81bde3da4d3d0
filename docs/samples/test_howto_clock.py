"""How-to: the clock and TTLs (docs/howto/clock.rst)."""

# [head]
from __future__ import annotations

import threading

import pytest
import requests

from pytest_etcd_discovery import EtcdDiscovery

WEEK = 7 * 24 * 3600
# [head end]


# [expire]
def test_an_etcd04_registration_expires_after_a_week(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)
    etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.1:7001")  # ttl: 7 days
    assert etcd_discovery.token(token_url).members[0].ttl == WEEK

    etcd_discovery.clock.advance(WEEK - 1)
    assert etcd_discovery.token(token_url).names == ["core-1"]

    etcd_discovery.clock.advance(1)
    assert etcd_discovery.token(token_url).names == []
    # [expire end]


# [frozen]
@pytest.mark.etcd_discovery(frozen=True)
def test_ttls_do_not_move_on_their_own(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(1)
    requests.put(f"{token_url}/m1", data={"value": "x", "ttl": "30"}, timeout=5)

    # However long this test takes, the TTL only moves when the test moves the clock.
    assert requests.get(f"{token_url}/m1", timeout=5).json()["node"]["ttl"] == 30
    etcd_discovery.clock.advance(10)
    assert requests.get(f"{token_url}/m1", timeout=5).json()["node"]["ttl"] == 20
    # [frozen end]


# [watch]
def test_a_watch_sees_the_expiry(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(1)
    requests.put(f"{token_url}/m1", data={"value": "x", "ttl": "60"}, timeout=5)
    seen: list[requests.Response] = []
    watcher = threading.Thread(
        target=lambda: seen.append(requests.get(f"{token_url}/m1?wait=true", timeout=10))
    )
    watcher.start()

    # Move the clock only once the long poll waits: no sleep, no race.
    assert etcd_discovery.server.store.wait_for_watchers(1, timeout=10)
    etcd_discovery.clock.advance(60)
    watcher.join(timeout=10)

    assert seen[0].json()["action"] == "expire"
    # [watch end]
