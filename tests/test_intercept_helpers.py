"""Calls with a ``timeout=`` that may block run in reused helper threads: same answers,
same ReadTimeout, and no thread left behind once the interceptor stops; calls that
cannot block run in the caller's thread, timeout or not."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
import requests
from unitutil import WAIT, wait_until

from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.discovery import DiscoveryService
from pytest_etcd_discovery._service.messages import Reply, ServiceRequest
from pytest_etcd_discovery._service.routes import Route
from pytest_etcd_discovery._transport.intercept import Interceptor

HOST = "https://helpers.example"


class Recorder(DiscoveryService):
    """A service that says which thread answered; ``/block`` waits for ``release``;
    every path but ``/inline`` may block (as a long poll may)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.threads: list[str] = []

    def may_block(self, route: Route) -> bool:
        return route.path != "/inline"

    def answer(self, request: ServiceRequest, route: Route | None = None) -> Reply:
        path = request.path
        self.threads.append(threading.current_thread().name + str(threading.get_ident()))
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/block":
            self.release.wait(WAIT)
        return Reply(200, [("Content-Type", "text/plain"), ("X-Path", path)], path.encode())


def helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "etcd-discovery-inprocess"]


@pytest.fixture
def app() -> Iterator[Recorder]:
    existing = set(helper_threads())  # another test's interceptor may still have some
    recorder = Recorder()
    yield recorder
    recorder.release.set()
    # Each test stops its interceptor: its helpers end, so the next test starts clean.
    wait_until(
        lambda: set(helper_threads()) <= existing,
        lambda: f"the test's helpers end (left: {helper_threads()})",
    )


def test_timed_calls_reuse_one_helper_thread(app: Recorder) -> None:
    with Interceptor(app, hosts=(HOST,)):
        for i in range(5):
            resp = requests.get(f"{HOST}/p{i}", timeout=5)
            assert resp.status_code == 200
            assert resp.text == f"/p{i}"
            assert resp.headers["X-Path"] == f"/p{i}"
        untimed = requests.get(f"{HOST}/here")
        inline = requests.get(f"{HOST}/inline", timeout=5)
    assert len(set(app.threads[:5])) == 1
    assert app.threads[0].startswith("etcd-discovery-inprocess")
    caller = threading.current_thread().name + str(threading.get_ident())
    assert app.threads[5] == caller
    assert untimed.text == "/here"
    # A call that cannot block needs no helper, even with a timeout.
    assert app.threads[6] == caller
    assert inline.text == "/inline"


def test_a_timed_out_call_keeps_its_helper_and_the_next_call_gets_another(app: Recorder) -> None:
    with Interceptor(app, hosts=(HOST,)):
        with pytest.raises(requests.exceptions.ReadTimeout, match=r"read timeout=0\.1"):
            requests.get(f"{HOST}/block", timeout=(5, 0.1))
        assert requests.get(f"{HOST}/next", timeout=5).text == "/next"
        assert app.threads[0] != app.threads[1]
        app.release.set()  # the abandoned call ends; its helper is free again
        wait_until(lambda: len(app.threads) == 2, "the abandoned call ends")
        for i in range(3):
            assert requests.get(f"{HOST}/again{i}", timeout=5).status_code == 200
        assert set(app.threads[2:]) <= set(app.threads[:2])


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_zero_or_negative_timeout_does_not_wait(app: Recorder, timeout: float) -> None:
    with Interceptor(app, hosts=(HOST,)):
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(f"{HOST}/block", timeout=timeout)
        assert time.monotonic() - started < WAIT / 2


def test_an_error_in_the_app_reaches_the_caller(app: Recorder) -> None:
    with Interceptor(app, hosts=(HOST,)), pytest.raises(RuntimeError, match="boom"):
        requests.get(f"{HOST}/boom", timeout=5)


