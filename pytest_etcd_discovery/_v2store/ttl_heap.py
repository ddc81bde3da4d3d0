"""Keys with a TTL, in removal order (etcd's ttlKeyHeap), so expiring is O(log n)."""

from __future__ import annotations

import heapq
import itertools

from .node import Node


class TTLKeyHeap:
    """A min-heap of nodes by expiry time with lazy removal of stale entries."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Node]] = []
        self._live: dict[int, tuple[int, int]] = {}  # id(node) -> (expire_ns, seq)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def push(self, node: Node) -> None:
        """Add ``node`` or move it to its new expiry time."""
        removal = node.removal_ns
        assert removal is not None
        entry = (removal, next(self._seq))
        self._live[id(node)] = entry
        heapq.heappush(self._heap, (*entry, node))

    def remove(self, node: Node) -> None:
        self._live.pop(id(node), None)

    def _prune(self) -> None:
        while self._heap:
            expire_ns, seq, node = self._heap[0]
            if self._live.get(id(node)) == (expire_ns, seq):
                return
            heapq.heappop(self._heap)

    def top(self) -> Node | None:
        self._prune()
        return self._heap[0][2] if self._heap else None

    def pop(self) -> Node | None:
        self._prune()
        if not self._heap:
            return None
        _, _, node = heapq.heappop(self._heap)
        del self._live[id(node)]
        return node

    def any_at_or_below(self, path: str, scan_limit: int) -> bool:
        """Whether a key with a TTL is ``path`` or below it; also True when the heap is
        larger than ``scan_limit`` (not scanned: the caller only wants a sure "no")."""
        if len(self._heap) > scan_limit:
            return True
        below = path.rstrip("/") + "/"
        return any(node.path == path or node.path.startswith(below) for *_, node in self._heap)

    def next_expiry(self) -> int | None:
        node = self.top()
        return None if node is None else node.removal_ns
