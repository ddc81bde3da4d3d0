"""gRPC loads only for the v3 endpoint: neither an unrelated pytest run nor one using the
v2 fake imports ``grpc``, ``google.protobuf`` or ``pytest_etcd_discovery._v3``."""

from __future__ import annotations

import subprocess
import sys

import pytest

V3_MODULES = ("grpc", "google.protobuf", "pytest_etcd_discovery._v3")


def test_pytest_runs_without_the_v3_endpoint_load_no_grpc(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import sys

        def loaded():
            return sorted(m for m in {V3_MODULES!r} if m in sys.modules)

        def test_unrelated():
            print("UNRELATED", loaded())

        def test_the_v2_fake(etcd_discovery):
            assert etcd_discovery.new_token(3)
            print("V2FAKE", loaded())
        """
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=2)
    text = "\n".join(result.outlines)
    assert "UNRELATED []" in text
    assert "V2FAKE []" in text


def test_the_v3_endpoint_does_load_grpc() -> None:
    """The check above can fail: importing the endpoint loads what it says it does not."""
    code = (
        "import sys, pytest_etcd_discovery._v3.server;"
        f"print(sorted(m for m in {V3_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == str(sorted(V3_MODULES))
