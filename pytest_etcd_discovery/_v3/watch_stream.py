"""One Watch stream: creates and cancels from the client, events to it, in order.

A reader task takes the client's requests (etcd's ``recvLoop``); everything the client is
sent goes through one queue on the server's event loop, so a watcher's "created" answer
always comes before its events, and the stream ends when the client goes away or a fault
drops it.  The store calls a watcher's sink from whichever thread writes (a gRPC call on
the loop, a test's ``clock.advance``): every answer is handed to the loop with
``call_soon_threadsafe``, one FIFO for them all, so they keep the order they were made in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
    """Runs on the server's event loop (its watcher table is touched there alone)."""

    def __init__(self, server: V3Server, call: V3Call, context: grpc.aio.ServicerContext) -> None:
        self.server = server
        self.store = server.store
        self.call = call
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.watchers: dict[int, Watcher | None] = {}  # None: compacted, already gone
        self.next_id = 0
        self.failure: V3Error | None = None

    def _send(self, item: Any) -> None:
        """Queue ``item`` for the client, from any thread."""
        # RuntimeError: the server stopped and closed its loop; nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)

    async def serve(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        reader = asyncio.ensure_future(self._read(requests))
        try:
            while True:
                item = await self.out.get()
                if item is _END:
                    break
                yield item
        finally:
            reader.cancel()
            watchers, self.watchers = list(self.watchers.values()), {}
            for watcher in watchers:
                if watcher is not None:
                    self.store.cancel(watcher)
        if self.failure is not None:
            raise self.failure

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                await self.server.message_decision(self.call, request, self.context)
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    self._create(request.create_request)
                elif kind == "cancel_request":
                    self._cancel(request.cancel_request.watch_id)
                elif kind == "progress_request":
                    self._send(M["WatchResponse"](header=self.server.header(), watch_id=-1))
            # The client closed its side: etcd keeps the stream open for its events.
        except V3Error as err:  # a fault dropped the stream
            self.failure = err
            self._send(_END)
        except grpc.RpcError:  # the client went away: the stream's task is cancelled
            pass

    def _create(self, req: Any) -> None:
        key = req.key or b"\x00"
        end = req.range_end
        if end and end != b"\x00" and key >= end:
            self._refuse(EMPTY_RANGE)
            return
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
            self._send(M["WatchResponse"](header=header, watch_id=watch_id, created=True))

        def sink(batch: WatchBatch) -> None:
            self._send(self._response(watch_id, batch, prev_kv))

        watcher = self.store.watch(
            key,
            end,
            req.start_revision,
            sink,
            no_put=0 in filters,
            no_delete=1 in filters,
            created=created,
        )
        if watch_id in self.watchers:
            self.watchers[watch_id] = watcher

    def _refuse(self, reason: str) -> None:
        self._send(
            M["WatchResponse"](
                header=self.server.header(),
                watch_id=-1,
                created=True,
                canceled=True,
                cancel_reason=reason,
            )
        )

    def _cancel(self, watch_id: int) -> None:
        if watch_id not in self.watchers:
            return  # etcd answers nothing for an unknown id
        watcher = self.watchers.pop(watch_id)
        if watcher is not None:
            self.store.cancel(watcher)
        self._send(
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
