"""The watch hub: which watchers want which events.

The store calls the hub under its own lock, so a watcher's catch-up from history and its
switch to live events are one step and no event is lost or doubled in between.  A sink is
called under that lock too: it must only hand the batch on (a queue's ``put``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .kv import DELETE, PUT, Event, in_range

__all__ = ["WatchBatch", "WatchHub", "Watcher"]


@dataclass(frozen=True)
class WatchBatch:
    """What one ``WatchResponse`` carries: events at ``revision``, or, when
    ``compact_revision`` is set, the news that the watcher started below it (then it is
    removed, as etcd cancels such a watcher)."""

    revision: int
    events: tuple[Event, ...] = ()
    compact_revision: int = 0


@dataclass(eq=False)
class Watcher:
    """A watch on ``key`` (``end`` as in :func:`~.kv.in_range`) from ``start_revision``."""

    key: bytes
    end: bytes | None
    start_revision: int
    sink: Callable[[WatchBatch], None]
    no_put: bool = False
    no_delete: bool = False
    handle: int = field(default=0)

    def wants(self, event: Event) -> bool:
        if event.kv.mod_revision < self.start_revision:
            return False
        if (event.type == PUT and self.no_put) or (event.type == DELETE and self.no_delete):
            return False
        return in_range(event.kv.key, self.key, self.end)


class WatchHub:
    """Live watchers; :meth:`notify` fans a committed revision's events out."""

    def __init__(self) -> None:
        self._watchers: dict[int, Watcher] = {}
        self._handles = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, watcher: Watcher, history: Iterable[Event], revision: int) -> None:
        """Register ``watcher`` after sending it what ``history`` holds for it."""
        past = tuple(event for event in history if watcher.wants(event))
        if past:
            watcher.sink(WatchBatch(revision, past))
        with self._lock:
            watcher.handle = next(self._handles)
            self._watchers[watcher.handle] = watcher

    def remove(self, watcher: Watcher) -> bool:
        with self._lock:
            return self._watchers.pop(watcher.handle, None) is not None

    def notify(self, events: tuple[Event, ...], revision: int) -> None:
        with self._lock:
            watchers = list(self._watchers.values())
        for watcher in watchers:
            mine = tuple(event for event in events if watcher.wants(event))
            if mine:
                watcher.sink(WatchBatch(revision, mine))

    def __len__(self) -> int:
        with self._lock:
            return len(self._watchers)
