"""An MVCC key-value store answering the etcd v3 KV and Lease requests as etcd 3.4 does.

Every change gets the next main revision (a Txn's changes share one); each key keeps its
history (``create_revision``, ``mod_revision``, ``version``, tombstones) so a Range at an
old revision and a Watch from one see what etcd shows, until :meth:`MVCCStore.compact`.
Requests and responses are the v3 API's messages (:mod:`.messages`); the answers fill
only ``header.revision`` (the server adds cluster and member ids).  Time is read from a
:class:`~pytest_etcd_discovery._v2store.clock.Clock`: with a ``ControllableClock`` a
leased key expires on ``clock.advance``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from typing import Any

from .._v2store.clock import NS_PER_S, Clock, SystemClock
from . import checks, errors
from .kv import DELETE, KV, PUT, Event, kv_to_pb
from .leases import MAX_LEASE_TTL, MIN_LEASE_TTL, Lease, LeaseTable
from .messages import MESSAGES as M
from .watch import WatchBatch, Watcher, WatchHub

__all__ = ["MVCCStore"]

_SORT_KEYS: dict[int, Callable[[KV], Any]] = {
    0: lambda kv: kv.key,
    1: lambda kv: kv.version,
    2: lambda kv: kv.create_revision,
    3: lambda kv: kv.mod_revision,
    4: lambda kv: kv.value,
}


def _end(range_end: bytes) -> bytes | None:
    """A request's ``range_end`` as :func:`~.kv.in_range` takes it."""
    if not range_end:
        return None
    return b"" if range_end == b"\x00" else range_end


