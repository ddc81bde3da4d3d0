"""Clocks for the store: the system clock and a controllable one for tests.

The store reads time only through a clock, the way etcd's v2store takes a
``clockwork.Clock``; that is what lets a test jump seven days ahead and see a
604800 s registration expire at once, without patching :mod:`time` globally.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

NS_PER_S = 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """What the store needs from a clock: the current time."""

    def now(self) -> float:
        """Unix time in seconds."""

    def now_ns(self) -> int:
        """Unix time in nanoseconds (what TTL arithmetic uses, exactly)."""


class SystemClock:
    """Real time."""

    def now(self) -> float:
        return time.time()

    def now_ns(self) -> int:
        return time.time_ns()

    def __repr__(self) -> str:
        return "SystemClock()"


class ControllableClock:
    """A clock that follows real time until a test moves it.

    :meth:`advance` jumps ahead (and tells every subscribed store, so keys that
    became due expire and their watchers wake at once); :meth:`freeze` stops it
    following real time, :meth:`unfreeze` lets it run on from where it stands.
    """

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        real = time.time_ns()
        # now = real time + offset while running; = _frozen_at while frozen.
        self._offset = 0 if start is None else round(start * NS_PER_S) - real
        self._frozen_at: int | None = real + self._offset if frozen else None
        self._listeners: list[Callable[[], None]] = []

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now_ns(self) -> int:
        frozen_at = self._frozen_at
        if frozen_at is not None:
            return frozen_at
        return time.time_ns() + self._offset

    def now(self) -> float:
        return self.now_ns() / NS_PER_S

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead and fire every expiry that became due."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        step = round(seconds * NS_PER_S)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += step
            else:
                self._offset += step
        self._notify()

    def freeze(self) -> None:
        """Stop following real time; the clock now moves only by :meth:`advance`."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = time.time_ns() + self._offset
        self._notify()

    def unfreeze(self) -> None:
        """Follow real time again, from the instant the clock shows now."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time_ns()
                self._frozen_at = None
        self._notify()

    def reset(self) -> None:
        """Back to real time, running (the control API's reset)."""
        with self._lock:
            self._offset = 0
            self._frozen_at = None
        self._notify()

    def fork(self) -> ControllableClock:
        """A new clock that shows what this one shows, at the same pace, and moves on
        its own from here (a test's clock, forked from the shared one)."""
        clock = ControllableClock()
        with self._lock:
            clock._offset, clock._frozen_at = self._offset, self._frozen_at
        return clock

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change of pace or position (stores use it)."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running"
        return f"ControllableClock({self.now():.3f}, {state})"
