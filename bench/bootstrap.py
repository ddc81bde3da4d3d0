"""Group 1: N simulated etcd 3.4 members bootstrap through one token.

For a service on a socket the members run in a process of their own
(:mod:`bench.members`), as etcd members do; for ``inprocess`` they run in this process,
where the interceptor can answer them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from .common import RunError, new_token, run_threads
from .etcdsim import Client, RequestsClient, ScriptedMember, SimulatedMember
from .memberloop import MemberError, run_members
from .members import MemberProcess
from .stats import clock, median
from .targets import Target


def bootstrap_once(
    target: Target, size: int, members: MemberProcess
) -> tuple[float, int, float | None]:
    """One bootstrap of ``size`` members on a new token; returns (seconds, requests sent,
    CPU seconds of the member process, or None when the members share this process)."""
    token_url = new_token(target, size)
    timeout = 60 + size
    if target.patches_this_process:
        # responses intercepts requests only: these members stay on requests sessions.
        connect = partial(RequestsClient, target)
        return (*bootstrap_here(target, token_url, size, timeout, connect), None)
    return members.bootstrap(target, token_url, size, timeout)


def bootstrap_here(
    target: Target, token_url: str, size: int, timeout: float, connect: Callable[[], Client]
) -> tuple[float, int]:
    """Run ``size`` simulated members in threads of this process, each with its own
    ``connect()`` client; (seconds, requests)."""
    members = [SimulatedMember(target, token_url, i, connect()) for i in range(1, size + 1)]
    barrier = threading.Barrier(size)

    def worker(member: SimulatedMember) -> tuple[float, float, list[str]]:
        start = clock()
        found = member.join()
        return start, clock(), found

    results: list[Any] = run_threads(
        target, [partial(worker, m) for m in members], timeout=timeout, start=barrier
    )
    _check_found(target, members, [found for _, _, found in results])
    seconds = max(r[1] for r in results) - min(r[0] for r in results)
    return seconds, sum(m.requests for m in members)


def bootstrap_loop(target: Target, token_url: str, size: int, timeout: float) -> tuple[float, int]:
    """Run ``size`` simulated members on one selector loop of this process, each on a
    connection of its own (:mod:`bench.memberloop`); (seconds, requests)."""
    members = [SimulatedMember(target, token_url, i) for i in range(1, size + 1)]
    try:
        start, end, found = run_members(members, timeout)
    except MemberError as exc:
        target.release()
        raise RunError(f"{target.name}: {exc}") from exc
    _check_found(target, members, found)
    return end - start, sum(m.requests for m in members)


def script_loop(
    target: Target, token_url: str, size: int, timeout: float, interval: float
) -> dict[str, float]:
    """The fixed script (:class:`~bench.etcdsim.ScriptedMember`) for ``size`` members on
    one selector loop, each on a connection of its own: seconds from the first connect
    to the last member listing all, requests sent, and when the last PUT was answered
    (seconds from the same start)."""
    members = [ScriptedMember(token_url, i, size, interval) for i in range(1, size + 1)]
    try:
        start, end, found = run_members(members, timeout)
    except MemberError as exc:
        target.release()
        raise RunError(f"{target.name}: {exc}") from exc
    _check_found(target, members, found)
    return {
        "seconds": end - start,
        "requests": float(sum(m.requests for m in members)),
        "last_put": max(m.put_answered for m in members) - start,
        # When the members' PUTs were answered decides how often they poll meanwhile.
        "median_put": median([m.put_answered for m in members]) - start,
    }


def _check_found(
    target: Target,
    members: Sequence[SimulatedMember | ScriptedMember],
    found: list[list[str]],
) -> None:
    """Every member must end with every member's id, as etcd's discovery requires."""
    expected = sorted(m.id for m in members)
    for member, ids in zip(members, found, strict=True):
        if sorted(ids) != expected:
            raise RunError(f"{target.name}: {member.name} saw {sorted(ids)}, not {expected}")
