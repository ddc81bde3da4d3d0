"""Group 4: one token with many members, many blocked watchers, many tokens.

Time comes from every target; memory from the service's own process where it has one
(RSS delta of ``live-proc``, and of etcd + discovery.etcd.io for ``real``) and, for the
fake's in-process app, from ``tracemalloc`` (exact Python allocations, journal included).
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Callable

import requests

from pytest_etcd_discovery._service.app import DiscoveryApp

from .common import RunError, new_token
from .etcdsim import WireClient
from .members import MemberProcess
from .stats import clock, median
from .targets import INPROCESS_HOST, Target, wait_watchers

Point = dict[str, float]


def _memory_probe(target: Target, traced: bool) -> Callable[[], float] | None:
    if traced:
        return lambda: float(tracemalloc.get_traced_memory()[0])
    if target.has_process_memory:
        return lambda: float(target.memory())
    return None


def _series(
    target: Target,
    checkpoints: tuple[int, ...],
    traced: bool,
    add: Callable[[requests.Session, int], None],
    measure: Callable[[requests.Session, int], Point] | None = None,
) -> list[Point]:
    """Call ``add(session, n)`` for n = 1 .. max(checkpoints); at each checkpoint a point:
    seconds spent adding so far, ``measure``'s extra fields, memory delta in bytes."""
    session = target.session()
    probe = _memory_probe(target, traced)
    gc.collect()
    base = probe() if probe else 0.0
    points: list[Point] = []
    elapsed = 0.0
    count = 0
    for stop in checkpoints:
        start = clock()
        while count < stop:
            count += 1
            add(session, count)
        elapsed += clock() - start
        point: Point = {"n": count, "seconds": elapsed}
        if measure:
            point.update(measure(session, count))
        if probe:
            gc.collect()
            point["bytes"] = probe() - base
        points.append(point)
    session.close()
    return points


def members_series(
    target: Target, checkpoints: tuple[int, ...], traced: bool = False
) -> list[Point]:
    """Register up to max(checkpoints) members on one token; a point at each checkpoint:
    seconds so far, one listing GET's seconds, memory delta in bytes."""
    token_url = new_token(target, max(checkpoints))

    def add(session: requests.Session, n: int) -> None:
        resp = session.put(
            f"{token_url}/{n:016x}?prevExist=false",
            data={"value": f"m{n}=http://10.0.{n // 250}.{n % 250}:2380"},
            timeout=target.timeout(),
        )
        if resp.status_code != 201:
            raise RunError(f"{target.name}: member PUT -> {resp.status_code} {resp.text}")

    def listing(session: requests.Session, n: int) -> Point:
        start = clock()
        reply = session.get(token_url, timeout=target.timeout())
        get_seconds = clock() - start
        if len(reply.json()["node"].get("nodes", [])) != n:
            raise RunError(f"{target.name}: listing does not show {n} members")
        return {"get_seconds": get_seconds}

    return _series(target, checkpoints, traced, add, listing)


def tokens_series(
    target: Target, checkpoints: tuple[int, ...], traced: bool = False
) -> list[Point]:
    """Create up to max(checkpoints) tokens with /new; a point at each checkpoint."""

    def add(session: requests.Session, n: int) -> None:
        resp = session.get(f"{target.base_url}/new?size=3", timeout=target.timeout())
        if resp.status_code != 200:
            raise RunError(f"{target.name}: /new -> {resp.status_code}")

    return _series(target, checkpoints, traced, add)


def traced_series(kind: str, checkpoints: tuple[int, ...]) -> tuple[list[Point], dict[str, float]]:
    """The fake's own memory (store + journal) with tracemalloc, on a fresh app called
    directly (no client, no ``responses``: that library keeps every call it served in
    ``RequestsMock.calls``, which would be counted too); also the journal's share
    (bytes freed by clearing ``app.calls`` at the end)."""
    app = DiscoveryApp()
    size = max(checkpoints) if kind == "members" else 3
    tracemalloc.start()
    try:
        token_url = ""
        if kind == "members":
            token_url = app.answer_url("GET", f"{INPROCESS_HOST}/new?size={size}")[2].decode()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        points: list[Point] = []
        count = 0
        for stop in checkpoints:
            while count < stop:
                count += 1
                if kind == "members":
                    status, _, body = app.answer_url(
                        "PUT",
                        f"{token_url}/{count:016x}?prevExist=false",
                        form={"value": f"m{count}=http://10.0.{count // 250}.{count % 250}:2380"},
                        transport="inprocess",
                    )
                    expected = 201
                else:
                    status, _, body = app.answer_url(
                        "GET", f"{INPROCESS_HOST}/new?size=3", transport="inprocess"
                    )
                    expected = 200
                if status != expected:
                    raise RunError(f"traced {kind}: {status} {body[:200]!r}")
            gc.collect()
            points.append({"n": count, "bytes": tracemalloc.get_traced_memory()[0] - base})
        before = tracemalloc.get_traced_memory()[0]
        calls = len(app.calls)
        app.calls.clear()
        gc.collect()
        journal = before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        app.close()
    return points, {"journal_bytes": float(journal), "journal_entries": float(calls)}


