"""Group 1: N simulated etcd 3.4 members bootstrap through one token."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from .common import Row, RunError, new_token, run_threads
from .etcdsim import SimulatedMember
from .stats import clock
from .targets import Target


def bootstrap_once(target: Target, size: int) -> tuple[float, int]:
    """One bootstrap of ``size`` members; returns (seconds, requests sent)."""
    token_url = new_token(target, size)
    members = [SimulatedMember(target, token_url, i) for i in range(1, size + 1)]
    barrier = threading.Barrier(size)

    def worker(member: SimulatedMember) -> tuple[float, float, list[str]]:
        start = clock()
        found = member.join()
        return start, clock(), found

    results: list[Any] = run_threads(
        target, [partial(worker, m) for m in members], timeout=60 + size, start=barrier
    )
    expected = sorted(m.id for m in members)
    for member, (_, _, found) in zip(members, results, strict=True):
        if sorted(found) != expected:
            raise RunError(f"{target.name}: {member.name} saw {sorted(found)}, not {expected}")
    seconds = max(r[1] for r in results) - min(r[0] for r in results)
    return seconds, sum(m.requests for m in members)


def run(target: Target, rows: dict[str, Row], sizes: tuple[int, ...], reps: int) -> None:
    for size in sizes:
        row = rows.setdefault(
            f"N={size}", Row("bootstrap", f"N={size}", "ms", note="all members know all peers")
        )
        bootstrap_once(target, size)  # warm-up: connections, code paths, Go's JIT-less GC
        samples = []
        requests = 0
        for _ in range(reps):
            seconds, requests = bootstrap_once(target, size)
            samples.append(seconds)
        row.add(target.name, samples, scale=1000)
        row.extra["requests"] = requests
