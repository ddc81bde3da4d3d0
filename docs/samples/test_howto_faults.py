"""How-to: faults and outages (docs/howto/faults.rst)."""

# [head]
from __future__ import annotations

import pytest
import requests

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery.scenarios import backend_down, outage

# [head end]


# [fail]
def test_the_next_two_gets_fail(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)
    etcd_discovery.faults.fail(503, method="GET", times=2)

    replies = [requests.get(token_url, timeout=5) for _ in range(3)]

    assert [r.status_code for r in replies] == [503, 503, 200]
    assert replies[0].text == "Service Unavailable\n"  # Go's http.Error text
    assert [c.fault for c in etcd_discovery.calls] == ["503 GET", "503 GET", None]
    # [fail end]


# [drop]
def test_a_dropped_connection(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)
    etcd_discovery.faults.drop(route="size", times=1)

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{token_url}/_config/size", timeout=5)
    assert requests.get(f"{token_url}/_config/size", timeout=5).status_code == 200
    assert etcd_discovery.calls[0].status == 0  # no reply was sent
    # [drop end]


# [marker]
@pytest.mark.etcd_discovery_fault(404, route="size", times=1)
def test_a_vanished_size_key(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)

    reply = requests.get(f"{token_url}/_config/size", timeout=5)

    assert reply.status_code == 404
    assert reply.json()["errorCode"] == 100  # etcd's "Key not found", as the real one
    # [marker end]


# [scenario]
def test_an_outage_that_ends(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)
    down = outage(etcd_discovery, 503, method="GET", requests=1)

    assert requests.get(token_url, timeout=5).status_code == 503
    assert requests.get(token_url, timeout=5).status_code == 200
    assert down.failed == 1 and down.over


def test_the_backend_behind_the_service_is_down(etcd_discovery: EtcdDiscovery) -> None:
    backend_down(etcd_discovery)

    reply = requests.get(f"{etcd_discovery.url}/new?size=3", timeout=5)

    assert (reply.status_code, reply.text) == (400, "Unable to generate token\n")
    # [scenario end]
