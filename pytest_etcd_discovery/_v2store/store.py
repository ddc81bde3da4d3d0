"""An etcd-v2-like key-value store: the state behind the fake discovery service.

The operations, index rules, errors and events follow etcd 3.4's ``v2store``
(read in its source, checked against the real binaries by the conformance suite):

1. one global index, +1 per write, one event per write;
2. create/set give a node ``createdIndex = modifiedIndex = index``; update and
   compare-and-swap move only ``modifiedIndex``;
3. TTLs are absolute expiry instants on the injected clock; a key expires at
   exactly its instant, producing an ``expire`` event that wakes its watchers --
   except a key whose instant had passed when it was written (``ttl=0``): etcd
   removes expired keys only in a sweep (every 500 ms), so such a key stays readable,
   its expiration in the past, until the next sweep on the store's clock;
4. ``refresh`` rewrites the TTL and bumps the index but notifies no watcher.

A store built with :data:`~.rules.V2_OVER_V3` answers as etcd's v2 API over v3 does
instead (today's discoveryserver): see :mod:`.rules` for what changes.

Everything happens under one lock; long polls wait on their own watcher, outside it.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from . import errors
from .clock import NS_PER_S, Clock, ControllableClock, SystemClock
from .errors import EtcdError
from .events import (
    COMPARE_AND_DELETE,
    COMPARE_AND_SWAP,
    CREATE,
    DELETE,
    EXPIRE,
    GET,
    SET,
    UPDATE,
    Event,
)
from .node import Node, View
from .rules import ETCD_V2, StoreRules
from .ttl_heap import TTLKeyHeap
from .watchers import Watcher, WatcherHub

MIN_EXPIRE_NS = 946_684_800 * NS_PER_S  # 2000-01-01T00:00:00Z, etcd's minExpireTime
#: etcd 3.4's leader proposes a SYNC every 500 ms while its v2 store has TTL keys
#: (EtcdServer.SyncTicker); applying it runs DeleteExpiredKeys(the SYNC's time).
SWEEP_INTERVAL_NS = 500_000_000
#: GET results kept for a state (see :meth:`Store.get`): the members of one token poll
#: the same one or two listings, so a few suffice.
READS_KEPT = 64
#: The TTL heap is scanned for keys below a GET's path only up to this size; above it a
#: listing is simply not kept.
READS_TTL_SCAN = 64
#: The expiry thread's longest sleep: a far expiry (2262) is beyond what a lock's timeout
#: takes (``threading.TIMEOUT_MAX``), so it wakes now and then and looks again.
MAX_REAPER_WAIT = 3600.0
#: etcd keeps an expiry as int64 nanoseconds.
MAX_EXPIRE_NS = 2**63 - 1
#: Numbers every store's contents: a new store or a restore takes the next one.
_GENERATIONS = itertools.count(1)


def reaper_wait(next_ns: int, now_ns: int) -> float:
    """Seconds the expiry thread sleeps until ``next_ns``: never negative, never more
    than :data:`MAX_REAPER_WAIT`."""
    return min(max(next_ns - now_ns, 0) / NS_PER_S, MAX_REAPER_WAIT)


def _wrap64(value: int) -> int:
    """``value`` as Go's int64 arithmetic leaves it (two's complement wrap-around)."""
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def clean_path(key: str) -> str:
    """Go's ``path.Clean(path.Join("/", key))``."""
    parts: list[str] = []
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def _split(path: str) -> tuple[str, str]:
    head, _, name = path.rpartition("/")
    return head or "/", name


def _event_node(key: str, modified: int, created: int, *, is_dir: bool = False) -> View:
    view: View = {"key": key}
    if is_dir:
        view["dir"] = True
    view["modifiedIndex"] = modified
    view["createdIndex"] = created
    return view


