"""Concurrency and lifecycle: races resolve as in etcd, watchers miss nothing, the server
stops promptly and leaves no thread, socket or file descriptor behind.

Loopback only; every loop is bounded and every thread joined with a deadline.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from pytest_etcd_discovery._transport.intercept import intercept
from pytest_etcd_discovery._transport.server import DiscoveryServer

PUBLIC = "https://discovery.etcd.io"


def _join_new_threads(before: set[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join every thread started since ``before`` (a server's handlers end on their own
    once it has stopped); the ones still alive after ``timeout`` in all."""
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        thread.join(max(deadline - time.monotonic(), 0))
    return [t for t in set(threading.enumerate()) - before if t.is_alive()]


@pytest.fixture
def server() -> Iterator[DiscoveryServer]:
    with DiscoveryServer() as srv:
        yield srv


def burst(count: int, fn: Callable[[int], int], workers: int = 64) -> list[int]:
    """Run ``fn(i)`` for ``count`` i's on ``workers`` threads released together."""
    gate = threading.Barrier(min(workers, count))

    def run(i: int) -> int:
        if i < gate.parties:
            gate.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_creates_of_one_key_one_wins(server: DiscoveryServer) -> None:
    token = server.app.new_token(3)
    url = f"{server.url}/{token}/_state?prevExist=false"

    def create(i: int) -> int:
        with requests.Session() as session:
            reply = session.put(url, data={"value": f"started-{i}"}, timeout=20)
        if reply.status_code == 412:
            assert reply.json()["errorCode"] == 105
        return reply.status_code

    statuses = burst(300, create)
    assert statuses.count(201) == 1
    assert statuses.count(412) == 299
    # Exactly one write happened: the index moved once past the token's creation.
    assert server.store.index == 2


def test_concurrent_creates_in_process_one_wins(server: DiscoveryServer) -> None:
    token = server.app.new_token(3)
    with intercept(server.app):
        statuses = burst(
            100,
            lambda i: (
                requests.put(
                    f"{PUBLIC}/{token}/_state?prevExist=false", data={"value": str(i)}, timeout=20
                ).status_code
            ),
            workers=32,
        )
    assert sorted(set(statuses)) == [201, 412]
    assert statuses.count(201) == 1


def test_hundreds_of_members_register_at_once(server: DiscoveryServer) -> None:
    count = 300
    token = server.app.new_token(count)
    created: dict[int, int] = {}
    lock = threading.Lock()

    def register(i: int) -> int:
        with requests.Session() as session:
            reply = session.put(
                f"{server.url}/{token}/{i:016x}?prevExist=false",
                data={"value": f"m{i}=http://10.1.{i // 250}.{i % 250}:2380"},
                timeout=20,
            )
        with lock:
            created[i] = reply.json()["node"]["createdIndex"]
        return reply.status_code

    statuses = burst(count, register)
    assert statuses == [201] * count
    indexes = sorted(created.values())
    # Unique and gap-free: one index per write, none lost, none shared.
    assert indexes == list(range(indexes[0], indexes[0] + count))
    listing = requests.get(f"{server.url}/{token}", timeout=10).json()["node"]["nodes"]
    assert {n["key"].rsplit("/", 1)[1] for n in listing} == {f"{i:016x}" for i in range(count)}
    assert {n["createdIndex"] for n in listing} == set(indexes)


def test_every_watcher_sees_every_event_once_in_order(server: DiscoveryServer) -> None:
    """Watchers follow a token the way etcd does (waitIndex = last modifiedIndex + 1)
    while writers hammer it: each sees all writes, once, in index order."""
    token = server.app.new_token(3)
    base = f"{server.url}/{token}"
    start_index = server.store.index + 1
    writes, watchers, writers = 200, 8, 8
    seen: list[list[int]] = [[] for _ in range(watchers)]
    errors: list[BaseException] = []

    def watch(slot: int) -> None:
        try:
            wait_index = start_index
            with requests.Session() as session:
                while len(seen[slot]) < writes:
                    reply = session.get(
                        f"{base}?wait=true&recursive=true&waitIndex={wait_index}", timeout=20
                    )
                    node = reply.json()["node"]
                    seen[slot].append(node["modifiedIndex"])
                    wait_index = node["modifiedIndex"] + 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    def write(i: int) -> int:
        with requests.Session() as session:
            return session.put(f"{base}/k{i}", data={"value": str(i)}, timeout=20).status_code

    threads = [threading.Thread(target=watch, args=(s,), daemon=True) for s in range(watchers)]
    for thread in threads:
        thread.start()
    assert burst(writes, write, workers=writers) == [201] * writes
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    expected = list(range(start_index, start_index + writes))
    for slot in range(watchers):
        assert seen[slot] == expected, f"watcher {slot}"


