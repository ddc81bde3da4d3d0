"""How-to: code that calls https://discovery.etcd.io itself, and subprocesses
(docs/howto/direct-calls.rst)."""

# [head]
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest
import requests

from pytest_etcd_discovery import DiscoveryHostGuardError, EtcdDiscovery

# [head end]


# [code]
def create_cluster_token(size: int) -> str:
    """Code under test: it knows nothing of the fake."""
    reply = requests.get("https://discovery.etcd.io/new", params={"size": size}, timeout=5)
    reply.raise_for_status()
    return reply.text.strip()
    # [code end]


# [marker]
@pytest.mark.etcd_discovery
def test_with_the_marker(etcd_discovery: EtcdDiscovery) -> None:
    token_url = create_cluster_token(5)

    assert token_url.startswith("https://discovery.etcd.io/")
    assert etcd_discovery.token(token_url).size == 5
    # [marker end]


# [block]
def test_with_a_block(etcd_discovery: EtcdDiscovery) -> None:
    with etcd_discovery.intercept():
        token_url = create_cluster_token(3)
    assert etcd_discovery.token(token_url).size == 3
    assert [(c.path, c.transport) for c in etcd_discovery.calls] == [("/new", "inprocess")]
    # [block end]


# [subprocess]
CHILD = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_config/size", timeout=5) as reply:
    print(reply.read().decode())
"""


def test_a_subprocess_uses_the_live_url(etcd_discovery: EtcdDiscovery) -> None:
    token_url = etcd_discovery.new_token(3)  # http://127.0.0.1:<port>/<token>

    out = subprocess.run(
        [sys.executable, "-c", CHILD, token_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout

    assert '"value":"3"' in out
    assert [c.transport for c in etcd_discovery.calls] == ["live"]
    # [subprocess end]


# [urllib]
@pytest.mark.etcd_discovery
def test_any_client_of_the_test_process(etcd_discovery: EtcdDiscovery) -> None:
    # urllib, http.client, httpx, aiohttp: over real TLS to the fake, certificate checked.
    with urllib.request.urlopen("https://discovery.etcd.io/new?size=3", timeout=5) as reply:
        token_url = reply.read().decode()

    assert token_url.startswith("https://discovery.etcd.io/")
    assert etcd_discovery.token(token_url).size == 3
    assert [(c.path, c.transport) for c in etcd_discovery.calls] == [("/new", "live")]
    # [urllib end]


# [guard]
@pytest.mark.etcd_discovery
def test_what_cannot_be_served_fails_at_once(etcd_discovery: EtcdDiscovery) -> None:
    # Plain http on port 80 is not the service: refused here, no DNS query is sent.
    with pytest.raises(DiscoveryHostGuardError, match=r"discovery\.etcd\.io"):
        socket.getaddrinfo("discovery.etcd.io", 80)
    # [guard end]


# [env]
@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_a_child_process_reaches_the_public_url(etcd_discovery: EtcdDiscovery) -> None:
    token_url = subprocess.run(
        ["curl", "-fsS", "https://discovery.etcd.io/new?size=3"],
        env=etcd_discovery.env(),  # proxy variables and the test CA for the child
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout

    assert token_url.startswith("https://discovery.etcd.io/")
    assert etcd_discovery.token(token_url).size == 3
    # [env end]
