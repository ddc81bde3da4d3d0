"""``etcd_discovery.v3``: the fixture's etcd 3.6 discovery face on the fake's v3 endpoint.

The helpers' views are checked against what a real client reads (aetcd, the Go client),
and the lazy loading against an unrelated run and a missing extra.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydiscovery
import pytest
from v3disc_util import read

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._etcd_rules import etcd_member_id
from pytest_etcd_discovery._v3face import V3ClusterFullError, V3DiscoveryError


def test_new_token_writes_the_size_key(etcd_discovery: EtcdDiscovery) -> None:
    endpoints, token = etcd_discovery.v3.new_token(5)
    assert endpoints == f"http://{etcd_discovery.v3.endpoint}"
    assert read(etcd_discovery.v3.endpoint, f"/_etcd/registry/{token}/_config/size") == b"5"
    view = etcd_discovery.v3.token(token)
    assert (view.size, view.members, view.full) == (5, (), False)


def test_register_and_the_token_view_follow_etcd(etcd_discovery: EtcdDiscovery) -> None:
    v3 = etcd_discovery.v3
    _, token = v3.new_token(2)
    first = v3.register(token, "infra0", "http://10.0.0.10:2380")
    second = v3.register(token, "infra1", ["http://10.0.0.11:2380", "http://10.0.0.12:2380"])
    # etcd 3.6's id: SHA-1 of the peer URLs and the discovery token (its cluster token).
    assert first.id == etcd_member_id(["http://10.0.0.10:2380"], token)
    assert first.key == f"/_etcd/registry/{token}/members/{first.id}"
    assert second.value == "infra1=http://10.0.0.11:2380,infra1=http://10.0.0.12:2380"
    view = v3.token(token)
    assert view.names == ["infra0", "infra1"] and view.full
    assert view.initial_cluster == f"{first.value},{second.value}"
    with pytest.raises(V3ClusterFullError, match="discovery: cluster is full"):
        v3.register(token, "infra2", "http://10.0.0.13:2380")
    # Registering again with the same peer URLs (the same id) is no news to etcd.
    assert v3.register(token, "infra0", "http://10.0.0.10:2380").id == first.id
    # Past the size only with check_full=False, and the first `size` still win.
    v3.register(token, "late", "http://10.0.0.14:2380", check_full=False)
    view = v3.token(token)
    assert view.names == ["infra0", "infra1", "late"]
    assert [m.name for m in view.cluster] == ["infra0", "infra1"]


def test_register_without_a_good_size_key(etcd_discovery: EtcdDiscovery) -> None:
    v3 = etcd_discovery.v3
    with pytest.raises(V3DiscoveryError, match=r"^discovery: size key not found$"):
        v3.register("nosuchtoken", "m0", "http://127.0.0.1:2380")
    v3.set_size("badsize", "three")
    with pytest.raises(V3DiscoveryError, match=r"^discovery: size key is bad$"):
        v3.register("badsize", "m0", "http://127.0.0.1:2380")
    assert v3.token("badsize").size_raw == "three"


def test_members_registered_by_the_helper_are_what_a_client_bootstraps_from(
    etcd_discovery: EtcdDiscovery,
) -> None:
    v3 = etcd_discovery.v3
    _, token = v3.new_token(3)
    v3.register(token, "m0", "http://127.0.0.1:12380")
    v3.register(token, "m1", "http://127.0.0.1:12381")
    # The third member comes from the client; it and the proxy see the helper's two.
    lines = pydiscovery.bootstrap(v3.endpoint, token, 1, peer_port=12382, proxy=True)
    expected = "m0=http://127.0.0.1:12380,m1=http://127.0.0.1:12381,m0=http://127.0.0.1:12382"
    assert lines == [f"m0 ok {expected}", f"proxy ok {expected}"]
    assert v3.token(token).initial_cluster == expected


def test_env_names_etcds_variables(etcd_discovery: EtcdDiscovery) -> None:
    _, token = etcd_discovery.v3.new_token(1)
    env = etcd_discovery.v3.env(base={"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "ETCD_DISCOVERY_ENDPOINTS": etcd_discovery.v3.endpoints,
        "ETCD_DISCOVERY_TOKEN": token,
    }
    assert etcd_discovery.v3.env("other", base={})["ETCD_DISCOVERY_TOKEN"] == "other"


def test_the_go_client_bootstraps_from_env(
    etcd_discovery: EtcdDiscovery, go_v3discovery: Path
) -> None:
    _, token = etcd_discovery.v3.new_token(3)
    env = etcd_discovery.v3.env()
    done = subprocess.run(
        [
            str(go_v3discovery),
            "-endpoints",
            env["ETCD_DISCOVERY_ENDPOINTS"],
            "-token",
            env["ETCD_DISCOVERY_TOKEN"],
            "-members",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == ["m0", "m1", "m2"]
    assert etcd_discovery.v3.token(token).names == ["m0", "m1", "m2"]


def test_the_v3_endpoint_ends_with_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socket

        ENDPOINTS = []

        def test_one(etcd_discovery):
            ENDPOINTS.append(etcd_discovery.v3.endpoint)

        def test_two():
            host, _, port = ENDPOINTS[0].rpartition(":")
            with socket.socket() as sock:
                assert sock.connect_ex((host, int(port))) != 0  # nobody listens any more
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_run_that_does_not_use_v3_imports_no_grpc(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_v2(etcd_discovery):
            etcd_discovery.new_token(3)
            assert not [m for m in sys.modules if m == "grpc" or m.startswith("grpc.")]
            assert "google.protobuf" not in sys.modules
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_without_grpc_v3_names_the_extra(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        import pytest

        def test_v3(etcd_discovery, monkeypatch):
            monkeypatch.setitem(sys.modules, "grpc", None)  # as if not installed
            hint = r"pip install 'pytest-etcd-discovery\\[etcd-v3\\]'"
            with pytest.raises(ImportError, match=hint):
                etcd_discovery.v3
            etcd_discovery.new_token(1)  # the v2 fake is unaffected
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_failing_tests_report_shows_the_v3_tokens_and_calls(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_v3(etcd_discovery):
            v3 = etcd_discovery.v3
            _, token = v3.new_token(2, token="tok")
            v3.register(token, "infra0", "http://10.0.0.10:2380")
            v3.faults.fail("UNAVAILABLE", method="Range", times=1)
            import grpc
            from pytest_etcd_discovery._v3.client import V3Client
            with V3Client(v3.endpoint) as client:
                try:
                    client.call("KV", "Range", key=b"x")
                except grpc.RpcError:
                    pass
            assert False
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "etcd v3 endpoint: http://127.0.0.1:* tokens (1):",
            "  tok  size=2  members=1/2",
            "    1. infra0       id=* create_revision=3  http://10.0.0.10:2380",
            "last v3 calls (1 of 1):",
            "  KV/Range -> UNAVAILABLE: etcdserver: the fake's fault rule  [fault: v3 fail*",
        ]
    )


def test_the_shared_handles_endpoint_lasts_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def token(etcd_discovery_shared):
            return etcd_discovery_shared.v3.new_token(2).token

        def test_one(etcd_discovery_shared, token):
            etcd_discovery_shared.v3.register(token, "m0", "http://127.0.0.1:12380")

        def test_two(etcd_discovery_shared, etcd_discovery, token):
            assert etcd_discovery_shared.v3.token(token).names == ["m0"]
            # A test's own endpoint is another one, empty.
            assert etcd_discovery.v3.endpoint != etcd_discovery_shared.v3.endpoint
            assert etcd_discovery.v3.token(token).size is None
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