def test_stop_with_blocked_watchers_is_prompt() -> None:
    server = DiscoveryServer()
    server.start()
    token = server.app.new_token(3)
    url = f"{server.url}/{token}?wait=true&recursive=true"
    finished = threading.Semaphore(0)
    count = 50

    def poll() -> None:
        try:
            requests.get(url, timeout=30)
        except requests.RequestException:
            pass  # a closed connection is a fine way to end
        finally:
            finished.release()

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    assert server.store.wait_for_watchers(count, timeout=10)
    assert server.store.watcher_count == count
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    for _ in range(count):
        assert finished.acquire(timeout=5), "a long poll outlived the server"
    assert server.store.watcher_count == 0


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_start_stop_cycles_leave_nothing_behind() -> None:
    """100 server lifetimes, each with a request, a watch released by stop, and a
    dropped connection: threads and file descriptors return to where they were."""

    def lifetime() -> None:
        with DiscoveryServer() as srv:
            token = srv.app.new_token(1)
            assert requests.get(f"{srv.url}/{token}", timeout=5).status_code == 200
            watcher = srv.store.watch(srv.app.token_key(token), recursive=True)
            srv.stop()
            assert watcher.get(timeout=1) is None

    lifetime()  # warm-up: imports, lazily created module state
    threads_before, fds_before = set(threading.enumerate()), _fd_count()
    for _ in range(100):
        lifetime()
    left = _join_new_threads(threads_before, timeout=5)
    assert not left, [t.name for t in left]
    assert _fd_count() <= fds_before + 2  # slack: the interpreter's own lazy files


SESSION_TESTS = """
import contextlib
import threading

import pytest
import requests
from unitutil import wait_until

def poll_forever(url):
    # Held by the delay when its test ends: the fake drops it then (issue #12 item 7).
    with contextlib.suppress(requests.ConnectionError):
        requests.get(url + "?wait=true", timeout=60)

@pytest.mark.parametrize("n", range(1000))
def test_one(etcd_discovery, n):
    url = etcd_discovery.new_token(1)
    if n % 3 == 0:
        etcd_discovery.faults.fail(503, times=1)
        assert requests.get(url, timeout=5).status_code == 503
    assert requests.get(url, timeout=5).status_code == 200
    if n % 50 == 0:
        # A watch stuck in a 30 s delay: teardown must release it (and its thread).
        etcd_discovery.faults.delay(30, route="watch")
        threading.Thread(target=poll_forever, args=(url,), daemon=True).start()
        # The log holds the 503 of this test too (n % 3 == 0): wait for the delay's entry,
        # or the watch could arrive in a later test and take that test's fault.
        logged = 2 if n % 3 == 0 else 1
        wait_until(lambda: len(etcd_discovery.faults.log) >= logged, "the watch reaches the delay")
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_session_of_1000_tests_leaves_nothing_behind(pytester: pytest.Pytester) -> None:
    from test_plugin import PLUGIN_ARGS

    pytester.makepyfile(SESSION_TESTS)
    pytester.runpytest(*PLUGIN_ARGS, "-q", "-k", "test_one[0]")  # warm-up
    threads_before, fds_before = set(threading.enumerate()), _fd_count()
    result = pytester.runpytest(*PLUGIN_ARGS, "-q", "-p", "no:randomly")
    result.assert_outcomes(passed=1000)
    left = _join_new_threads(threads_before, timeout=5)
    assert not left, [t.name for t in left]
    assert _fd_count() <= fds_before + 2


@pytest.mark.parametrize("teardown", ["reset", "close"])
def test_a_long_poll_registering_while_its_store_retires_is_not_stranded(
    monkeypatch: pytest.MonkeyPatch, teardown: str
) -> None:
    """The store is swapped and closed between the service picking it and the watch
    registering (the pause is a hook inside Store.watch, no sleep): the watch must end at
    once instead of waiting on a closed store nobody releases."""
    from pytest_etcd_discovery._service.discovery import DiscoveryService
    from pytest_etcd_discovery._v2store.store import Store

    service = DiscoveryService()
    token = service.new_token(3)
    old = service.store
    entered, go = threading.Event(), threading.Event()
    real_watch = Store.watch

    def paused_watch(self: Store, *args: object, **kwargs: object) -> object:
        entered.set()  # the service has chosen this store and checked it is not retired
        assert go.wait(10)
        return real_watch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "watch", paused_watch)
    answers: list[int] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            service.answer_url("GET", f"http://127.0.0.1:1/{token}?wait=true")[0]
        ),
        daemon=True,
    )
    poll.start()
    assert entered.wait(10)
    if teardown == "reset":
        service.reset()  # a test's teardown: a new store, the old one closed
    else:
        service.close()  # the server stopping
    assert old.closed
    go.set()
    poll.join(10)
    assert not poll.is_alive(), "the long poll waits on a closed store"
    assert old.watcher_count == 0
    assert len(answers) == 1
