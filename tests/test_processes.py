"""The real-stack harness: process hygiene, readiness, failure messages, skip rules."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import requests
from realutil import (
    FAIL_SUFFIX,
    REQUIRE_REAL_ENV,
    SKIP_PREFIX,
    real_skip_reason,
    require_real,
)

from pytest_etcd_discovery._real.processes import (
    EtcdProcess,
    ManagedProcess,
    ProcessError,
    RealDiscoveryService,
    find_binary,
    free_port,
    missing_binaries,
)

PY = sys.executable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists"; Popen.wait reaped ours, so existence means running.
    return True


# -- ports and binaries --------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_find_binary_searches_path_then_system_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "my-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary("my-tool") == str(tool)
    # Not on PATH any more, but /usr/bin is searched anyway (sh is always there).
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_binary("sh") in ("/usr/bin/sh", "/usr/sbin/sh", "/usr/local/bin/sh")
    assert find_binary("no-such-binary-xyz") is None


def test_missing_binaries_reason() -> None:
    assert missing_binaries("sh") is None
    reason = missing_binaries("sh", "no-such-binary-xyz", "nor-this-one")
    assert reason is not None
    assert reason.startswith(SKIP_PREFIX)
    assert "no-such-binary-xyz, nor-this-one" in reason
    assert "sh," not in reason
    assert "apt-get install etcd-server etcd-client etcd-discovery" in reason


def test_missing_binaries_names_the_package_of_each(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing found anywhere: etcdctl is etcd-client's, apart from etcd-server's etcd.
    monkeypatch.setattr("pytest_etcd_discovery._real.processes.find_binary", lambda name: None)
    reason = missing_binaries("etcd", "etcdctl")
    assert reason is not None
    assert "real binaries missing: etcd, etcdctl (" in reason
    assert "Debian package etcd-server, etcd-client;" in reason
    only_client = missing_binaries("etcdctl")
    assert only_client is not None and "Debian package etcd-client;" in only_client


# -- ManagedProcess ------------------------------------------------------------------


def test_output_is_captured_and_waited_for() -> None:
    code = (
        "import sys,time; print('hello', flush=True); "
        "sys.stderr.write('to-stderr\\n'); time.sleep(30)"
    )
    with ManagedProcess([PY, "-c", code], name="echo") as proc:
        match = proc.wait_for_output(r"to-(\w+)", timeout=10)
        assert match.group(1) == "stderr"
        assert "hello\n" in proc.output
        assert proc.running
        assert proc.returncode is None
        pid = proc.pid
    assert pid is not None and not _alive(pid)
    assert not proc.running
    assert proc.returncode == -15  # SIGTERM was enough


def test_stop_is_idempotent_and_kills_a_stubborn_process() -> None:
    code = (
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = ManagedProcess([PY, "-c", code], name="stubborn")
    assert proc.stop() is None  # never started: harmless
    proc.start()
    proc.wait_for_output("ready", timeout=10)
    assert proc.stop(timeout=0.5) == -9
    assert proc.stop() == -9


def test_wait_returns_exit_code_or_none() -> None:
    with ManagedProcess([PY, "-c", "import sys; sys.exit(3)"], name="exit3") as proc:
        assert proc.wait(10) == 3
    with ManagedProcess([PY, "-c", "import time; time.sleep(30)"], name="sleeper") as proc:
        assert proc.wait(0.05) is None


def test_wait_for_output_reports_a_dead_process_with_its_output() -> None:
    code = "print('fatal: cannot bind', flush=True); raise SystemExit(2)"
    with (
        ManagedProcess([PY, "-c", code], name="dies") as proc,
        pytest.raises(ProcessError) as info,
    ):
        proc.wait_for_output("never printed", timeout=10)
    message = str(info.value)
    assert "dies: exited without printing 'never printed'" in message
    assert "exited with 2" in message
    assert "fatal: cannot bind" in message


def test_wait_for_output_times_out() -> None:
    with (
        ManagedProcess([PY, "-c", "import time; time.sleep(30)"], name="quiet") as proc,
        pytest.raises(ProcessError, match=r"quiet: timed out after 0.2 s"),
    ):
        proc.wait_for_output("x", timeout=0.2)


def test_wait_for_port() -> None:
    port = free_port()
    code = (
        "import socket,time; s=socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(30)"
    )
    with ManagedProcess([PY, "-c", code], name="listener") as proc:
        proc.wait_for_port(port, timeout=10)
    with (
        ManagedProcess([PY, "-c", "print('bye')"], name="gone") as proc,
        pytest.raises(ProcessError, match=r"gone: exited before 127.0.0.1:\d+ accepted"),
    ):
        proc.wait_for_port(free_port(), timeout=10)


def test_start_twice_is_refused() -> None:
    with (
        ManagedProcess([PY, "-c", "import time; time.sleep(30)"], name="once") as proc,
        pytest.raises(ProcessError, match="already started"),
    ):
        proc.start()


# -- the skip rules ------------------------------------------------------------------


def test_require_real_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_REAL_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"^{SKIP_PREFIX}: no-such-binary-xyz"):
        require_real("no-such-binary-xyz")
    monkeypatch.setenv(REQUIRE_REAL_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as info:
        require_real("no-such-binary-xyz")
    assert FAIL_SUFFIX in str(info.value)
    monkeypatch.setenv(REQUIRE_REAL_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        require_real("no-such-binary-xyz")
    require_real("sh")  # present: neither


def test_real_skip_reason_reads_skip_reports() -> None:
    reason = f"{SKIP_PREFIX}: etcd (searched PATH)"
    assert real_skip_reason(("x.py", 3, f"Skipped: {reason}")) == reason
    assert real_skip_reason(("x.py", 3, "Skipped: something else")) is None
    assert real_skip_reason("not a tuple") is None


def test_require_real_env_turns_plain_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conftest hook also catches skips that did not go through require_real."""
    conftest = Path(__file__).with_name("conftest.py").read_text()
    pytester.makeconftest(conftest)
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(
        f"""
        import pytest

        def test_missing():
            pytest.skip("{SKIP_PREFIX}: no-such-binary-xyz")

        def test_other_skip():
            pytest.skip("not about binaries")
        """
    )
    monkeypatch.delenv(REQUIRE_REAL_ENV, raising=False)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(skipped=2)
    monkeypatch.setenv(REQUIRE_REAL_ENV, "1")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines([f"*{SKIP_PREFIX}: no-such-binary-xyz*{FAIL_SUFFIX}*"])


