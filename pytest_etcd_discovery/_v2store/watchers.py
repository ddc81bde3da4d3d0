"""Watchers and the hub that registers them and hands each its events.

A waiting watch sleeps on its own condition and is woken by the write itself (or
by an expiry, or by the store closing); nothing polls. A caller that must not block (the
live server's event loop) sets a wake-up with :meth:`Watcher.set_wake` instead and takes
the events with :meth:`Watcher.poll` when it is called.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from .events import Event, EventHistory

STREAM_BUFFER = 100  # etcd's channel size; a stream watcher that falls behind is dropped


def is_hidden(watch_path: str, key_path: str) -> bool:
    """True if ``key_path`` is below ``watch_path`` through a ``_`` name (etcd's isHidden)."""
    if len(watch_path) > len(key_path):
        return False
    after = "/" + key_path[len(watch_path) :].lstrip("/")
    return "/_" in after


class Watcher:
    """One watch: a queue of matching events and a condition to wait on."""

    def __init__(
        self,
        hub: WatcherHub,
        key: str,
        *,
        recursive: bool,
        stream: bool,
        since_index: int,
        start_index: int,
    ) -> None:
        self.hub = hub
        self.key = key
        self.recursive = recursive
        self.stream = stream
        self.since_index = since_index
        self.start_index = start_index  # the store index when the watch began
        self._events: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition()
        self._wake: Callable[[], None] | None = None
        self.closed = False
        self.removed = False

    def _push(self, event: Event) -> bool:
        with self._cond:
            if self.closed:
                return False
            if len(self._events) >= STREAM_BUFFER:
                self.closed = True
                self._cond.notify_all()
                pushed = False
            else:
                self._events.append(event)
                self._cond.notify_all()
                pushed = True
            wake = self._wake
        if wake is not None:
            wake()  # outside the lock: it may run the waiter's code at once
        return pushed

    def notify(self, event: Event, original_path: bool, deleted: bool) -> bool:
        if (self.recursive or original_path or deleted) and event.index >= self.since_index:
            if not self._push(event):
                self.hub.remove(self)
            return True
        return False

    def close(self) -> None:
        """Wake the waiter with no event (store closing, watch dropped)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
            wake = self._wake
        if wake is not None:
            wake()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or when the watch was closed."""
        self.wait(timeout)
        return self.poll()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until an event is queued or the watch is closed; False on timeout."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: self._events or self.closed, timeout))

    def has_news(self) -> bool:
        """Whether :meth:`poll` would not wait: an event is queued or the watch closed."""
        return bool(self._events) or self.closed

    def poll(self) -> Event | None:
        """The next queued event without waiting; None when there is none."""
        with self._cond:
            return self._events.popleft() if self._events else None

    def set_wake(self, wake: Callable[[], None] | None) -> None:
        """Have ``wake`` called (from the writer's thread) whenever an event is queued or
        the watch closes; None forgets it. Called at once when there is news already."""
        with self._cond:
            self._wake = wake
            news = wake is not None and (bool(self._events) or self.closed)
        if news:
            assert wake is not None
            wake()

    def remove(self) -> None:
        """Stop watching (idempotent)."""
        self.hub.remove(self)
        self.close()


class WatcherHub:
    """Watchers by key plus the event history (etcd's watcherHub)."""

    def __init__(self, capacity: int | None = 1000) -> None:
        self._lock = threading.RLock()
        # Notified whenever a watcher is registered or leaves (wait_for_count).
        self._changed = threading.Condition(self._lock)
        self._watchers: dict[str, list[Watcher]] = {}
        # Streams answered from history: they get no more events (as in etcd) but wait on
        # until they are removed, so close_all must still find them to wake them.
        self._parked: set[Watcher] = set()
        # Closed (the server stopping): a new watch ends at once instead of blocking a
        # server's request that the server would then wait for.
        self._closed = False
        self.history = EventHistory(capacity)

    @property
    def count(self) -> int:
        with self._lock:
            return sum(len(ws) for ws in self._watchers.values())

    def wait_for_count(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` watchers are registered; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout)

    def watch(
        self, key: str, *, recursive: bool, stream: bool, since_index: int, store_index: int
    ) -> Watcher:
        event = self.history.scan(key, recursive, since_index)  # may raise 401
        watcher = Watcher(
            self,
            key,
            recursive=recursive,
            stream=stream,
            since_index=since_index,
            start_index=store_index,
        )
        with self._lock:
            if event is not None:
                # A past event is answered at once, as a copy stamped with today's index;
                # like etcd, such a watcher (even a stream) is not registered for more.
                watcher._push(event.with_index(store_index))
                if self._closed:
                    watcher.close()
                elif stream:
                    self._parked.add(watcher)
                return watcher
            if self._closed:
                watcher.removed = True
                watcher.close()
                return watcher
            self._watchers.setdefault(key, []).append(watcher)
            self._changed.notify_all()
        return watcher

    def add(self, event: Event) -> None:
        """Record without notifying (refreshes)."""
        self.history.add(event)

    def notify(self, event: Event) -> None:
        self.history.add(event)
        path = ""
        self.notify_watchers(event, "/", deleted=False)
        for segment in event.key.split("/"):
            if not segment:
                continue
            path = f"{path}/{segment}"
            self.notify_watchers(event, path, deleted=False)

    def notify_watchers(self, event: Event, path: str, *, deleted: bool) -> None:
        with self._lock:
            watchers = self._watchers.get(path)
            if not watchers:
                return
            original = event.key == path
            if not original and is_hidden(path, event.key):
                return
            keep: list[Watcher] = []
            for w in list(watchers):
                if w.notify(event, original, deleted) and not w.stream:
                    w.removed = True
                    continue
                if not w.removed:
                    keep.append(w)
            # A dropped stream watcher may already have emptied (and deleted) the list.
            if keep:
                self._watchers[path] = keep
            else:
                self._watchers.pop(path, None)

    def remove(self, watcher: Watcher) -> None:
        with self._lock:
            self._parked.discard(watcher)
            if watcher.removed:
                return
            watcher.removed = True
            watchers = self._watchers.get(watcher.key)
            if watchers and watcher in watchers:
                watchers.remove(watcher)
                if not watchers:
                    del self._watchers[watcher.key]

    def close_all(self) -> None:
        """Wake every watch, registered or parked, and end new ones at once until
        :meth:`open`."""
        with self._lock:
            self._closed = True
            all_watchers = [w for ws in self._watchers.values() for w in ws]
            all_watchers += self._parked
            self._watchers.clear()
            self._parked.clear()
        for w in all_watchers:
            w.removed = True
            w.close()

    def open(self) -> None:
        """Accept watches again after :meth:`close_all` (a restarted server)."""
        with self._lock:
            self._closed = False
