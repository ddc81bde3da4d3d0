"""The event loop's cross-thread wake-ups: a call from another thread is never left
waiting while the loop sleeps."""

from __future__ import annotations

import os
import selectors
import threading
from collections.abc import Callable, Iterator

import pytest
from unitutil import WAIT

from pytest_etcd_discovery._transport import loop as loop_module
from pytest_etcd_discovery._transport.loop import EventLoop


def _pipe_readable(loop: EventLoop) -> bool:
    with selectors.DefaultSelector() as probe:
        probe.register(loop._wake_r, selectors.EVENT_READ)
        return bool(probe.select(0))


def test_a_wake_up_written_while_the_loop_drains_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread's call lands while the loop empties its wake-up pipe (the race
    that hung a server's stop): the next call from another thread must still wake it."""
    loop = EventLoop()
    try:
        loop.call_soon_threadsafe(lambda: None)  # the wake-up being drained
        real_read = os.read
        raced: list[bool] = []

        def read_racing(fd: int, size: int) -> bytes:
            if not raced:
                raced.append(True)
                loop.call_soon_threadsafe(lambda: None)  # lands mid-drain
            return real_read(fd, size)

        monkeypatch.setattr(loop_module.os, "read", read_racing)
        loop._drain_wakeups(selectors.EVENT_READ)
        monkeypatch.undo()
        assert raced
        # The loop now runs what is queued (both calls were queued before the drain
        # ended) and sleeps until the pipe is readable.
        loop._ready.clear()
        loop.call_soon_threadsafe(lambda: None)  # a later call from another thread
        assert _pipe_readable(loop), "the loop would sleep with a call queued"
    finally:
        loop.close()


@pytest.fixture
def running_loop() -> Iterator[EventLoop]:
    loop = EventLoop()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(WAIT)
        loop.close()


def test_calls_from_many_threads_all_run(running_loop: EventLoop) -> None:
    """Eight threads, 500 synchronous calls each, on one running loop: every call runs
    and every caller returns (a lost wake-up leaves one waiting for ever)."""
    count = [0]
    errors: list[BaseException] = []

    def add() -> None:
        count[0] += 1  # on the loop's thread only: no lock needed

    def caller(call: Callable[[], None]) -> None:
        try:
            for _ in range(500):
                running_loop.run_sync(call)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(add,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 4)
    assert not [t for t in threads if t.is_alive()], "a caller is still waiting"
    assert not errors
    assert count[0] == 8 * 500