def watchers_point(target: Target, count: int, members: MemberProcess) -> Point:
    """``count`` blocked recursive watches on one token, all woken by one PUT.

    For a service on a socket the watches come from the member process (one selector
    thread, raw HTTP/1.1) and the PUT from a kept :mod:`http.client` connection here;
    ``inprocess`` watches are ``requests`` threads here, woken through ``requests``.
    Where the server's process can be read (``live``: this one; ``live-proc``, ``real``:
    their own): ``server_cpu`` (CPU seconds from just before the PUT to the last
    watcher's reply) and ``rss_per_watcher`` (resident bytes the blocked watches added,
    over ``count``).
    """
    token_url = new_token(target, 3)
    session = target.session()
    socket_target = not target.patches_this_process
    wire = WireClient(token_url) if socket_target else None
    if wire is not None:  # connects now, not inside the timed PUT
        probe = wire.request("GET", token_url, None, target.timeout())
        if probe.etcd_index is None:
            raise RunError(f"{target.name}: no X-Etcd-Index on the token GET")
        index = int(probe.etcd_index)
    else:
        index = int(session.get(token_url, timeout=target.timeout()).headers["X-Etcd-Index"])
    url = f"{token_url}?recursive=true&wait=true&waitIndex={index + 1}"
    at_wake: dict[str, float] = {}
    rss_before = target.server_rss() if socket_target else None

    def ready() -> None:  # every watch registered: read the server before the PUT
        rss = target.server_rss() if socket_target else None
        if rss is not None and rss_before is not None:
            at_wake["rss"] = rss - rss_before
        cpu = target.server_cpu()
        if cpu is not None:
            at_wake["cpu"] = cpu

    def wake() -> None:
        if wire is not None:
            reply = wire.request("PUT", f"{token_url}/wake", {"value": "x"}, target.timeout())
            if reply.status not in (200, 201):
                raise RunError(f"{target.name}: wake PUT -> {reply.status}")
        else:
            session.put(f"{token_url}/wake", data={"value": "x"}, timeout=target.timeout())

    try:
        if target.patches_this_process:
            start, woke = _watch_here(target, url, count, wake)
        else:
            start, woke = members.watch(target, url, count, wake, timeout=60, ready=ready)
        cpu_after = target.server_cpu()
    finally:
        session.close()
        if wire is not None:
            wire.close()
    point: Point = {
        "n": count,
        "seconds": max(woke) - start,
        "median_wake": median([w - start for w in woke]),
    }
    if cpu_after is not None and "cpu" in at_wake:
        point["server_cpu"] = cpu_after - at_wake["cpu"]
    if "rss" in at_wake:
        point["rss_per_watcher"] = at_wake["rss"] / count
    return point


def _watch_here(
    target: Target, url: str, count: int, wake: Callable[[], None]
) -> tuple[float, list[float]]:
    """The watches as ``requests`` threads of this process; (start, wake-up instants)."""
    woke: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    sessions = [target.session() for _ in range(count)]

    def watch(s: requests.Session) -> None:
        try:
            resp = s.get(url, timeout=target.timeout(watch=True))
            now = time.monotonic()
            with lock:
                if resp.status_code == 200:
                    woke.append(now)
                else:
                    errors.append(f"{resp.status_code}")
        except Exception as exc:
            with lock:
                errors.append(repr(exc))

    before = target.watchers()
    threads = [threading.Thread(target=watch, args=(s,), daemon=True) for s in sessions]
    for t in threads:
        t.start()
    try:
        wait_watchers(target, before + count, timeout=60)
    except TimeoutError:
        target.release()
        raise
    start = time.monotonic()
    wake()
    for t in threads:
        t.join(max(0.0, start + 30 - time.monotonic()))
    if any(t.is_alive() for t in threads):
        target.release()
        raise RunError(f"{target.name}: {len(woke)}/{count} watchers woken within 30 s")
    for s in sessions:
        s.close()
    if errors:
        raise RunError(f"{target.name}: watcher errors: {errors[:3]}")
    return start, woke
