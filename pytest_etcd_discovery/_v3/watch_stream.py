"""One Watch stream: creates and cancels from the client, events to it, in order.

A reader thread takes the client's requests (etcd's ``recvLoop``); everything the client
is sent goes through one queue, so a watcher's "created" answer always comes before its
events, and the stream ends when the client goes away or a fault drops it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from .errors import V3Error
from .hooks import V3Call
from .kv import Event, kv_to_pb
from .messages import MESSAGES as M
from .watch import WatchBatch, Watcher

if TYPE_CHECKING:
    from .server import V3Server

__all__ = ["WatchStream"]

_END = object()
#: etcd's messages for a watch it cannot create (``mvcc/watcher.go``).
EMPTY_RANGE = "mvcc: watcher range is empty"
DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


class WatchStream:
    def __init__(self, server: V3Server, call: V3Call, context: grpc.ServicerContext) -> None:
        self.server = server
        self.store = server.store
        self.call = call
        self.context = context
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.watchers: dict[int, Watcher | None] = {}  # None: compacted, already gone
        self.next_id = 0
        self.lock = threading.Lock()
        self.failure: V3Error | None = None

    def serve(self, requests: Iterator[Any]) -> Iterator[Any]:
        self.context.add_callback(lambda: self.out.put(_END))
        reader = threading.Thread(
            target=self._read, args=(requests,), name="etcd-v3-watch-recv", daemon=True
        )
        reader.start()
        try:
            while True:
                item = self.out.get()
                if item is _END:
                    break
                yield item
        finally:
            with self.lock:
                watchers, self.watchers = list(self.watchers.values()), {}
            for watcher in watchers:
                if watcher is not None:
                    self.store.cancel(watcher)
        if self.failure is not None:
            raise self.failure

    def _read(self, requests: Iterator[Any]) -> None:
        try:
            for request in requests:
                self.server.message_decision(self.call, request, self.context)
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    self._create(request.create_request)
                elif kind == "cancel_request":
                    self._cancel(request.cancel_request.watch_id)
                elif kind == "progress_request":
                    self.out.put(M["WatchResponse"](header=self.server.header(), watch_id=-1))
            # The client closed its side: etcd keeps the stream open for its events.
        except V3Error as err:  # a fault dropped the stream
            self.failure = err
            self.out.put(_END)
        except grpc.RpcError:  # the client went away: the context's callback ends it
            pass

    def _create(self, req: Any) -> None:
        key = req.key or b"\x00"
        end = req.range_end
        if end and end != b"\x00" and key >= end:
            self._refuse(EMPTY_RANGE)
            return
        with self.lock:
            watch_id = req.watch_id
            if watch_id == 0:
                while self.next_id in self.watchers:
                    self.next_id += 1
                watch_id = self.next_id
                self.next_id += 1
            elif watch_id in self.watchers:
                watch_id = -1
            if watch_id != -1:
                self.watchers[watch_id] = None
        if watch_id == -1:
            self._refuse(DUPLICATE_ID)
            return
        filters = set(req.filters)
        prev_kv = req.prev_kv

        def created(revision: int) -> None:
            header = self.server.header(revision)
            self.out.put(M["WatchResponse"](header=header, watch_id=watch_id, created=True))

        def sink(batch: WatchBatch) -> None:
            self.out.put(self._response(watch_id, batch, prev_kv))

        watcher = self.store.watch(
            key,
            end,
            req.start_revision,
            sink,
            no_put=0 in filters,
            no_delete=1 in filters,
            created=created,
        )
        with self.lock:
            if watch_id in self.watchers:
                self.watchers[watch_id] = watcher

    def _refuse(self, reason: str) -> None:
        self.out.put(
            M["WatchResponse"](
                header=self.server.header(),
                watch_id=-1,
                created=True,
                canceled=True,
                cancel_reason=reason,
            )
        )

    def _cancel(self, watch_id: int) -> None:
        with self.lock:
            if watch_id not in self.watchers:
                return  # etcd answers nothing for an unknown id
            watcher = self.watchers.pop(watch_id)
        if watcher is not None:
            self.store.cancel(watcher)
        self.out.put(
            M["WatchResponse"](header=self.server.header(), watch_id=watch_id, canceled=True)
        )

    def _response(self, watch_id: int, batch: WatchBatch, prev_kv: bool) -> Any:
        resp = M["WatchResponse"](header=self.server.header(batch.revision), watch_id=watch_id)
        if batch.compact_revision:
            resp.compact_revision = batch.compact_revision
            resp.canceled = True
            return resp
        resp.events.extend(_event(event, prev_kv) for event in batch.events)
        return resp


def _event(event: Event, prev_kv: bool) -> Any:
    out = M["Event"](type=event.type, kv=kv_to_pb(event.kv, M["KeyValue"]))
    if prev_kv and event.prev is not None:
        out.prev_kv.CopyFrom(kv_to_pb(event.prev, M["KeyValue"]))
    return out