class Store:
    """The v2 keys store. Thread-safe; every method may raise :class:`EtcdError`."""

    def __init__(
        self,
        clock: Clock | None = None,
        history_size: int | None = None,
        *,
        rules: StoreRules = ETCD_V2,
    ) -> None:
        """``history_size``: events kept for watches (default: the ``rules``' own)."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rules = rules
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._index = 0
        #: Changes when the contents are replaced wholesale (a restore), so that a reader
        #: polling "what changed since index N" (the dashboard) knows N means nothing now.
        self.generation = next(_GENERATIONS)
        self.root = Node("/", 0, None, is_dir=True)
        self.hub = WatcherHub(rules.history_size if history_size is None else history_size)
        self._ttl = TTLKeyHeap()
        #: GET events of the state ``_reads_state`` (generation, index), by the request.
        self._reads: dict[tuple[str, bool, bool], Event] = {}
        self._reads_state = (0, -1)
        self._closed = False
        self._reaper: threading.Thread | None = None
        self._sweep_anchor = self.clock.now_ns()  # the sweeps tick from the store's start
        if isinstance(self.clock, ControllableClock):
            self.clock.subscribe(self._clock_moved)

    # -- bookkeeping -------------------------------------------------------------------

    @property
    def index(self) -> int:
        with self._lock:
            return self._index

    @property
    def closed(self) -> bool:
        """True once :meth:`close` retired the store (until :meth:`open`)."""
        return self._closed

    @property
    def watcher_count(self) -> int:
        """How many long polls wait on this store right now."""
        return self.hub.count

    def wait_for_watchers(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``count`` long polls wait here; False on timeout.

        A test can then write knowing the watch will see the write, with no sleep.
        """
        return self.hub.wait_for_count(count, timeout)

    def _now(self) -> int:
        return self.clock.now_ns()

    def _expire_at(self, ttl: float | None, now: int) -> int | None:
        """The expiry instant etcd computes for ``ttl`` seconds from ``now``.

        etcd does ``now.Add(time.Duration(ttl) * time.Second).UnixNano()`` in int64, so
        absurd TTLs wrap around; a result before 2000 means "no TTL", as in its store.
        """
        if ttl is None:
            return None
        expire = _wrap64(now + _wrap64(round(ttl * NS_PER_S)))
        if expire == 0 or expire < MIN_EXPIRE_NS:
            return None
        return expire

    def bump_index(self, steps: int = 1) -> int:
        """Advance the index without an event (a write the keys API cannot see)."""
        with self._lock:
            self._index += steps
            return self._index

    def changed_keys(self, index: int) -> list[tuple[str, int]] | None:
        """``(key, createdIndex)`` of every write, delete and expiry after ``index``,
        oldest first (a poller's "what changed"); None when they are no longer all known
        (the last 20,000 are).  An index moved without an event changed no key."""
        with self._lock:
            if index >= self._index:
                return []
            return self.hub.history.keys_since(index)

    def history_events(self) -> list[Event]:
        """The events the history holds (what a watch can still be answered from)."""
        with self._lock:
            return self.hub.history.events()

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str, *, recursive: bool = False, sorted: bool = False) -> Event:
        """A read. The same request on the same state gets the same :class:`Event` (its
        view and encoded reply built once): a hundred members polling one token's listing
        cost one listing. Every change of the tree moves the index (or, for a restore,
        the generation), and a listing that shows a TTL, which changes with the clock,
        is never kept."""
        with self._lock:
            now = self._expire_due()
            state = (self.generation, self._index)
            if state != self._reads_state:
                self._reads.clear()
                self._reads_state = state
            asked = (key, recursive, sorted)
            event = self._reads.get(asked)
            if event is not None:
                return event
            path = clean_path(key)
            node = self._internal_get(path)
            view = node.view_listing(now, recursive=recursive, sorted_=sorted)
            if self.rules.echoes_dir_path and node.is_dir and node.parent is not None:
                view["key"] = key  # a fresh view: the path as asked, trailing slash and all
            event = Event(GET, view, etcd_index=self._index)
            if len(self._reads) < READS_KEPT and not self._ttl.any_at_or_below(
                path, READS_TTL_SCAN
            ):
                self._reads[asked] = event
            return event

    def watch(
        self, key: str, *, recursive: bool = False, stream: bool = False, since_index: int = 0
    ) -> Watcher:
        """Register a watch; a past ``since_index`` still in history is answered at once."""
        with self._lock:
            self._expire_due()
            if since_index == 0:
                since_index = self._index + 1
            try:
                return self.hub.watch(
                    clean_path(key),
                    recursive=recursive,
                    stream=stream,
                    since_index=since_index,
                    store_index=self._index,
                )
            except EtcdError as err:
                err.index = self._index
                raise

    # -- writes ------------------------------------------------------------------------

    def create(
        self,
        key: str,
        value: str = "",
        *,
        dir: bool = False,
        ttl: float | None = None,
        unique: bool = False,
    ) -> Event:
        with self._lock:
            now = self._expire_due()
            event = self._internal_create(
                key, value, dir, unique, False, self._expire_at(ttl, now), CREATE, now
            )
            self.hub.notify(event)
            return event

    def set(
        self,
        key: str,
        value: str = "",
        *,
        dir: bool = False,
        ttl: float | None = None,
        refresh: bool = False,
    ) -> Event:
        with self._lock:
            now = self._expire_due()
            path = clean_path(key)
            try:
                existing: Node | None = self._internal_get(path)
            except EtcdError as err:
                if err.code != errors.KEY_NOT_FOUND or refresh:
                    raise
                existing = None
            if refresh and existing is not None:
                value = existing.value
            event = self._internal_create(
                path, value, dir, False, True, self._expire_at(ttl, now), SET, now
            )
            self._publish(event, refresh)
            return event

    def update(
        self,
        key: str,
        value: str = "",
        *,
        ttl: float | None = None,
        refresh: bool = False,
    ) -> Event:
        """``prevExist=true``: the key must exist; no ``ttl`` removes an existing TTL."""
        with self._lock:
            now = self._expire_due()
            path = self._writable(key)
            node = self._internal_get(path)
            nxt = self._index + 1
            if node.is_dir and value:
                raise EtcdError(errors.NOT_FILE, path, self._index)
            if refresh:
                value = node.value
            prev = node.view(now)
            if not node.is_dir:
                node.value = value
                node.modified_index = nxt
            self._update_ttl(node, self._expire_at(ttl, now), now)
            view: View = {"key": path}
            if node.is_dir:
                view["dir"] = True
            else:
                view["value"] = value
            view.update(_ttl_fields(node, now))
            view["modifiedIndex"] = nxt
            view["createdIndex"] = node.created_index
            self._index = nxt
            event = Event(UPDATE, view, prev, etcd_index=nxt)
            self._publish(event, refresh)
            return event

    def compare_and_swap(
        self,
        key: str,
        prev_value: str,
        prev_index: int,
        value: str,
        *,
        ttl: float | None = None,
        refresh: bool = False,
    ) -> Event:
        with self._lock:
            now = self._expire_due()
            path = self._writable(key)
            node = self._internal_get(path)
            if node.is_dir:
                raise EtcdError(errors.NOT_FILE, path, self._index)
            self._compare(node, prev_value, prev_index)
            if refresh:
                value = node.value
            self._index += 1
            prev = node.view(now)
            node.value = value
            node.modified_index = self._index
            self._update_ttl(node, self._expire_at(ttl, now), now)
            event = Event(COMPARE_AND_SWAP, node.view(now), prev, etcd_index=self._index)
            self._publish(event, refresh)
            return event

    def delete(self, key: str, *, dir: bool = False, recursive: bool = False) -> Event:
        with self._lock:
            now = self._expire_due()
            path = self._writable(key)
            node = self._internal_get(path)
            if self.rules.v3_deletes:
                return self._v3_delete(node, now, dir=dir or recursive, recursive=recursive)
            nxt = self._index + 1
            event = Event(
                DELETE,
                _event_node(path, nxt, node.created_index, is_dir=node.is_dir),
                node.view(now),
                etcd_index=nxt,
            )
            self._remove(node, event, dir=dir or recursive, recursive=recursive)
            self._index = nxt
            self.hub.notify(event)
            return event

    def _v3_delete(self, node: Node, now: int, *, dir: bool, recursive: bool) -> Event:
        """A delete as v2v3 makes it: one v3 transaction whose watch event is the
        deepest key it removed, as a tombstone; a directory's reply has no node."""
        nxt = self._index + 1
        deepest = _deepest(node)
        tombstone: View = {"key": deepest.path}
        tombstone.update({"dir": True} if deepest.is_dir else {"value": ""})
        tombstone["modifiedIndex"] = nxt  # a deleted key has no create revision
        event = Event(DELETE, tombstone, deepest.view(now), etcd_index=nxt)
        # A directory's reply: prevNode only; a file's: the v2 shape.
        shown = {} if node.is_dir else _event_node(node.path, nxt, node.created_index)
        reply = Event(DELETE, shown, node.view(now), etcd_index=nxt)
        # Watches see the event's own key (and its parents, if recursive): no v2
        # "every removed key hears of it".
        self._remove(node, event, dir=dir, recursive=recursive, notify_removed=False)
        self._index = nxt
        self.hub.notify(event)
        return reply

    def compare_and_delete(self, key: str, prev_value: str, prev_index: int) -> Event:
        with self._lock:
            now = self._expire_due()
            path = clean_path(key)
            node = self._internal_get(path)
            if node.is_dir:
                # etcd's root is "/1", which its replies trim to nothing: no cause.
                raise EtcdError(errors.NOT_FILE, "" if path == "/" else path, self._index)
            self._compare(node, prev_value, prev_index)
            self._index += 1
            event = Event(
                COMPARE_AND_DELETE,
                _event_node(path, self._index, node.created_index),
                node.view(now),
                etcd_index=self._index,
            )
            self._remove(node, event, dir=False, recursive=False)
            self.hub.notify(event)
            return event

    # -- expiry ------------------------------------------------------------------------

    def expire_due(self) -> None:
        """Expire every key whose instant has come (the store also does this by itself)."""
        with self._lock:
            self._expire_due()

    def _expire_due(self) -> int:
        now = self._now()
        while True:
            node = self._ttl.top()
            if node is None or node.expire_ns is None:
                return now
            removal = node.removal_ns
            if removal is None or removal > now:
                return now
            self._ttl.pop()
            self._index += 1
            # prevNode as at the expiry instant: a clock that jumped past it shows no ttl,
            # as etcd's (which expires within half a second) never does.
            event = Event(
                EXPIRE,
                _event_node(node.path, self._index, node.created_index, is_dir=node.is_dir),
                node.view(node.expire_ns),
                etcd_index=self._index,
            )
            self._remove(node, event, dir=True, recursive=True)
            self.hub.notify(event)

    def _next_sweep(self, now: int) -> int:
        """The first expiry sweep strictly after ``now``."""
        return now + SWEEP_INTERVAL_NS - (now - self._sweep_anchor) % SWEEP_INTERVAL_NS

    def _set_expiry(self, node: Node, expire_ns: int | None, now: int) -> None:
        node.expire_ns = expire_ns
        # Already past at the write: only the next sweep removes it.
        passed = expire_ns is not None and expire_ns <= now
        node.reap_ns = self._next_sweep(now) if passed else None

    def _update_ttl(self, node: Node, expire_ns: int | None, now: int) -> None:
        self._set_expiry(node, expire_ns, now)
        if expire_ns is None:
            self._ttl.remove(node)
        else:
            self._ttl.push(node)
            self._ensure_reaper()

    def _clock_moved(self) -> None:
        with self._wakeup:
            self._expire_due()
            self._wakeup.notify_all()

    def _ensure_reaper(self) -> None:
        # The reaper wakes at the next expiry so watchers hear about it without any request.
        if self._reaper is None and not self._closed:
            self._reaper = threading.Thread(
                target=self._reap, name="etcd-discovery-expiry", daemon=True
            )
            self._reaper.start()
        else:
            self._wakeup.notify_all()

    def _reap(self) -> None:
        with self._wakeup:
            while not self._closed:
                now = self._expire_due()
                nxt = self._ttl.next_expiry()
                frozen = isinstance(self.clock, ControllableClock) and self.clock.frozen
                if nxt is None or frozen:
                    self._wakeup.wait()
                else:
                    self._wakeup.wait(reaper_wait(nxt, now))

    def close(self) -> None:
        """Stop the expiry thread and release every blocked watch (idempotent).

        The data stays; :meth:`open` resumes expiring keys by itself.
        """
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
            reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=5)
        if isinstance(self.clock, ControllableClock):
            self.clock.unsubscribe(self._clock_moved)
        self.hub.close_all()

    def open(self) -> None:
        """Resume after :meth:`close`: follow the clock and expire keys again."""
        with self._wakeup:
            if not self._closed:
                return
            self._closed = False
            self.hub.open()
            if isinstance(self.clock, ControllableClock):
                self.clock.subscribe(self._clock_moved)
            if len(self._ttl):
                self._ensure_reaper()

    # -- internals ---------------------------------------------------------------------

    def _publish(self, event: Event, refresh: bool) -> None:
        if refresh:
            self.hub.add(Event(event.action, event.node, event.prev_node, event.etcd_index, True))
        else:
            self.hub.notify(event)

    def _writable(self, key: str) -> str:
        path = clean_path(key)
        if path == "/":
            raise EtcdError(errors.ROOT_READ_ONLY, "/", self._index)
        return path

    def _compare(self, node: Node, prev_value: str, prev_index: int) -> None:
        index_ok = prev_index == 0 or node.modified_index == prev_index
        value_ok = prev_value == "" or node.value == prev_value
        if index_ok and value_ok:
            return
        if index_ok:
            cause = f"[{prev_value} != {node.value}]"
        elif value_ok:
            cause = f"[{prev_index} != {node.modified_index}]"
        else:
            cause = f"[{prev_value} != {node.value}] [{prev_index} != {node.modified_index}]"
        raise EtcdError(errors.TEST_FAILED, cause, self._index)

    def _internal_get(self, path: str) -> Node:
        node = self.root
        for name in path.split("/"):
            if not name:
                continue
            if node.children is None:
                raise EtcdError(errors.NOT_DIR, node.path, self._index)
            child = node.children.get(name)
            if child is None:
                joined = f"{node.path.rstrip('/')}/{name}"
                raise EtcdError(errors.KEY_NOT_FOUND, joined, self._index)
            node = child
        return node

    def _internal_create(
        self,
        key: str,
        value: str,
        is_dir: bool,
        unique: bool,
        replace: bool,
        expire_ns: int | None,
        action: str,
        now: int,
    ) -> Event:
        cur, nxt = self._index, self._index + 1
        if unique:  # POST: an in-order key named after the new index
            key = f"{key}/{nxt:020d}"
        path = clean_path(key)
        if path == "/":
            raise EtcdError(errors.ROOT_READ_ONLY, "/", cur)
        dir_path, name = _split(path)
        parent = self._make_dirs(dir_path, nxt, cur)
        assert parent.children is not None
        prev: View | None = None
        existing = parent.children.get(name)
        if existing is not None:
            if not replace:
                raise EtcdError(errors.NODE_EXIST, path, cur)
            if existing.is_dir:
                raise EtcdError(errors.NOT_FILE, path, cur)
            prev = existing.view(now)
            self._detach(existing)
        node = Node(path, nxt, parent, value=value, is_dir=is_dir)
        self._set_expiry(node, expire_ns, now)
        if existing is not None and self.rules.keeps_created_index:
            node.created_index = existing.created_index
        parent.children[name] = node
        if expire_ns is not None:
            self._ttl.push(node)
            self._ensure_reaper()
        self._index = nxt
        return Event(action, node.view(now), prev, etcd_index=nxt)

    def _make_dirs(self, dir_path: str, created: int, cur: int) -> Node:
        """Walk to ``dir_path``, creating missing directories (etcd's checkDir)."""
        node = self.root
        for name in dir_path.split("/"):
            if not name:
                continue
            assert node.children is not None
            child = node.children.get(name)
            if child is None:
                child = Node(f"{node.path.rstrip('/')}/{name}", created, node, is_dir=True)
                node.children[name] = child
            elif not child.is_dir:
                raise EtcdError(errors.NOT_DIR, child.path, cur)
            node = child
        return node

    def _detach(self, node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.children and parent.children.get(node.name) is node:
            del parent.children[node.name]
        for n in node.walk():
            self._ttl.remove(n)

    def _remove(
        self, node: Node, event: Event, *, dir: bool, recursive: bool, notify_removed: bool = True
    ) -> None:
        if node.is_dir:
            if not dir:
                raise EtcdError(errors.NOT_FILE, node.path, self._index)
            if node.children and not recursive:
                raise EtcdError(errors.DIR_NOT_EMPTY, node.path, self._index)
        removed = node.walk() if notify_removed else []
        self._detach(node)
        # Watchers of every removed key hear of it, whatever their recursive flag.
        for n in reversed(removed):
            self.hub.notify_watchers(event, n.path, deleted=True)

    # -- snapshot ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state (tree, index, history) as JSON-able data."""
        with self._lock:
            self._expire_due()
            return {
                "index": self._index,
                "root": _dump(self.root),
                "history": [
                    {**e.to_json(), "etcdIndex": e.etcd_index} for e in self.hub.history.events()
                ],
            }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot`; blocked watches are released.

        Everything is read before anything is replaced: a snapshot that fails to load
        (a ``KeyError``, ``TypeError`` or ``ValueError``) leaves the store as it was.
        """
        with self._lock:
            index = int(data["index"])
            ttl = TTLKeyHeap()
            root = _load(data["root"], None, ttl)
            events = [
                Event(
                    raw["action"],
                    raw["node"],
                    raw.get("prevNode"),
                    int(raw.get("etcdIndex", 0)),
                    bool(raw.get("refresh", False)),
                )
                for raw in data.get("history", [])
            ]
            self.hub.close_all()
            self.hub = WatcherHub(self.hub.history.capacity)
            if self._closed:
                self.hub.close_all()  # a stopped server's store takes no watches either
            self._ttl, self._index, self.root = ttl, index, root
            self.generation = next(_GENERATIONS)
            for event in events:
                self.hub.add(event)
            if len(ttl):
                self._ensure_reaper()
            self._expire_due()
            self._wakeup.notify_all()


def _load(raw: dict[str, Any], parent: Node | None, ttl: TTLKeyHeap) -> Node:
    """A snapshot's node and its subtree; keys with a TTL go into ``ttl``."""
    expire_ns = raw.get("expireNs")
    if expire_ns is not None and not (
        isinstance(expire_ns, int) and 0 <= expire_ns <= MAX_EXPIRE_NS
    ):
        raise ValueError(f"{raw['path']}: expireNs {expire_ns!r} is not int64 nanoseconds")
    node = Node(
        raw["path"],
        int(raw["createdIndex"]),
        parent,
        value=raw.get("value", ""),
        is_dir="children" in raw,
        expire_ns=expire_ns,
    )
    node.modified_index = int(raw["modifiedIndex"])
    if node.children is not None:
        for child in raw["children"]:
            loaded = _load(child, node, ttl)
            node.children[loaded.name] = loaded
    if node.expire_ns is not None:
        ttl.push(node)
    return node


def _deepest(node: Node) -> Node:
    """The key v2v3 names a recursive delete's event after: the longest v3 key of the
    transaction (a directory's v3 key ends in "/"), the first of equal ones in the
    transaction's order: the directory itself, then each depth in key order."""
    order = [node]
    level = [node]
    while level:
        level = sorted(
            (c for n in level if n.children for c in n.children.values()),
            key=lambda c: c.path.encode("utf-8", "surrogateescape"),
        )
        order.extend(level)

    def v3_length(n: Node) -> int:
        return len(n.path.encode("utf-8", "surrogateescape")) + (1 if n.is_dir else 0)

    longest = max(v3_length(n) for n in order)
    return next(n for n in order if v3_length(n) == longest)


def _ttl_fields(node: Node, now: int) -> View:
    expiration, ttl = node.expiration_and_ttl(now)
    out: View = {}
    if expiration is not None:
        out["expiration"] = expiration
    if ttl:
        out["ttl"] = ttl
    return out


def _dump(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": node.path,
        "createdIndex": node.created_index,
        "modifiedIndex": node.modified_index,
    }
    if node.children is None:
        out["value"] = node.value
    else:
        out["children"] = [_dump(c) for c in node.children.values()]
    if node.expire_ns is not None:
        out["expireNs"] = node.expire_ns
    return out
