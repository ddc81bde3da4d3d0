"""The v3 face shares the fixture's clock and strict mode, and has a journal and faults."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aetcd
import pytest

from pytest_etcd_discovery import EtcdDiscovery


def go_argv(binary: Path, endpoint: str, token: str, members: int) -> list[str]:
    argv = [str(binary), "-endpoints", endpoint, "-token", token, "-members", str(members)]
    return [*argv, "-backoff-unit", "10ms"]


def go(binary: Path, endpoint: str, token: str, members: int) -> list[str]:
    argv = go_argv(binary, endpoint, token, members)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_a_failed_size_read_is_retried_by_etcds_steps(
    etcd_discovery: EtcdDiscovery, go_v3discovery: Path
) -> None:
    v3 = etcd_discovery.v3
    _, token = v3.new_token(1)
    size_key = f"/_etcd/registry/{token}/_config/size"
    rule = v3.faults.fail("UNAVAILABLE", method="Range", key_prefix=size_key, times=2)
    assert go(go_v3discovery, v3.endpoint, token, 1) == ["m0 ok m0=http://127.0.0.1:12380"]
    assert rule.fired == 2
    reads = v3.calls_to("Range", key_prefix=size_key)
    assert [c.error[0] if c.error else "OK" for c in reads] == ["UNAVAILABLE"] * 2 + ["OK"] * 2
    assert reads[0].fault == rule.describe()
    assert len(v3.assert_requested("Put", 1)) == 1
    v3.faults.assert_all_fired()
    with pytest.raises(AssertionError, match=r"expected 2 Put call\(s\), got 1; the last"):
        v3.assert_requested("Put", 2)
    with pytest.raises(AssertionError, match="expected at least 1 Txn call"):
        v3.assert_requested("Txn")


def test_a_dropped_watch_is_watched_again(
    etcd_discovery: EtcdDiscovery, go_v3discovery: Path
) -> None:
    v3 = etcd_discovery.v3
    _, token = v3.new_token(2)
    rule = v3.faults.drop(times=1)  # m0's watch breaks once
    argv = go_argv(go_v3discovery, v3.endpoint, token, 1)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as m0:
        try:
            # m0 watches only once its own read shows 1 of 2 members; a second member that
            # came before that read would spare it the watch (the run once raced so).
            assert v3.faults.wait_fired(rule, timeout=60), "m0 never watched"
            v3.register(token, "m1", "http://127.0.0.1:12381")
            out, _ = m0.communicate(timeout=60)
        finally:
            m0.kill()
    expected = "m0=http://127.0.0.1:12380,m1=http://127.0.0.1:12381"
    assert out.splitlines() == [f"m0 ok {expected}"]
    assert m0.returncode == 0
    assert rule.fired == 1
    watches = v3.calls_to("Watch")
    assert watches[0].error is not None and watches[0].error[0] == "UNAVAILABLE"


def test_a_leased_key_expires_on_the_fixtures_clock(etcd_discovery: EtcdDiscovery) -> None:
    v3 = etcd_discovery.v3
    host, _, port = v3.endpoint.rpartition(":")

    async def run() -> tuple[bool, bool]:
        async with aetcd.Client(host=host, port=int(port)) as client:
            lease = await client.lease(30)
            await client.put(b"/leased", b"v", lease=lease)
            etcd_discovery.clock.advance(29)
            before = await client.get(b"/leased") is not None
            etcd_discovery.clock.advance(2)
            after = await client.get(b"/leased") is not None
            return before, after

    assert asyncio.run(run()) == (True, False)


def test_strict_mode_fails_on_an_unfired_v3_rule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.etcd_discovery(strict=True)
        def test_v3(etcd_discovery):
            etcd_discovery.v3.faults.fail("UNAVAILABLE", method="Txn")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fault rule never fired: v3 fail UNAVAILABLE (method='Txn')*"])
