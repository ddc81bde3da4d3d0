"""Events (one per write) and the bounded event history that watches scan.

Like etcd's v2store: an event carries a frozen JSON view of the node before and
after the write; the history keeps the last ``capacity`` events so a watch with a
past ``waitIndex`` is answered from it, and older indexes get error 401.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from collections import deque
from typing import Any

from . import errors
from .node import View

GET = "get"
CREATE = "create"
SET = "set"
UPDATE = "update"
DELETE = "delete"
COMPARE_AND_SWAP = "compareAndSwap"
COMPARE_AND_DELETE = "compareAndDelete"
EXPIRE = "expire"


@dataclasses.dataclass(frozen=True)
class Event:
    """One store result: what happened, the node after it and (if any) before it.

    ``etcd_index`` is the store index the reply reports in ``X-Etcd-Index``; it is
    not part of the JSON body. Views are never mutated once an event exists.
    """

    action: str
    node: View
    prev_node: View | None = None
    etcd_index: int = 0
    refresh: bool = False

    @property
    def index(self) -> int:
        return int(self.node.get("modifiedIndex", 0))

    @property
    def key(self) -> str:
        return str(self.node["key"])

    @property
    def is_created(self) -> bool:
        """201 rather than 200: a create, or a set that replaced nothing."""
        return self.action == CREATE or (self.action == SET and self.prev_node is None)

    @functools.cached_property
    def memo(self) -> dict[str, Any]:
        """A cache for what readers derive from the event (its encoded JSON): an event
        never changes, and one write may be sent to a thousand watchers."""
        return {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"action": self.action}
        if self.node:  # an empty view is Go's nil node (a v2v3 recursive delete's reply)
            body["node"] = self.node
        if self.prev_node is not None:
            body["prevNode"] = self.prev_node
        if self.refresh:
            body["refresh"] = True
        return body

    def with_index(self, etcd_index: int) -> Event:
        return dataclasses.replace(self, etcd_index=etcd_index)


#: How many changed keys :meth:`EventHistory.keys_since` remembers (more than the events
#: watches see: a poll of "what changed" should not miss a second of busy traffic).
KEY_LOG = 20_000


class EventHistory:
    """The last ``capacity`` events in index order, scanned by watches (``None``: all)."""

    def __init__(self, capacity: int | None = 1000) -> None:
        self.capacity = capacity
        self._events: list[Event] = []
        self._indexes: list[int] = []
        # (index, key, createdIndex) of the last KEY_LOG events, for keys_since; changes
        # at or before _keys_floor are no longer all there.
        self._keys: deque[tuple[int, str, int]] = deque(maxlen=KEY_LOG)
        self._keys_floor = 0

    @property
    def start_index(self) -> int:
        """The index of the oldest event still inside the window."""
        return self._indexes[self._window()] if self._indexes else 0

    @property
    def last_index(self) -> int:
        return self._indexes[-1] if self._indexes else 0

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: Event) -> None:
        self._events.append(event)
        self._indexes.append(event.index)
        if len(self._keys) == self._keys.maxlen:
            self._keys_floor = self._keys[0][0]
        self._keys.append((event.index, event.key, int(event.node.get("createdIndex", 0))))
        # Trim in batches so adding stays O(1) amortised.
        if self.capacity is not None and len(self._events) >= 2 * self.capacity:
            del self._events[: -self.capacity]
            del self._indexes[: -self.capacity]

    def _window(self) -> int:
        """Offset of the first event still inside the capacity window."""
        if self.capacity is None:
            return 0
        return max(0, len(self._events) - self.capacity)

    def keys_since(self, index: int) -> list[tuple[str, int]] | None:
        """``(key, createdIndex)`` of every event after ``index``, oldest first; None when
        the log no longer reaches back to ``index``."""
        if index < self._keys_floor:
            return None
        found: list[tuple[str, int]] = []
        for at, key, created in reversed(self._keys):
            if at <= index:
                break
            found.append((key, created))
        found.reverse()
        return found

    def events(self) -> list[Event]:
        return self._events[self._window() :]

    def scan(self, key: str, recursive: bool, index: int) -> Event | None:
        """The first event at or after ``index`` that a watch on ``key`` would see."""
        first = self._window()
        start = self._indexes[first] if self._indexes else 0
        if index < start:
            raise errors.EtcdError(
                errors.EVENT_INDEX_CLEARED,
                f"the requested history has been cleared [{start}/{index}]",
            )
        if not self._indexes or index > self._indexes[-1]:
            return None
        prefix = key if key.endswith("/") else key + "/"
        at = bisect.bisect_left(self._indexes, index, lo=first)
        for event in self._events[at:]:
            if event.refresh:
                continue
            if event.key == key or (recursive and event.key.startswith(prefix)):
                return event
            prev = event.prev_node
            # Deleting or expiring a directory is an event for every key below it.
            if (
                event.action in (DELETE, EXPIRE)
                and prev is not None
                and prev.get("dir")
                and key.startswith(str(prev["key"]))
            ):
                return event
        return None
