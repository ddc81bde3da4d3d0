"""The etcd v2 keys API: what the original service proxies every token request to, and
what ``/v2/keys`` serves when the keys API is switched on.

:class:`KeyParams` validates a request's parameters as etcd's ``parseKeyRequest`` does;
:class:`KeysAPI` answers gets, puts, posts, deletes and watches on the service's store
with etcd's headers, JSON bodies and errors.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._v2store import errors
from .._v2store.errors import EtcdError
from .._v2store.events import GET as READ_ACTION
from .._v2store.events import Event
from .._v2store.watchers import Watcher
from . import go_json
from .forms import Form, go_parse_bool, go_parse_uint64
from .go_net_http import bare_response, http_error
from .messages import DEFERRING, Pending, Reply, monotonic

if TYPE_CHECKING:
    from .discovery import DiscoveryService

__all__ = ["CORS_HEADERS", "KEYS_METHODS", "KeyParams", "KeysAPI", "WatchWait", "time_left"]

CORS_HEADERS = (
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
)
KEYS_METHODS = ("HEAD", "GET", "PUT", "POST", "DELETE")
PROXY_BUFFER = 4096  # Go's per-connection write buffer, which the original proxy never flushes


def time_left(timeout: float | None) -> Callable[[], float | None]:
    """A function giving the seconds left of ``timeout`` from now (None: no limit)."""
    if timeout is None:
        return lambda: None
    deadline = monotonic() + timeout
    return lambda: max(deadline - monotonic(), 0.0)


class WatchWait(Pending):
    """A long poll waiting for its watcher's next event (or its close, or ``left()``
    reaching 0): blocks in a thread, or wakes an event loop (see :class:`Pending`)."""

    def __init__(self, watcher: Watcher, left: Callable[[], float | None]) -> None:
        self.watcher = watcher
        self.left = left

    def ready(self) -> bool:
        return self.watcher.has_news() or self.left() == 0

    def block(self) -> None:
        self.watcher.wait(self.left())

    def arm(self, wake: Callable[[], None]) -> float | None:
        self.watcher.set_wake(wake)
        return self.left()

    def disarm(self) -> None:
        self.watcher.set_wake(None)


def with_cors(reply: Reply) -> Reply:
    """etcd's CORS headers (it allows any origin by default)."""
    reply.headers.extend(CORS_HEADERS)
    return reply


