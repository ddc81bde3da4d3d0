"""Members bootstrapping with etcd 3.6's v3 discovery, against a real etcd and the fake.

Two clients of etcd's discovery steps run them: the Go one built from Debian's etcd
clientv3 and the Python one over aetcd (``pydiscovery``).  Each case runs against the real
etcd's v3 API and against the fake's, and the result lines must be the same (and what
etcd's steps give: the first ``size`` members by create revision, or etcd's error).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pydiscovery
import pytest
from v3disc_util import Endpoint, token_with_size

Client = Callable[..., list[str]]


@pytest.fixture(params=["go", "python"])
def client(request: pytest.FixtureRequest) -> Client:
    """Run a client: ``client(endpoint, token, members, proxy=..., peer_port=...)``."""
    if request.param == "python":
        return pydiscovery.bootstrap
    binary: Path = request.getfixturevalue("go_v3discovery")

    def run(
        endpoint: str, token: str, members: int, *, proxy: bool = False, peer_port: int = 12380
    ) -> list[str]:
        argv = [str(binary), "-endpoints", endpoint, "-token", token, "-members", str(members)]
        argv += ["-peer-port", str(peer_port), "-backoff-unit", "10ms"]
        if proxy:
            argv.append("-proxy")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    return run


def cluster(n: int, peer_port: int = 12380) -> str:
    return ",".join(f"m{i}=http://127.0.0.1:{peer_port + i}" for i in range(n))


@pytest.mark.parametrize("size", [1, 3, 5])
def test_members_get_the_initial_cluster(v3_endpoint: Endpoint, client: Client, size: int) -> None:
    token = token_with_size(v3_endpoint, str(size))
    lines = client(v3_endpoint.endpoint, token, size, proxy=True)
    expected = cluster(size)
    assert lines == [f"m{i} ok {expected}" for i in range(size)] + [f"proxy ok {expected}"]


def test_a_member_past_the_size_finds_the_cluster_full(
    v3_endpoint: Endpoint, client: Client
) -> None:
    token = token_with_size(v3_endpoint, "3")
    lines = client(v3_endpoint.endpoint, token, 4, proxy=True)
    expected = cluster(3)
    assert lines == [
        *(f"m{i} ok {expected}" for i in range(3)),
        "m3 error discovery: cluster is full",
        f"proxy ok {expected}",
    ]
    # A member that is among the first `size` (the same peer URL: the same id) gets in
    # again; another one does not.
    assert client(v3_endpoint.endpoint, token, 1) == [f"m0 ok {expected}"]
    assert client(v3_endpoint.endpoint, token, 1, peer_port=13000) == [
        "m0 error discovery: cluster is full"
    ]


def test_a_missing_size_key(v3_endpoint: Endpoint, client: Client) -> None:
    token = token_with_size(v3_endpoint, None)
    assert client(v3_endpoint.endpoint, token, 2, proxy=True) == [
        "m0 error discovery: size key not found",
        "m1 error discovery: size key not found",
        "proxy error discovery: size key not found",
    ]


@pytest.mark.parametrize("size", ["three", "0", "-1", " 3", "3.0", "1_0", "+0"])
def test_a_bad_size_key(v3_endpoint: Endpoint, client: Client, size: str) -> None:
    token = token_with_size(v3_endpoint, size)
    assert client(v3_endpoint.endpoint, token, 1) == ["m0 error discovery: size key is bad"]