class MVCCStore:
    """The keyspace, its history, the leases and the watchers; thread-safe."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        lease_seed: int | None = None,
        min_lease_ttl: int = MIN_LEASE_TTL,
    ) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.RLock()
        self._rev = 1  # a new etcd answers revision 1
        self._compact = -1  # etcd's compactMainRev before any compaction
        self._history: dict[bytes, list[KV]] = {}
        self._live: dict[bytes, KV] = {}
        self._keys: list[bytes] = []  # sorted, every key with history
        self._events: list[Event] = []  # since the compacted revision
        self._pending: list[Event] = []  # the open write's events
        self.leases = LeaseTable(lease_seed, min_lease_ttl)
        self.hub = WatchHub()
        self._expiry = threading.Condition(self._lock)
        self._expiry_thread: threading.Thread | None = None
        self._closed = False
        subscribe = getattr(self.clock, "subscribe", None)
        if subscribe is not None:
            subscribe(self._on_clock)

    # -- state ---------------------------------------------------------------------

    @property
    def revision(self) -> int:
        with self._lock:
            self._expire_due()
            return self._rev

    @property
    def compact_revision(self) -> int:
        """The last compaction's revision (0 before any)."""
        return max(self._compact, 0)

    def close(self) -> None:
        """Stop the expiry thread and let go of the clock."""
        with self._lock:
            self._closed = True
            self._expiry.notify_all()
        unsubscribe = getattr(self.clock, "unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe(self._on_clock)
        thread = self._expiry_thread
        if thread is not None:
            thread.join(5)

    # -- reading -------------------------------------------------------------------

    def _at(self, key: bytes, rev: int) -> KV | None:
        if rev >= self._rev + (1 if self._pending else 0):
            return self._live.get(key)
        entries = self._history.get(key, ())
        i = bisect_right(entries, rev, key=lambda kv: kv.mod_revision)
        if i == 0:
            return None
        kv: KV = entries[i - 1]
        return None if kv.tombstone else kv

    def _keys_in(self, key: bytes, range_end: bytes) -> list[bytes]:
        end = _end(range_end)
        if end is None:
            return [key] if key in self._history else []
        lo = bisect_left(self._keys, key)
        hi = len(self._keys) if end == b"" else bisect_left(self._keys, end)
        return self._keys[lo:hi] if hi > lo else []

    def _read(self, key: bytes, range_end: bytes, rev: int) -> list[KV]:
        found = (self._at(k, rev) for k in self._keys_in(key, range_end))
        return [kv for kv in found if kv is not None]

    def _read_rev(self) -> int:
        """The revision a read inside the open write sees (its own changes included)."""
        return self._rev + (1 if self._pending else 0)

    def range(self, req: Any) -> Any:
        """A ``RangeRequest`` answered (``RangeResponse``)."""
        checks.check_range(req)
        with self._lock:
            self._expire_due()
            return self._range(req)

    def _range(self, req: Any) -> Any:
        current = self._read_rev()
        rev = req.revision
        if rev > current:
            raise errors.future_rev()
        if rev <= 0:
            rev = current
        if rev < self._compact:
            raise errors.compacted()
        kvs = self._read(req.key, req.range_end, rev)
        count = len(kvs)
        resp = M["RangeResponse"](header=M["ResponseHeader"](revision=current), count=count)
        if req.count_only:
            return resp
        # etcd prunes by these after counting (count stays the whole range's).
        if req.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= req.max_mod_revision]
        if req.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= req.min_mod_revision]
        if req.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= req.max_create_revision]
        if req.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= req.min_create_revision]
        order = req.sort_order
        if req.sort_target != 0 and order == 0:
            order = 1  # etcd sorts ascending when only a target is given
        if order:
            kvs.sort(key=_SORT_KEYS[req.sort_target], reverse=order == 2)
        if req.limit > 0 and len(kvs) > req.limit:
            kvs = kvs[: req.limit]
            resp.more = True
        resp.kvs.extend(kv_to_pb(kv, M["KeyValue"], keys_only=req.keys_only) for kv in kvs)
        return resp

    # -- writing -------------------------------------------------------------------

    def _write(self, kv: KV, event_type: int) -> None:
        prev = self._live.get(kv.key)
        if kv.key not in self._history:
            self._history[kv.key] = []
            insort(self._keys, kv.key)
        self._history[kv.key].append(kv)
        if prev is not None and prev.lease and prev.lease != kv.lease:
            lease = self.leases.leases.get(prev.lease)
            if lease is not None:
                lease.keys.discard(kv.key)
        if kv.tombstone:
            self._live.pop(kv.key, None)
        else:
            self._live[kv.key] = kv
            if kv.lease:
                self.leases.leases[kv.lease].keys.add(kv.key)
        self._pending.append(Event(event_type, kv, prev))

    def _put_kv(self, key: bytes, value: bytes, lease: int) -> None:
        rev = self._rev + 1
        prev = self._live.get(key)
        if prev is None:
            kv = KV(key, rev, rev, 1, value, lease)
        else:
            kv = KV(key, prev.create_revision, rev, prev.version + 1, value, lease)
        self._write(kv, PUT)

    def _delete_keys(self, keys: list[bytes]) -> None:
        rev = self._rev + 1
        for key in keys:
            self._write(KV(key, 0, rev, 0, b"", 0), DELETE)

    def _commit(self) -> int:
        """Close the open write: the revision moves on if anything changed."""
        if not self._pending:
            return self._rev
        self._rev += 1
        events = tuple(self._pending)
        self._pending = []
        self._events.extend(events)
        self.hub.notify(events, self._rev)
        return self._rev

    def _check_put(self, req: Any) -> None:
        if (req.ignore_value or req.ignore_lease) and self._at(req.key, self._rev) is None:
            raise errors.key_not_found()
        if req.lease and req.lease not in self.leases.leases:
            raise errors.lease_not_found()

    def _put(self, req: Any) -> Any:
        prev = self._at(req.key, self._read_rev())
        value = prev.value if req.ignore_value and prev is not None else req.value
        lease = prev.lease if req.ignore_lease and prev is not None else req.lease
        resp = M["PutResponse"](header=M["ResponseHeader"](revision=self._rev + 1))
        if req.prev_kv and prev is not None:
            resp.prev_kv.CopyFrom(kv_to_pb(prev, M["KeyValue"]))
        self._put_kv(req.key, value, lease)
        return resp

    def put(self, req: Any) -> Any:
        """A ``PutRequest`` answered (``PutResponse``)."""
        checks.check_put(req)
        with self._lock:
            self._expire_due()
            # etcd checks the lease before the key (applier Put, then its ignore_* check).
            if req.lease and req.lease not in self.leases.leases:
                raise errors.lease_not_found()
            if (req.ignore_value or req.ignore_lease) and req.key not in self._live:
                raise errors.key_not_found()
            resp = self._put(req)
            self._commit()
            return resp

    def _delete(self, req: Any) -> Any:
        kvs = self._read(req.key, req.range_end, self._read_rev())
        resp = M["DeleteRangeResponse"](deleted=len(kvs))
        if req.prev_kv:
            resp.prev_kvs.extend(kv_to_pb(kv, M["KeyValue"]) for kv in kvs)
        self._delete_keys([kv.key for kv in kvs])
        changed = bool(kvs) or bool(self._pending)
        resp.header.revision = self._rev + 1 if changed else self._rev
        return resp

    def delete_range(self, req: Any) -> Any:
        """A ``DeleteRangeRequest`` answered (``DeleteRangeResponse``)."""
        checks.check_delete(req)
        with self._lock:
            self._expire_due()
            resp = self._delete(req)
            self._commit()
            return resp

    # -- transactions --------------------------------------------------------------

    def _compare(self, cmp: Any) -> bool:
        kvs = self._read(cmp.key, cmp.range_end, self._rev)
        target = cmp.target
        if not kvs:
            if target == 3:  # VALUE of a missing key: false whatever the operator
                return False
            kvs = [KV(cmp.key, 0, 0, 0, b"", 0)]
        field = ("version", "create_revision", "mod_revision", "value", "lease")[target]
        wanted = getattr(cmp, field) if cmp.WhichOneof("target_union") == field else None
        if wanted is None:
            wanted = b"" if target == 3 else 0
        for kv in kvs:
            have = getattr(kv, field)
            result = (have > wanted) - (have < wanted)
            ok = (result == 0, result > 0, result < 0, result != 0)[cmp.result]
            if not ok:
                return False
        return True

    def _compare_path(self, req: Any) -> list[bool]:
        """Every Txn's choice, nested ones included, depth first, all read before any
        change (etcd's ``compareToPath``)."""
        ok = all(self._compare(cmp) for cmp in req.compare)
        path = [ok]
        for op in req.success if ok else req.failure:
            if op.WhichOneof("request") == "request_txn":
                path.extend(self._compare_path(op.request_txn))
        return path

    def _walk(self, req: Any, path: Iterator[bool], visit: Callable[[Any], None]) -> None:
        """Call ``visit`` on every op the path chooses, in etcd's order."""
        for op in req.success if next(path) else req.failure:
            if op.WhichOneof("request") == "request_txn":
                self._walk(op.request_txn, path, visit)
            else:
                visit(op)

    def _check_op_put(self, op: Any) -> None:
        if op.WhichOneof("request") == "request_put":
            self._check_put(op.request_put)

    def _check_op_range(self, op: Any) -> None:
        if op.WhichOneof("request") == "request_range":
            rev = op.request_range.revision
            if rev > self._rev:
                raise errors.future_rev()
            if rev != 0 and rev < self._compact:
                raise errors.compacted()

    def txn(self, req: Any) -> Any:
        """A ``TxnRequest`` answered (``TxnResponse``): all compares read the revision
        before it, all its changes get one revision."""
        checks.check_txn(req)
        with self._lock:
            self._expire_due()
            path = self._compare_path(req)
            self._walk(req, iter(path), self._check_op_put)
            self._walk(req, iter(path), self._check_op_range)
            resp = self._txn(req, iter(path))
            resp.header.revision = self._commit()
            return resp

    def _txn(self, req: Any, path: Iterator[bool]) -> Any:
        ok = next(path)
        resp = M["TxnResponse"](succeeded=ok)
        for op in req.success if ok else req.failure:
            kind = op.WhichOneof("request")
            out = resp.responses.add()
            if kind == "request_range":
                out.response_range.CopyFrom(self._range(op.request_range))
            elif kind == "request_put":
                out.response_put.CopyFrom(self._put(op.request_put))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(self._delete(op.request_delete_range))
            elif kind == "request_txn":
                # etcd leaves a nested Txn's header empty (revision 0)
                inner = self._txn(op.request_txn, path)
                inner.header.SetInParent()
                out.response_txn.CopyFrom(inner)
        return resp

    # -- compaction ----------------------------------------------------------------

    def compact(self, req: Any) -> Any:
        """A ``CompactionRequest``: history before ``revision`` is gone."""
        with self._lock:
            self._expire_due()
            rev = req.revision
            if rev <= self._compact:
                raise errors.compacted()
            if rev > self._rev:
                raise errors.future_rev()
            for key in list(self._keys):
                entries = self._history[key]
                i = bisect_right(entries, rev, key=lambda kv: kv.mod_revision)
                keep = entries[i - 1 :] if i else entries
                if keep and keep[0].tombstone and keep[0].mod_revision <= rev:
                    keep = keep[1:]
                if keep:
                    self._history[key] = keep
                else:
                    del self._history[key]
            self._keys = sorted(self._history)
            # Events at the compacted revision itself stay: a watch may start there.
            self._events = [e for e in self._events if e.kv.mod_revision >= rev]
            self._compact = rev
            return M["CompactionResponse"](header=M["ResponseHeader"](revision=self._rev))

    # -- watching ------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        sink: Callable[[WatchBatch], None],
        *,
        no_put: bool = False,
        no_delete: bool = False,
        created: Callable[[int], None] | None = None,
    ) -> Watcher | None:
        """Watch ``key``/``range_end`` from ``start_revision`` (0: the next one).

        ``created(revision)`` is called first (the current revision, for the "created"
        answer), then ``sink`` gets the history since ``start_revision`` and every later
        batch; both run under the store's lock and must not block.  A start below the
        compacted revision gets one compacted batch and no watcher (``None``)."""
        with self._lock:
            self._expire_due()
            if created is not None:
                created(self._rev)
            start = start_revision if start_revision > 0 else self._rev + 1
            if start < self._compact:
                sink(WatchBatch(0, compact_revision=self._compact))
                return None
            watcher = Watcher(key, _end(range_end), start, sink, no_put, no_delete)
            self.hub.add(watcher, self._events if start <= self._rev else (), self._rev)
            return watcher

    def cancel(self, watcher: Watcher) -> bool:
        return self.hub.remove(watcher)

    # -- leases --------------------------------------------------------------------

    def lease_grant(self, req: Any) -> Any:
        with self._lock:
            self._expire_due()
            if req.TTL > MAX_LEASE_TTL:
                raise errors.lease_ttl_too_large()
            lease_id = req.ID or self.leases.new_id()
            if lease_id in self.leases.leases:
                raise errors.lease_exists()
            lease = self.leases.grant(lease_id, req.TTL, self.clock.now_ns())
            self._wake_expiry()
            return M["LeaseGrantResponse"](
                header=M["ResponseHeader"](revision=self._rev), ID=lease.id, TTL=lease.ttl
            )

    def _revoke(self, lease: Lease) -> None:
        del self.leases.leases[lease.id]
        self._delete_keys(sorted(key for key in lease.keys if key in self._live))
        self._commit()

    def lease_revoke(self, req: Any) -> Any:
        with self._lock:
            self._expire_due()
            lease = self.leases.leases.get(req.ID)
            if lease is None:
                raise errors.lease_not_found()
            self._revoke(lease)
            return M["LeaseRevokeResponse"](header=M["ResponseHeader"](revision=self._rev))

    def lease_keep_alive(self, lease_id: int) -> int:
        """Renew ``lease_id``; its TTL, or 0 when there is no such lease (etcd's answer)."""
        with self._lock:
            self._expire_due()
            lease = self.leases.leases.get(lease_id)
            if lease is None:
                return 0
            self.leases.refresh(lease, self.clock.now_ns())
            self._wake_expiry()
            return lease.ttl

    def lease_time_to_live(self, req: Any) -> Any:
        with self._lock:
            self._expire_due()
            resp = M["LeaseTimeToLiveResponse"](
                header=M["ResponseHeader"](revision=self._rev), ID=req.ID, TTL=-1
            )
            lease = self.leases.leases.get(req.ID)
            if lease is None:
                return resp
            # etcd truncates the remaining time to whole seconds.
            resp.TTL = lease.remaining_ns(self.clock.now_ns()) // NS_PER_S
            resp.grantedTTL = lease.ttl
            if req.keys:
                resp.keys.extend(sorted(lease.keys))
            return resp

    def lease_leases(self) -> Any:
        with self._lock:
            self._expire_due()
            resp = M["LeaseLeasesResponse"](header=M["ResponseHeader"](revision=self._rev))
            for lease_id in self.leases.leases:
                resp.leases.add(ID=lease_id)
            return resp

    # -- expiry --------------------------------------------------------------------

    def _expire_due(self) -> None:
        for lease in self.leases.due(self.clock.now_ns()):
            self._revoke(lease)

    def _on_clock(self) -> None:
        with self._lock:
            self._expire_due()
            self._expiry.notify_all()

    def _wake_expiry(self) -> None:
        """Make sure a thread revokes leases that expire while nobody asks."""
        if self._expiry_thread is None:
            self._expiry_thread = threading.Thread(
                target=self._expire_loop, name="etcd-v3-lease-expiry", daemon=True
            )
            self._expiry_thread.start()
        self._expiry.notify_all()

    def _expire_loop(self) -> None:
        with self._lock:
            while not self._closed:
                self._expire_due()
                due = self.leases.next_expiry_ns()
                if getattr(self.clock, "frozen", False):
                    due = None  # only the clock's own moves (which notify) bring it closer
                wait = None if due is None else max(due - self.clock.now_ns(), 0) / NS_PER_S
                # Woken early by a grant, a renewal, a clock move or close().
                self._expiry.wait(None if wait is None else min(wait + 0.001, 3600.0))