@dataclass
class KeyParams:
    """A keys-API request's parameters, validated as etcd's ``parseKeyRequest`` does."""

    value: str = ""
    dir: bool = False
    prev_value: str = ""
    prev_index: int = 0
    prev_exist: bool | None = None
    wait: bool = False
    wait_index: int = 0
    recursive: bool = False
    sorted: bool = False
    stream: bool = False
    ttl: int | None = None
    refresh: bool = False
    no_value_on_success: bool = False

    @classmethod
    def parse(cls, method: str, form: Form) -> KeyParams:
        if form.error is not None:
            raise EtcdError(errors.INVALID_FORM, form.error)
        p = cls()
        values = form.values
        if not values:
            return p  # no parameters at all (most GETs): every default holds
        p.prev_index = _uint_param(values, "prevIndex")
        p.wait_index = _uint_param(values, "waitIndex")
        p.recursive = _flag_param(values, "recursive")
        p.sorted = _flag_param(values, "sorted")
        p.wait = _flag_param(values, "wait")
        p.dir = _flag_param(values, "dir")
        _flag_param(values, "quorum")
        p.stream = _flag_param(values, "stream")
        if p.wait and method != "GET":
            raise EtcdError(errors.INVALID_FIELD, '"wait" can only be used with GET requests')
        p.prev_value = form.get("prevValue")
        if "prevValue" in values and not p.prev_value:
            raise EtcdError(errors.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty')
        p.no_value_on_success = _flag_param(values, "noValueOnSuccess")
        if form.get("ttl"):
            try:
                p.ttl = go_parse_uint64(values["ttl"][0])
            except ValueError:
                raise EtcdError(errors.TTL_NAN, 'invalid value for "ttl"') from None
        if "prevExist" in values:
            p.prev_exist = _flag_param(values, "prevExist", "invalid value for prevExist")
        if "refresh" in values:
            p.refresh = _flag_param(values, "refresh", "invalid value for refresh")
            if p.refresh:
                if form.get("value"):
                    raise EtcdError(errors.REFRESH_VALUE, "A value was provided on a refresh")
                if p.ttl is None:
                    raise EtcdError(errors.REFRESH_TTL_REQUIRED, "No TTL value set")
        p.value = form.get("value")
        return p


def is_etcd_watch(method: str, form: Form) -> bool:
    """etcd's reading of a long poll: a GET whose ``wait`` parses as true."""
    if method != "GET":
        return False
    given = form.values.get("wait")
    if not given:
        return False
    try:
        return go_parse_bool(given[0])
    except ValueError:
        return False


def _uint_param(values: dict[str, list[str]], name: str) -> int:
    """A uint64 parameter, 0 when absent; etcd's INDEX_NAN when not a number."""
    given = values.get(name)
    if given is None:
        return 0
    try:
        return go_parse_uint64(given[0])
    except ValueError:
        raise EtcdError(errors.INDEX_NAN, f'invalid value for "{name}"') from None


def _flag_param(values: dict[str, list[str]], name: str, cause: str | None = None) -> bool:
    """A boolean parameter, False when absent; etcd's INVALID_FIELD when not a bool."""
    given = values.get(name)
    if given is None:
        return False
    try:
        return go_parse_bool(given[0])
    except ValueError:
        raise EtcdError(errors.INVALID_FIELD, cause or f'invalid value for "{name}"') from None


def encoded(event: Event, *, line: bool, keep: bool = True) -> bytes:
    """``event``'s JSON (``line``: with the newline etcd's encoder ends it with).
    ``keep``: encoded once and kept with the event, for what is sent more than once (one
    write may wake a thousand watchers, one kept read (:meth:`Store.get
    <.._v2store.store.Store.get>`) answer a hundred polls); not for a write's own
    reply, whose event the history keeps long after it was sent."""
    kind = "line" if line else "json"
    data: bytes | None = event.memo.get(kind) if keep else None
    if data is None:
        body = event.to_json()
        data = go_json.encode_line(body) if line else go_json.dumps(body).encode()
        if keep:
            event.memo[kind] = data
    return data


class KeysAPI:
    """etcd's v2 keys handler over ``service``'s store (whichever store it has now)."""

    def __init__(self, service: DiscoveryService) -> None:
        self._service = service

    def answer(self, method: str, key: str, form: Form, *, flush_early: bool) -> Reply:
        """Answer ``method`` on ``key``. ``flush_early``: etcd itself, which sends a long
        poll's headers at once; otherwise the original service's buffering proxy."""
        try:
            reply = self._answer(method, key, form, flush_early)
        except EtcdError as err:
            reply = self.error(err)
        return with_cors(reply)

    def answer_route(self, method: str, raw_method: str, path: str, form: Form) -> Reply:
        """``/v2/keys...``: etcd's CORS wrapper answers OPTIONS itself and heads every reply."""
        if method == "OPTIONS":
            return with_cors(bare_response(200))
        if raw_method not in KEYS_METHODS:
            reply = http_error("Method Not Allowed", 405)
            reply.headers.append(("Allow", ",".join(KEYS_METHODS)))
            return with_cors(reply)
        return self.answer(method, path[len("/v2/keys") :] or "/", form, flush_early=True)

    def _answer(self, method: str, key: str, form: Form, flush_early: bool) -> Reply:
        params = KeyParams.parse(method, form)
        store = self._service.store
        if method in ("GET", "HEAD"):
            if params.wait and method == "GET":
                watcher = store.watch(
                    key,
                    recursive=params.recursive,
                    stream=params.stream,
                    since_index=params.wait_index,
                )
                return self._watch(watcher, params.stream, flush_early)
            return self.event(store.get(key, recursive=params.recursive, sorted=params.sorted))
        if method == "PUT":
            return self.event(self._put(key, params), params.no_value_on_success)
        if method == "POST":
            event = store.create(key, params.value, dir=params.dir, ttl=params.ttl, unique=True)
            return self.event(event, params.no_value_on_success)
        # DELETE
        if params.prev_index > 0 or params.prev_value:
            event = store.compare_and_delete(key, params.prev_value, params.prev_index)
        else:
            event = store.delete(key, dir=params.dir, recursive=params.recursive)
        return self.event(event)

    def _put(self, key: str, p: KeyParams) -> Event:
        store = self._service.store
        if p.prev_exist is True:
            if p.prev_index == 0 and not p.prev_value:
                return store.update(key, p.value, ttl=p.ttl, refresh=p.refresh)
            return store.compare_and_swap(
                key, p.prev_value, p.prev_index, p.value, ttl=p.ttl, refresh=p.refresh
            )
        if p.prev_exist is False:
            return store.create(key, p.value, dir=p.dir, ttl=p.ttl)
        if p.prev_index > 0 or p.prev_value:
            return store.compare_and_swap(
                key, p.prev_value, p.prev_index, p.value, ttl=p.ttl, refresh=p.refresh
            )
        return store.set(key, p.value, dir=p.dir, ttl=p.ttl, refresh=p.refresh)

    def headers(self, etcd_index: int) -> list[tuple[str, str]]:
        service = self._service
        return [
            ("Content-Type", "application/json"),
            ("X-Etcd-Cluster-Id", service.cluster_id),
            ("X-Etcd-Index", str(etcd_index)),
            ("X-Raft-Index", str(service.store.index + 1000)),
            ("X-Raft-Term", str(service.raft_term)),
        ]

    def event(self, event: Event, no_value: bool = False) -> Reply:
        if no_value and event.action in ("set", "compareAndSwap", "create", "update"):
            data = go_json.encode_line({"action": event.action})
        else:
            data = encoded(event, line=True, keep=event.action == READ_ACTION)
        headers = self.headers(event.etcd_index)
        headers.append(("Content-Length", str(len(data))))
        return Reply(201 if event.is_created else 200, headers, data)

    def error(self, err: EtcdError, status: int | None = None) -> Reply:
        """etcd's JSON error reply for ``err`` (with ``status`` instead of its own)."""
        data = go_json.encode_line(err.to_json())
        headers = [
            ("Content-Type", "application/json"),
            ("X-Etcd-Cluster-Id", self._service.cluster_id),
            ("X-Etcd-Index", str(err.index)),
            ("Content-Length", str(len(data))),
        ]
        return Reply(status or err.status, headers, data)

    def _watch(self, watcher: Watcher, stream: bool, flush_early: bool) -> Reply:
        """A long poll. ``flush_early``: etcd itself, which sends the headers at once
        and every streamed event as it comes; otherwise the original service's proxy,
        which copies etcd's reply into Go's 4 KiB connection buffer without flushing, so
        a stream reaches the client in 4 KiB pieces, headers included."""
        waiting = WatchWait(watcher, time_left(self._service.profile.watch_timeout))

        def pieces() -> Generator[bytes, None, None]:
            held = bytearray()
            while True:
                while not waiting.ready():
                    yield waiting  # WatchBody blocks on it, or hands it to an event loop
                event = watcher.poll()
                if event is None:  # closed, or timed out
                    break
                held += encoded(event, line=True)
                if not stream:
                    break
                if flush_early or len(held) >= PROXY_BUFFER:
                    yield bytes(held)
                    held.clear()
            if held:
                yield bytes(held)
            watcher.remove()

        body = WatchBody(pieces(), watcher)
        return Reply(200, self.headers(watcher.start_index), body, flush_early=flush_early)


class WatchBody:
    """A long poll's body: its pieces, and :meth:`close` stops watching even when the
    body was never read (a client that gave up before the first event).

    Made while :data:`~.messages.DEFERRING` is set, it hands its waits
    (:class:`~.messages.Pending`) to the caller's event loop; otherwise it blocks on them.
    """

    def __init__(self, pieces: Generator[bytes, None, None], watcher: Watcher) -> None:
        self._pieces = pieces
        self._watcher = watcher
        self._deferring = DEFERRING.get()

    def __iter__(self) -> WatchBody:
        return self

    def __next__(self) -> bytes:
        while True:
            piece = next(self._pieces)
            if self._deferring or not isinstance(piece, Pending):
                return piece
            piece.block()

    def close(self) -> None:
        self._watcher.remove()
        self._pieces.close()
