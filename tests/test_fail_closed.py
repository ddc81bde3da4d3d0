"""Fail closed, proved as a user would meet it: a downstream suite (tests/downstream/) runs
in a network namespace that has only loopback, under strace, three ways.

Every call it makes to https://discovery.etcd.io (six clients, import time, module and
session fixtures, unittest's setUpClass) must be served by the fake or refused with the
plugin's error, and the trace must show no DNS query and no connection beyond loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from realutil import skip_or_fail

DOWNSTREAM = Path(__file__).parent / "downstream"
CLIENTS = ("requests", "urllib", "http.client", "httpx", "httpx async", "aiohttp")

S, R = "served", "refused"
#: What each call must meet, per way of running the suite.
EXPECTED: dict[str, dict[str, str]] = {
    "no flag": {
        "import time": R,
        "session fixture": R,
        "module fixture": R,
        "plain setUpClass": R,
        "@fake_discovery setUpClass": S,
        "@fake_discovery tearDownClass": S,
        **{f"plain test: {c}": R for c in CLIENTS},
        **{f"fixture test: {c}": S for c in CLIENTS},
    },
    "flag": {
        "import time": S,
        "session fixture": S,
        "module fixture": S,
        "plain setUpClass": S,
        "@fake_discovery setUpClass": S,
        "@fake_discovery tearDownClass": S,
        **{f"plain test: {c}": S for c in CLIENTS},
        **{f"fixture test: {c}": S for c in CLIENTS},
    },
    "marker": {
        "import time": R,
        "session fixture": R,
        "module fixture": R,
        "plain setUpClass": R,
        "@fake_discovery setUpClass": S,
        "@fake_discovery tearDownClass": S,
        **{f"plain test: {c}": S for c in CLIENTS},
        **{f"fixture test: {c}": S for c in CLIENTS},
    },
}
ARGS = {"no flag": [], "flag": ["--etcd-discovery-fake"], "marker": []}

_CONNECT = re.compile(r"\bconnect\(\d+, \{sa_family=(AF_INET6?),([^}]*)\}")
_SENDTO = re.compile(r"\bsendto\(\d+, .*\{sa_family=(AF_INET6?),([^}]*)\}")


def _tools() -> tuple[str, str, str]:
    found = [shutil.which(tool) for tool in ("unshare", "strace", "ip")]
    if None in found or not _namespaces_work():
        skip_or_fail(
            "real binaries missing: a loopback-only network namespace needs unshare "
            "(util-linux), strace and ip (iproute2), and user namespaces "
            "(apt-get install util-linux strace iproute2)"
        )
    return found[0], found[1], found[2]  # type: ignore[return-value]


def _namespaces_work() -> bool:
    try:
        done = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def beyond_loopback(trace: str) -> list[str]:
    """The lines of an strace log that reach an address beyond loopback (DNS included)."""
    found = []
    for line in trace.splitlines():
        match = _CONNECT.search(line) or _SENDTO.search(line)
        if match is None:
            continue
        family, rest = match.groups()
        if family == "AF_INET" and 'inet_addr("127.' in rest:
            continue
        if family == "AF_INET6" and ('"::1"' in rest or '"::ffff:127.' in rest):
            continue
        found.append(line)
    return found


def run_downstream(tmp_path: Path, *args: str, mode: str = "") -> tuple[list[dict[str, str]], str]:
    """Run the downstream suite in a loopback-only network namespace under strace;
    returns what it recorded and the trace."""
    unshare, strace, ip = _tools()
    record, trace = tmp_path / "record.jsonl", tmp_path / "trace.txt"
    env = {
        **os.environ,
        "DOWNSTREAM_RECORD": str(record),
        "DOWNSTREAM_MODE": mode,
        # The suite under test must not inherit this run's settings.
        "PYTEST_ADDOPTS": "",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    pytest_cmd = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
        "--rootdir", str(DOWNSTREAM), "-c", os.devnull, str(DOWNSTREAM), *args,
    ]  # fmt: skip
    script = (
        f'{ip} link set lo up && exec {strace} -f -qq -e trace=connect,sendto,sendmsg -o "$0" "$@"'
    )
    done = subprocess.run(
        [unshare, "-rn", "sh", "-c", script, str(trace), *pytest_cmd],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    return lines, trace.read_text(encoding="utf-8")


@pytest.mark.parametrize("way", list(EXPECTED))
def test_downstream_suite_fails_closed(way: str, tmp_path: Path) -> None:
    lines, trace = run_downstream(tmp_path, *ARGS[way], mode="marker" if way == "marker" else "")
    assert [entry["label"] for entry in lines][-1] == "end", "the suite did not run to its end"
    outcomes = {entry["label"]: entry["outcome"] for entry in lines if entry["label"] != "end"}
    assert outcomes == EXPECTED[way]
    leaks = beyond_loopback(trace)
    assert leaks == [], "\n".join(leaks[:20])


def test_the_opt_out_reaches_for_dns_and_the_check_sees_it(tmp_path: Path) -> None:
    # With etcd_discovery_allow_real_service the same suite makes real DNS queries: the
    # trace shows them and the plain calls meet the resolver's own error, not ours.
    lines, trace = run_downstream(
        tmp_path, "-o", "etcd_discovery_allow_real_service=true", "-k", "plain and urllib"
    )
    plain = next(e["outcome"] for e in lines if e["label"] == "plain test: urllib")
    assert plain.startswith("other:") and "refused to look up" not in plain
    assert any("htons(53)" in line for line in beyond_loopback(trace))


def test_the_trace_check_sees_a_dns_query() -> None:
    # The check above cannot pass vacuously: the lines strace writes for a DNS query and
    # a connection beyond loopback are found, loopback and Unix sockets are not.
    trace = "\n".join(
        [
            '1 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1',
            "1 connect(3, {sa_family=AF_INET, sin_port=htons(53), "
            'sin_addr=inet_addr("10.255.255.53")}, 16) = -1 ENETUNREACH',
            "1 connect(4, {sa_family=AF_INET, sin_port=htons(9), "
            'sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED',
            "1 connect(5, {sa_family=AF_INET6, sin6_port=htons(443), "
            'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr)}, 28) = -1',
        ]
    )
    leaks = beyond_loopback(trace)
    assert len(leaks) == 2 and "htons(53)" in leaks[0] and "2001:db8" in leaks[1]