def test_helpers_exit_when_the_interceptor_stops(app: Recorder) -> None:
    before = len(helper_threads())
    interceptor = Interceptor(app, hosts=(HOST,))
    with interceptor:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(f"{HOST}/block", timeout=0.05)
        assert requests.get(f"{HOST}/idle", timeout=5).status_code == 200
        assert len(helper_threads()) >= before + 2
    # The idle helper exits at once, the busy one once its call ends.
    app.release.set()
    wait_until(lambda: len(helper_threads()) <= before, "the helpers exit")
    # A restarted interceptor serves timed calls again.
    with interceptor:
        assert requests.get(f"{HOST}/back", timeout=5).text == "/back"
    wait_until(lambda: len(helper_threads()) <= before, "the helpers exit")


def test_idle_helpers_exit_on_their_own(app: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_etcd_discovery._transport import intercept

    monkeypatch.setattr(intercept._Helpers, "IDLE", 0.05)
    before = len(helper_threads())
    with Interceptor(app, hosts=(HOST,)):
        assert requests.get(f"{HOST}/once", timeout=5).status_code == 200
        wait_until(lambda: len(helper_threads()) <= before, "the idle helper exits")
        # ... and a later call starts a new one.
        assert requests.get(f"{HOST}/later", timeout=5).text == "/later"


def test_concurrent_timed_calls_all_get_their_own_answer(app: Recorder) -> None:
    results: dict[int, str] = {}

    def call(i: int) -> None:
        for j in range(20):
            results[i * 100 + j] = requests.get(f"{HOST}/c{i}-{j}", timeout=5).text

    with Interceptor(app, hosts=(HOST,)):
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
    assert results == {i * 100 + j: f"/c{i}-{j}" for i in range(4) for j in range(20)}


def test_only_requests_that_can_block_go_to_a_helper() -> None:
    """The fake itself: a token GET with ``timeout=`` is answered in the caller's thread;
    a long poll, or any request while a fault plan has delays, in a helper thread."""
    from pytest_etcd_discovery._service.app import DiscoveryApp

    app = DiscoveryApp()
    threads: list[tuple[str, str]] = []

    def note(request: ServiceRequest) -> None:
        threads.append((f"{request.path}?{request.query}", threading.current_thread().name))

    app.before_request.append(note)
    token = app.new_token(1)
    caller = threading.current_thread().name
    try:
        with Interceptor(app, hosts=(HOST,)):
            assert requests.get(f"{HOST}/{token}", timeout=5).status_code == 200
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(f"{HOST}/{token}?wait=true", timeout=0.2)
            rule = app.faults.delay(0.01, route="size")
            assert requests.get(f"{HOST}/{token}/_config/size", timeout=5).text
            assert rule.fired == 1
    finally:
        app.close()  # releases the abandoned long poll
    helper = "etcd-discovery-inprocess"
    assert threads == [
        (f"/{token}?", caller),
        (f"/{token}?wait=true", helper),
        (f"/{token}/_config/size?", helper),
    ]


def test_the_interceptor_keeps_no_copy_of_what_it_answered() -> None:
    """``responses`` keeps every request and response it answered until its mock stops
    (some 11 KB a GET); the interceptor's mock keeps none: the fake's journal is the
    record, and the process grows by no more than the journal."""
    app = DiscoveryApp()
    with Interceptor(app, [HOST]):
        session = requests.Session()
        for _ in range(20):
            session.get(f"{HOST}/robots.txt")  # warm what is made once
        gc.collect()
        tracemalloc.start()
        try:
            start, journal = tracemalloc.get_traced_memory()[0], app.journal.bytes
            for _ in range(300):
                assert session.get(f"{HOST}/robots.txt").status_code == 200
            gc.collect()
            grew = tracemalloc.get_traced_memory()[0] - start
            journal = app.journal.bytes - journal
        finally:
            tracemalloc.stop()
        session.close()
    assert grew < journal + 64 * 1024, f"300 calls grew {grew} B, their journal entries {journal} B"
