"""How-to: say what the code under test must have asked (docs/howto/expectations.rst)."""

# [head]
from __future__ import annotations

import pytest
import requests

from pytest_etcd_discovery import EtcdDiscovery

PUBLIC = "https://discovery.etcd.io"


def bootstrap(token_url: str, name: str, peer_url: str, attempts: int = 3) -> None:
    """The code under test: read the size (retrying a 5xx), then register."""
    for _ in range(attempts):
        if requests.get(f"{token_url}/_config/size", timeout=5).status_code == 200:
            break
    requests.put(f"{token_url}/{name}", data={"value": f"{name}={peer_url}"}, timeout=5)
# [head end]


# [requested]
@pytest.mark.etcd_discovery(strict=True)  # every fault must fire, nothing left in flight
@pytest.mark.etcd_discovery_fault(503, route="size", times=1)
def test_bootstrap_retries_the_size_read(
    etcd_discovery: EtcdDiscovery, etcd_discovery_url: str
) -> None:
    token_url = etcd_discovery_url.replace(etcd_discovery.url, PUBLIC)

    bootstrap(token_url, "infra0", "http://10.0.0.1:2380")

    etcd_discovery.faults.assert_all_fired()  # the 503 was really served
    etcd_discovery.assert_requested(2, method="GET", route="size", token=token_url)
    etcd_discovery.assert_not_requested(method="DELETE")
    etcd_discovery.assert_registered(token_url, ["infra0"])
    # [requested end]


# [filter]
def test_the_journal_filtered(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)
    requests.get(token_url, timeout=5)
    requests.get(f"{token_url}/_config/size", timeout=5)
    requests.put(f"{token_url}/infra0", data={"value": "infra0=http://10.0.0.1:2380"}, timeout=5)

    calls = etcd_discovery.calls.filter(token=token_url, method="GET")
    assert [c.route for c in calls] == ["token", "size"]
    assert etcd_discovery.calls.filter(status=range(200, 300), method="PUT")[0].status == 201
    # [filter end]


# [failure]
def test_what_a_failure_says(etcd_discovery: EtcdDiscovery) -> None:
    requests.get(f"{etcd_discovery.url}/health", timeout=5)

    with pytest.raises(AssertionError) as failed:
        etcd_discovery.assert_requested(route="new")
    assert str(failed.value) == (
        "etcd discovery: expected at least 1 request matching route=new, got 0\n"
        "  closest requests that did not match (1 of 1):\n"
        "    live      GET    /health -> 200  <- route health, not new"
    )
    # [failure end]
