"""The etcd v3 API over gRPC on loopback, serving an :class:`~.mvcc.MVCCStore`.

``V3Server(store=None, clock=None, host="127.0.0.1", port=0)`` then :meth:`start` (or
``with``): :attr:`endpoint` is ``"127.0.0.1:PORT"`` for ``--endpoints`` /
``--discovery-endpoints``.  Services: KV (Range, Put, DeleteRange, Txn, Compact), Watch,
Lease (Grant, Revoke, KeepAlive, TimeToLive, Leases), Maintenance (Status, Alarm) and Cluster
(MemberList).  Requests go through :class:`~.hooks.V3Hooks` (journal and faults).

It serves with ``grpc.aio`` on an event loop of its own in one daemon thread: an open
Watch or LeaseKeepAlive stream is a task on that loop, not a thread, so a hundred members
each watching (v3 discovery's wait) hold no worker and a unary call still answers; etcd
serves them all the same way (a goroutine each).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

import grpc

from .._v2store.clock import Clock, SystemClock
from . import errors
from .errors import V3Error
from .hooks import NoHooks, V3Call, V3Hooks
from .messages import MESSAGES as M
from .messages import PACKAGE, SERVICES
from .mvcc import MVCCStore
from .watch_stream import WatchStream

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ETCD_VERSION", "V3Server"]

#: etcd's ``--max-request-bytes`` default (1.5 MiB).
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
#: etcd lets gRPC take this much more than the limit, so its own check can answer.
GRPC_OVERHEAD_BYTES = 512 * 1024
#: What Maintenance.Status reports as the server's version.
ETCD_VERSION = "3.4.23"
#: What a new single-member etcd reports as its raft term.
RAFT_TERM = 2
#: The size of a fresh etcd's database file, reported by Status.
DB_SIZE = 20480
DB_SIZE_IN_USE = 16384
#: gRPC's own limit here; requests between etcd's and this get Go gRPC's refusal text.
_RECEIVE_CEILING = 64 * 1024 * 1024
#: Answers etcd sends without a header.
_NO_HEADER = frozenset({"Alarm"})
#: Bytes etcd's raft request adds around a request before its size check.
_RAFT_WRAPPING = 18  # measured: the request header and field tags

#: A stream method: (the requests, the context, the call) -> the answers.
_StreamServe = Callable[[AsyncIterator[Any], grpc.aio.ServicerContext, V3Call], AsyncIterator[Any]]


class V3Server:
    """A fake etcd member's client endpoint (gRPC, plaintext, loopback)."""

    def __init__(
        self,
        store: MVCCStore | None = None,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        hooks: V3Hooks | None = None,
        cluster_id: int | None = None,
        member_id: int | None = None,
        name: str = "default",
        version: str = ETCD_VERSION,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        if store is None:
            store = MVCCStore(clock if clock is not None else SystemClock())
        self.store = store
        self.clock: Clock = clock if clock is not None else store.clock
        self.host = host
        self.hooks: V3Hooks = hooks if hooks is not None else NoHooks()
        ids = random.Random()
        self.cluster_id = cluster_id if cluster_id is not None else ids.getrandbits(64)
        self.member_id = member_id if member_id is not None else ids.getrandbits(64)
        self.name = name
        self.version = version
        self.max_request_bytes = max_request_bytes
        self._requested_port = port
        self._server: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._applied = 0  # raft index stand-in for Status
        self._applied_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port`` once started."""
        if self._server is None:
            raise RuntimeError("the v3 server is not started")
        return f"{self.host}:{self.port}"

    def start(self) -> V3Server:
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="etcd-v3", daemon=True)
        thread.start()
        try:
            self._server, self.port = asyncio.run_coroutine_threadsafe(self._serve(), loop).result()
        except BaseException:
            _end_loop(loop, thread)
            raise
        self._loop, self._thread = loop, thread
        return self

    async def _serve(self) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(
            options=[
                # Larger than etcd's limit: _unary refuses in Go gRPC's words (below).
                ("grpc.max_receive_message_length", _RECEIVE_CEILING),
                ("grpc.so_reuseport", 0),
            ],
        )
        server.add_generic_rpc_handlers(tuple(self._handlers()))
        port = server.add_insecure_port(f"{self.host}:{self._requested_port}")
        if not port:
            raise OSError(f"cannot listen on {self.host}:{self._requested_port}")
        await server.start()
        return server, port

    def stop(self, grace: float | None = 0) -> None:
        """Stop serving (open streams end at once with ``grace=0``)."""
        server, self._server = self._server, None
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if server is None or loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_halt(server, grace), loop).result(30)
        finally:
            _end_loop(loop, thread)

    def __enter__(self) -> V3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- plumbing ------------------------------------------------------------------

    def _handlers(self) -> Iterator[grpc.GenericRpcHandler]:
        unary: dict[str, Callable[[Any], Any]] = {
            "Range": self.store.range,
            "Put": self._sized(self.store.put),
            "DeleteRange": self._sized(self.store.delete_range),
            "Txn": self._sized_txn,
            "Compact": self.store.compact,
            "LeaseGrant": self.store.lease_grant,
            "LeaseRevoke": self.store.lease_revoke,
            "LeaseTimeToLive": self.store.lease_time_to_live,
            "LeaseLeases": lambda req: self.store.lease_leases(),
            "Status": self._status,
            "Alarm": self._alarm,
            "MemberList": self._member_list,
        }
        streams: dict[str, _StreamServe] = {
            "Watch": self._watch,
            "LeaseKeepAlive": self._keep_alive,
        }
        for service, methods in SERVICES.items():
            table: dict[str, grpc.RpcMethodHandler] = {}
            for method, (req_name, resp_name, _, server_streams) in methods.items():
                des = M[req_name].FromString
                ser = M[resp_name].SerializeToString
                if server_streams:
                    table[method] = grpc.stream_stream_rpc_method_handler(
                        self._stream(service, method, streams[method]),
                        request_deserializer=des,
                        response_serializer=ser,
                    )
                else:
                    table[method] = grpc.unary_unary_rpc_method_handler(
                        self._unary(service, method, unary[method]),
                        request_deserializer=des,
                        response_serializer=ser,
                    )
            yield grpc.method_handlers_generic_handler(f"{PACKAGE}.{service}", table)

    def header(self, revision: int | None = None) -> Any:
        """A filled ``ResponseHeader`` (``revision`` None: the current one)."""
        return M["ResponseHeader"](
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=self.store.revision if revision is None else revision,
            raft_term=RAFT_TERM,
        )

    def _fill(self, header: Any) -> None:
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = RAFT_TERM
        if header.revision == -1:
            header.revision = 0
        elif not header.revision:
            header.revision = self.store.revision

    async def _decide(self, call: V3Call) -> bool:
        """Run the fault hook; raise :class:`V3Error` for a status, True for a drop."""
        decision = self.hooks.before(call)
        if decision is None:
            return False
        if decision.description:
            call.fault = decision.description
        if decision.delay > 0:
            try:
                await asyncio.sleep(decision.delay)
            except asyncio.CancelledError:
                # The client gave up (its deadline, a cancel): stop waiting, serve nothing.
                call.error = ("CANCELLED", "context canceled")
                raise
        if decision.code is not None:
            raise V3Error(decision.code, decision.message)
        return decision.drop

    def _unary(
        self, service: str, method: str, serve: Callable[[Any], Any]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = V3Call(service, method, request, context.peer(), self.clock.now())
            try:
                await self._decide(call)
                self._check_grpc_size(request)
                response = serve(request)
                if method not in _NO_HEADER:
                    self._fill(response.header)
                call.response = response
                self._count()
                return response
            except V3Error as err:
                call.error = (err.code, err.message)
            finally:
                call.finished = self.clock.now()
                self.hooks.after(call)
            code, message = call.error
            await context.abort(getattr(grpc.StatusCode, code), message)

        return handle

    def _stream(
        self,
        service: str,
        method: str,
        serve: _StreamServe,
    ) -> Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]:
        async def handle(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            call = V3Call(service, method, None, context.peer(), self.clock.now(), stream=True)
            sent = 0
            try:
                if await self._decide(call):
                    raise V3Error("UNAVAILABLE", "the fake dropped the stream")
                async for response in serve(requests, context, call):
                    sent += 1
                    yield response
            except V3Error as err:
                call.error = (err.code, err.message)
            finally:
                call.response = sent
                call.finished = self.clock.now()
                self.hooks.after(call)
            if call.error is not None:
                code, message = call.error
                await context.abort(getattr(grpc.StatusCode, code), message)

        return handle

    async def message_decision(
        self, call: V3Call, request: Any, context: grpc.aio.ServicerContext
    ) -> None:
        """The fault hook for one message on a stream; raises :class:`V3Error` to end it."""
        sub = V3Call(call.service, call.method, request, call.peer, self.clock.now(), True)
        dropped = await self._decide(sub)
        if sub.fault is not None:
            call.fault = sub.fault
        if dropped:
            raise V3Error("UNAVAILABLE", "the fake dropped the stream")

    def _count(self) -> None:
        with self._applied_lock:
            self._applied += 1

    # -- services ------------------------------------------------------------------

    def _check_grpc_size(self, request: Any) -> None:
        """What etcd's gRPC server says to a message over its receive limit."""
        size, limit = request.ByteSize(), self.max_request_bytes + GRPC_OVERHEAD_BYTES
        if size > limit:
            raise V3Error(
                "RESOURCE_EXHAUSTED", f"grpc: received message larger than max ({size} vs. {limit})"
            )

    def _check_size(self, request: Any) -> None:
        if request.ByteSize() + _RAFT_WRAPPING > self.max_request_bytes:
            raise errors.request_too_large()

    def _sized(self, serve: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def sized(request: Any) -> Any:
            self._check_size(request)
            return serve(request)

        return sized

    def _sized_txn(self, request: Any) -> Any:
        # A read-only Txn is served without raft, so without its size check.
        if _writes(request):
            self._check_size(request)
        return self.store.txn(request)

    def _status(self, request: Any) -> Any:
        with self._applied_lock:
            applied = self._applied + 4  # a new member has applied its bootstrap entries
        return M["StatusResponse"](
            header=M["ResponseHeader"](),
            version=self.version,
            dbSize=DB_SIZE,
            leader=self.member_id,
            raftIndex=applied,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=applied,
            dbSizeInUse=DB_SIZE_IN_USE,
        )

    def _alarm(self, request: Any) -> Any:
        """No alarm is ever raised here (no space quota, no corruption): every action
        answers as etcd 3.4 answers a GET with none active: an empty message, no header."""
        return M["AlarmResponse"]()

    def _member_list(self, request: Any) -> Any:
        url = f"http://{self.endpoint}"
        # etcd's Cluster service leaves the header's revision out.
        header = M["ResponseHeader"](revision=-1)
        peer = f"http://{self.host}:2380"  # a member has one; nothing listens on it here
        member = M["Member"](ID=self.member_id, name=self.name, peerURLs=[peer], clientURLs=[url])
        return M["MemberListResponse"](header=header, members=[member])

    def _watch(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext, call: V3Call
    ) -> AsyncIterator[Any]:
        return WatchStream(self, call, context).serve(requests)

    async def _keep_alive(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext, call: V3Call
    ) -> AsyncIterator[Any]:
        async for request in requests:
            await self.message_decision(call, request, context)
            header = self.header()  # before the renewal, as etcd fills it
            ttl = self.store.lease_keep_alive(request.ID)
            yield M["LeaseKeepAliveResponse"](header=header, ID=request.ID, TTL=ttl)


def _writes(txn: Any) -> bool:
    for op in (*txn.success, *txn.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return True
        if kind == "request_txn" and _writes(op.request_txn):
            return True
    return False


async def _halt(server: grpc.aio.Server, grace: float | None) -> None:
    """Stop ``server`` (its calls are cancelled and run their cleanup), then end what
    else still runs on the loop."""
    await server.stop(grace)
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def _end_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    if not thread.is_alive():
        loop.close()