# -- the real binaries ---------------------------------------------------------------


@pytest.mark.real
def test_etcd_process_becomes_healthy_and_stops(tmp_path: Path) -> None:
    require_real("etcd")
    etcd = EtcdProcess(
        "solo",
        tmp_path / "data",
        enable_v2=True,
        extra_args=["--heartbeat-interval", "10", "--election-timeout", "100"],
    )
    try:
        etcd.start()
        etcd.wait_ready(30)
        reply = requests.put(f"{etcd.client_url}/v2/keys/probe", data={"value": "1"}, timeout=5)
        assert reply.status_code == 201
        assert f"--initial-cluster solo={etcd.peer_url}" in " ".join(etcd.argv)
    finally:
        etcd.stop()
        # The caller owns an EtcdProcess's data dir: 62 MB of preallocated WAL.
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
    assert not etcd.running
    assert etcd.pid is not None and not _alive(etcd.pid)


@pytest.mark.real
def test_etcd_process_leaves_bootstrap_flags_to_the_caller(tmp_path: Path) -> None:
    require_real("etcd")
    etcd = EtcdProcess("m", tmp_path, extra_args=["--discovery=http://127.0.0.1:1/x"])
    assert "--initial-cluster" not in etcd.argv
    assert etcd.argv[-1] == "--discovery=http://127.0.0.1:1/x"


@pytest.mark.real
def test_etcd_process_failure_quotes_etcd(tmp_path: Path) -> None:
    require_real("etcd")
    etcd = EtcdProcess("bad", tmp_path, extra_args=["--no-such-flag"])
    etcd.start()
    try:
        with pytest.raises(ProcessError) as info:
            etcd.wait_ready(20)
    finally:
        etcd.stop()
    assert "no-such-flag" in str(info.value)


@pytest.mark.real
def test_real_discovery_service_lifecycle() -> None:
    require_real()
    service = RealDiscoveryService()
    with service:
        assert service.discovery is not None and service.etcd is not None
        pids = [service.discovery.pid, service.etcd.pid]
        data_dir = service.etcd.data_dir
        reply = requests.get(f"{service.url}/new", params={"size": 1}, timeout=5)
        assert reply.status_code == 200
        assert reply.text.startswith(service.url + "/")
        token = reply.text.rsplit("/", 1)[-1]
        # The token lives in the etcd behind it, under /_etcd/registry.
        direct = requests.get(f"{service.etcd_url}/v2/keys/_etcd/registry/{token}", timeout=5)
        assert direct.json()["node"]["key"] == f"/_etcd/registry/{token}"
    assert all(pid is not None and not _alive(pid) for pid in pids)
    assert not data_dir.exists()
    service.stop()  # twice: harmless
    with pytest.raises(ProcessError, match="not started"):
        _ = service.url


def test_real_stack_missing_names_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_etcd_discovery._real.processes as processes

    monkeypatch.setattr(processes, "DISCOVERY_CONFIG", Path("/nonexistent/etcd-discovery.conf"))
    monkeypatch.setattr(processes, "find_binary", lambda name: f"/usr/bin/{name}")
    reason = processes.real_stack_missing()
    assert reason is not None
    assert reason.startswith(SKIP_PREFIX)
    assert "/nonexistent/etcd-discovery.conf" in reason
    with pytest.raises(ProcessError, match=r"etcd-discovery\.conf"):
        RealDiscoveryService().start()
