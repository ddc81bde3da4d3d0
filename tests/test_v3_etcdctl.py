"""``etcdctl`` (v3 API) against a real etcd 3.4 and the fake: the same commands print the
same output, once ids, ports, timings and revisions (relative to the test's start) are
normalised."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from typing import Any

from realutil import require_real
from v3util import WAIT, Side, new_prefix

from pytest_etcd_discovery._real.processes import find_binary

pytest_plugins = ["v3fixtures"]

LEASE_RE = re.compile(r"\b[0-9a-f]{16}\b")
REVISION_KEYS = ("revision", "create_revision", "mod_revision")


def etcdctl_command(side: Side, *args: str) -> tuple[list[str], dict[str, str]]:
    """etcdctl v3's argv for ``side`` and its environment (no ETCD* of the caller's)."""
    require_real("etcdctl")
    binary = find_binary("etcdctl")
    assert binary is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env["ETCDCTL_API"] = "3"
    return [binary, "--endpoints", side.endpoint, *args], env


def etcdctl(side: Side, *args: str, stdin: str | None = None) -> str:
    argv, env = etcdctl_command(side, *args)
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT * 2,
    )
    return normalize(side, f"rc={done.returncode}\n{done.stdout}{done.stderr}")


def normalize(side: Side, text: str) -> str:
    text = text.replace(side.endpoint, "<endpoint>")
    text = re.sub(r"took = [0-9.]+[µmn]?s", "took = <t>", text)
    # the client's own log lines: a timestamp and a random client name
    text = re.sub(r'"ts":"[^"]*"', '"ts":"<ts>"', text)
    text = re.sub(r"client-[0-9a-f-]{36}", "client-<uuid>", text)
    text = re.sub(r"remaining\(\d+s\)", "remaining(~)", text)
    text = LEASE_RE.sub(
        lambda m: side.leases.setdefault(int(m[0], 16), f"L{len(side.leases)}"), text
    )
    return text


def json_out(side: Side, *args: str) -> Any:
    out = etcdctl(side, *args, "-w", "json")
    status, _, body = out.partition("\n")
    data = json.loads(body)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            res = {}
            for key, value in node.items():
                if key in ("cluster_id", "member_id"):
                    continue
                if key in REVISION_KEYS and isinstance(value, int) and value > 0:
                    value = f"R{value - side.base:+d}"
                res[key] = walk(value)
            return res
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return status, walk(data)


def both(sides: tuple[Side, Side], *args: str, stdin: str | None = None) -> str:
    real, fake = (etcdctl(side, *args, stdin=stdin) for side in sides)
    assert fake == real, f"etcdctl {' '.join(args)}"
    return real


def test_put_get_del_txn(sides: tuple[Side, Side]) -> None:
    p = new_prefix().decode()
    assert both(sides, "put", f"{p}a", "1") == "rc=0\nOK\n"
    both(sides, "put", f"{p}b", "2")
    both(sides, "put", f"{p}a", "3", "--prev-kv")
    assert both(sides, "get", "--prefix", p) == f"rc=0\n{p}a\n3\n{p}b\n2\n"
    both(sides, "get", "--prefix", p, "--keys-only")
    both(sides, "get", "--prefix", p, "--limit", "1", "--order", "DESCEND")
    both(sides, "get", f"{p}a", "--rev", "0", "--print-value-only")
    both(sides, "get", f"{p}a", "--rev", "100000")  # a future revision: etcd's error
    both(sides, "get", "", "--from-key", "--count-only")
    for args in (("get", "--prefix", p), ("put", f"{p}c", "4"), ("del", f"{p}c", "--prev-kv")):
        real, fake = (json_out(side, *args) for side in sides)
        assert fake == real, args
    txn = f'value("{p}a") = "3"\n\nput {p}t yes\nget {p}a\n\nput {p}t no\n\n'
    assert both(sides, "txn", stdin=txn).startswith("rc=0\nSUCCESS\n")
    both(sides, "txn", stdin=txn.replace('"3"', '"9"'))
    assert both(sides, "del", "--prefix", p) == "rc=0\n3\n"
    both(sides, "del", f"{p}nothing")
    both(sides, "put", "", "v")  # an empty key


def test_lease_commands(sides: tuple[Side, Side]) -> None:
    p = new_prefix().decode()
    assert both(sides, "lease", "grant", "60") == "rc=0\nlease L0 granted with TTL(60s)\n"
    ids = [f"{side.lease('L0'):x}" for side in sides]
    outputs = []
    for side, lease in zip(sides, ids, strict=True):
        outputs.append(
            [
                etcdctl(side, "put", f"{p}k", "v", "--lease", lease),
                etcdctl(side, "lease", "timetolive", lease),
                etcdctl(side, "lease", "timetolive", lease, "--keys"),
                etcdctl(side, "lease", "keep-alive", "--once", lease),
                etcdctl(side, "lease", "revoke", lease),
                etcdctl(side, "lease", "timetolive", lease),
                etcdctl(side, "lease", "revoke", lease),
                etcdctl(side, "get", f"{p}k"),
            ]
        )
    assert outputs[1] == outputs[0]


def test_endpoint_status_and_health(sides: tuple[Side, Side]) -> None:
    real, fake = (etcdctl(side, "endpoint", "status") for side in sides)
    # endpoint, member id, version, db size, leader, learner, term, index, applied, errors:
    # all but the id and the raft indexes (a real member's own history) must agree.
    cut = [[f for i, f in enumerate(out.split(", ")) if i not in (1, 7, 8)] for out in (real, fake)]
    assert cut[1] == cut[0]
    assert cut[0][:3] == ["rc=0\n<endpoint>", "3.4.23", "20 kB"]
    both(sides, "endpoint", "health")


def test_watch(sides: tuple[Side, Side]) -> None:
    p = new_prefix().decode()
    outputs = []
    for side in sides:
        for key, value in ((f"{p}a", "1"), (f"{p}b", "2"), (f"{p}a", "3")):
            etcdctl(side, "put", key, value)
        etcdctl(side, "del", f"{p}b")
        start = str(side.base + 1)
        argv, env = etcdctl_command(side, "watch", "--prefix", p, "--rev", start, "--prev-kv")
        watch = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        # A watch never ends by itself: killed after the lines wanted, or at the latest
        # after WAIT (then readline() gives "" and the comparison fails, not hangs).
        deadline = threading.Timer(WAIT, watch.kill)
        deadline.start()
        try:
            assert watch.stdout is not None
            # four events: PUT a, PUT b, PUT a (with its previous value), DELETE b
            lines = [watch.stdout.readline() for _ in range(4 * 3 - 1 + 2)]
        finally:
            deadline.cancel()
            watch.kill()
            watch.wait(WAIT)
            watch.stdout.close()
        outputs.append("".join(lines))
    assert outputs[1] == outputs[0]
    assert outputs[0].startswith(f"PUT\n{p}a\n1\n")
