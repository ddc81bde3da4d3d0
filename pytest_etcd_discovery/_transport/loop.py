"""One event loop for the live server, its TLS front and the front's tunnels.

Why :mod:`selectors` and not :mod:`asyncio`: the server is one readiness loop over
non-blocking sockets (accept until ``EAGAIN``, read what is there, write what fits), so
it needs none of asyncio's transports, futures or tasks, and each of those layers costs
per request on a loop that also shares its GIL with the test that runs it (measured
on this machine, see ``docs/explanation/performance.rst``). A selector loop also keeps
every socket a plain socket, so a TLS connection is an :class:`ssl.SSLSocket` whose
handshake is stepped on readiness.

Other threads reach the loop through :meth:`EventLoop.call_soon_threadsafe` (a
self-pipe wakes the selector); timers are a heap.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["EventLoop", "Timer"]

log = logging.getLogger("pytest_etcd_discovery")


def _now() -> float:
    # Not time.monotonic(): freezegun patches it, and a frozen test must not stop (or
    # overflow) the server's timers.
    return time.clock_gettime(time.CLOCK_MONOTONIC)


Callback = Callable[[int], None]  # called with the ready events (selectors.EVENT_*)


class Timer:
    """A call at a moment (``_now()``); :meth:`cancel` forgets it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    """A selector loop run by one thread (:meth:`run`) until :meth:`stop`."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._ready: collections.deque[Callable[[], None]] = collections.deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._stopping = False
        self._woken = False
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeups)
        self.thread: threading.Thread | None = None
        self._ident: int | None = None
        self.running = False

    # -- registration -----------------------------------------------------------------

    def register(self, fileobj: Any, events: int, callback: Callback) -> None:
        self.selector.register(fileobj, events, callback)

    def modify(self, fileobj: Any, events: int, callback: Callback) -> None:
        if events:
            try:
                self.selector.modify(fileobj, events, callback)
            except KeyError:
                self.selector.register(fileobj, events, callback)
        else:
            self.unregister(fileobj)

    def unregister(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(fileobj)

    # -- calls --------------------------------------------------------------------------

    #: The loop's clock (seconds, monotonic).
    now = staticmethod(_now)

    def in_loop(self) -> bool:
        return threading.get_ident() == self._ident

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon (from the loop's own thread)."""
        self._ready.append(callback)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon, from any thread (one wake-up for many)."""
        self._ready.append(callback)  # deque.append is atomic
        if threading.get_ident() == self._ident:
            return
        with self._lock:
            if self._woken:
                return
            self._woken = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def run_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` now when on the loop, else soon on it."""
        if self.in_loop():
            callback()
        else:
            self.call_soon_threadsafe(callback)

    def run_sync(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop and wait for it; here when the loop is not
        running (stopped already): exactly once either way."""
        if self.in_loop() or not self.running:
            callback()
            return
        lock = threading.Lock()
        done = threading.Event()
        ran: list[bool] = []

        def once() -> None:
            with lock:
                if ran:
                    return
                ran.append(True)
            try:
                callback()
            finally:
                done.set()

        self.call_soon_threadsafe(once)
        while not done.wait(0.05):
            if not self.running:  # the loop stopped before it got to it
                once()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the loop at ``when`` (loop thread only)."""
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(_now() + delay, callback)

    def _drain_wakeups(self, events: int) -> None:
        # Empty the pipe first, then allow the next write: the other order lost a
        # wake-up (a write between the two was read away with _woken left set, so
        # every later call_soon_threadsafe skipped its write and the loop slept on).
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass
        with self._lock:
            self._woken = False

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop` (it returns after the turn that saw it)."""
        self.thread = threading.current_thread()
        self._ident = threading.get_ident()
        self.running = True
        try:
            self._run()
        finally:
            self.running = False

    def _run(self) -> None:
        select = self.selector.select
        ready = self._ready
        timers = self._timers
        while not self._stopping:
            if ready:
                timeout: float | None = 0
            elif timers:
                timeout = max(timers[0][0] - _now(), 0)
            else:
                timeout = None
            for key, events in select(timeout):
                try:
                    key.data(events)
                except Exception:  # one connection's bug must not end the loop
                    log.exception("etcd discovery fake: event loop callback failed")
            if timers:
                now = _now()
                while timers and timers[0][0] <= now:
                    timer = heapq.heappop(timers)[2]
                    if not timer.cancelled:
                        ready.append(timer.callback)
            for _ in range(len(ready)):  # what is queued now; later calls wait a turn
                self._call(ready.popleft())

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("etcd discovery fake: event loop callback failed")

    def stop(self) -> None:
        """Make :meth:`run` return after its current turn (any thread)."""

        def stopping() -> None:
            self._stopping = True

        self.call_soon_threadsafe(stopping)

    def close(self) -> None:
        """Release the selector and the self-pipe (after :meth:`run` returned)."""
        self.selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._timers.clear()
        self._ready.clear()
