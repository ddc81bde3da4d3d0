"""Serve ``requests`` calls to discovery hosts in-process, straight into the service.

Code under test usually hard-codes ``https://discovery.etcd.io``.  Under interception a
:class:`responses.RequestsMock` routes every method on that host (and on any extra host)
to the same :class:`~pytest_etcd_discovery._service.discovery.DiscoveryService` the live
server runs, so both transports share one state and one journal.  Each call becomes a
:class:`~pytest_etcd_discovery._service.messages.ServiceRequest` (no WSGI environ), answered in
the caller's thread; only a request that can block (a long poll, a delayed fault) runs in
a helper thread when the caller gave ``timeout=``, so that the timeout can fire.  A
``drop`` fault raises the :class:`requests.ConnectionError` a real dropped connection
raises.  Every other URL passes through untouched, including the fake's own live server.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from http.client import RemoteDisconnected
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_to_bytes, urlsplit

import requests
import responses
from urllib3.exceptions import ProtocolError

from .._constants import DEFAULT_HOSTS, TRANSPORT_INPROCESS, normalize_host
from .._service.discovery import DiscoveryService
from .._service.messages import ServiceRequest, host_url_of
from .._service.routes import Route
from .hosts import host_pattern

if TYPE_CHECKING:
    from requests import PreparedRequest

    from .forward import ForwardApp

__all__ = [
    "DEFAULT_HOSTS",
    "Interceptor",
    "intercept",
    "normalize_host",
]


#: Every method ``responses`` can match; the real service answers each one (often 405).
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

_Callback = Callable[["PreparedRequest"], Any]
#: What a ``responses`` callback returns: status, headers (a list keeps repeats), body.
_Reply = tuple[int, list[tuple[str, str]], bytes]


#: The passthru for everything the discovery hosts' registrations do not match.
_ANYTHING = re.compile(r".*", re.DOTALL)


def _read_timeout(timeout: object) -> float | None:
    """The read part of a ``requests`` timeout (a number or a (connect, read) pair)."""
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) > 1 else timeout[0]
    if isinstance(timeout, int | float):
        return float(timeout)
    return None


class _AnyMethodCallback(responses.CallbackResponse):
    """One registration for every method in :data:`_METHODS` on one host.

    ``responses`` tries every registration on every call (to spot duplicates), so one
    per host instead of one per method and host keeps that scan short.
    """

    def __init__(
        self, pattern: re.Pattern[str], callback: _Callback, mock: responses.RequestsMock
    ) -> None:
        super().__init__(_METHODS[0], pattern, callback=callback, content_type=None)
        self.pattern = pattern
        self._mock = mock

    def matches(self, request: PreparedRequest) -> tuple[bool, str]:
        # responses keeps every request and response it answered (the mock's ``calls``
        # and each registration's) until the mock stops: some 11 KB a call, growing all
        # session, and a heap each full garbage collection walks (a third of an
        # in-process call's CPU). The fake's journal is the record: forget them on every
        # request (responses matches every request, passed through or not, here first).
        self._mock.calls.reset()
        kept = getattr(self, "calls", None)  # its own list: newer responses (0.23 counts)
        if kept is not None:
            kept.reset()
        if request.method not in _METHODS:
            return False, "Method does not match"
        if self.pattern.match(str(request.url)) is None:
            return False, "URL does not match"
        return True, ""


class Interceptor:
    """One :class:`responses.RequestsMock` that feeds matching requests to the service.

    :param app: the service to call (the fake's ``DiscoveryApp`` or any
        :class:`DiscoveryService`).
    :param hosts: base URLs to intercept, e.g. ``https://discovery.etcd.io``.

    Use it as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self, app: DiscoveryService | ForwardApp, hosts: Iterable[str] = DEFAULT_HOSTS
    ) -> None:
        self.app = app
        self.hosts: tuple[str, ...] = tuple(dict.fromkeys(normalize_host(h) for h in hosts))
        #: Built on the first start and kept, registrations included, for the next one:
        #: the plugin starts and stops one interceptor per profile for every test.
        self._mock: responses.RequestsMock | None = None
        self._active = False
        self._helpers = _Helpers()

    @property
    def active(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._active

    def start(self) -> None:
        """Patch ``requests`` so calls to :attr:`hosts` reach the app in-process."""
        if self._active:
            return
        mock = self._mock
        if mock is None:
            mock = self._mock = self._new_mock()
        # responses keeps what was registered across stop() and start() (only reset()
        # forgets it), so a restart is its patch alone.
        mock.start()
        self._helpers.open()
        self._active = True

    def _new_mock(self) -> responses.RequestsMock:
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        # responses' stubs say headers are a Mapping; it also takes a list of pairs at
        # run time, which keeps repeated headers intact.
        callback = cast(Any, self._callback)
        for host in self.hosts:
            mock.add(_AnyMethodCallback(host_pattern(host), callback, mock))
        # Anything not matched above goes out for real (other services, the live fake).
        mock.add_passthru(_ANYTHING)
        return mock

    def stop(self) -> None:
        """Undo the patch; requests to the hosts go to the network again."""
        if self._active:
            self._active = False
            assert self._mock is not None
            self._mock.stop(allow_assert=False)
            self._mock.calls.reset()  # nothing of the last request outlives the patch
        self._helpers.close()

    def __enter__(self) -> Interceptor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _callback(self, request: PreparedRequest) -> _Reply:
        service = self.app
        asked = _service_request(request)
        route = service.route(asked)
        timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
        if timeout is None or not service.may_block(route):
            return _answer(service, asked, route)
        # A real long poll with ``timeout=`` raises ReadTimeout when nothing happens in
        # time; emulate that instead of blocking the caller forever.  The abandoned call
        # finishes (or is released by the service's close/reset) in its helper thread.
        call = self._helpers.run(partial(_answer, service, asked, route))
        # Thread.join's reading of the timeout: a negative one does not wait at all.
        if not call.done.acquire(timeout=max(timeout, 0)):
            raise requests.exceptions.ReadTimeout(
                f"in-process etcd discovery fake: read timed out (read timeout={timeout})",
                request=request,
            )
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result


def _service_request(request: PreparedRequest) -> ServiceRequest:
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, bytes):
        body = b"" if body is None else b"".join(body)  # an iterable of chunks
    parts = urlsplit(str(request.url))
    path = parts.path or "/"
    if "%" in path:  # requests sends the path escaped: bytes that are not UTF-8 stay escaped
        path = unquote_to_bytes(path).decode("utf-8", "surrogateescape")
    return ServiceRequest(
        method=str(request.method),
        path=path,
        query=parts.query,
        headers=_header_fields(request.headers),
        body=body,
        transport=TRANSPORT_INPROCESS,
        host_url=host_url_of(parts.scheme, parts.netloc),
    )


def _header_fields(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The request's header fields but Content-Length (the body's length is known)."""
    return [(k, v) for k, v in headers.items() if k.lower() != "content-length"]


def _answer(
    service: DiscoveryService | ForwardApp, request: ServiceRequest, route: Route
) -> _Reply:
    """The service's reply as ``responses`` takes it; a drop as ``requests`` raises it."""
    reply = service.answer(request, route)
    if reply.drop:
        # Exactly what requests raises when a server closes without answering.
        raise requests.exceptions.ConnectionError(
            ProtocolError(
                "Connection aborted.",
                RemoteDisconnected("Remote end closed connection without response"),
            )
        )
    # Reading the body is where a long poll waits, like a client reading a body.
    return reply.status, reply.headers, reply.read(request.method)


class _Job:
    """One in-process call handed to a helper thread; ``done`` is released when it ends."""

    __slots__ = ("done", "error", "func", "result")

    def __init__(self, func: Callable[[], _Reply]) -> None:
        self.func = func
        self.result: _Reply | None = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def run(self) -> None:
        try:
            self.result = self.func()
        except BaseException as exc:  # handed over to the caller
            self.error = exc
        finally:
            self.done.release()


class _Helpers:
    """Daemon threads that run the calls made with a timeout, kept for the next call.

    Starting a thread costs the caller more CPU than the call it runs; handing the call
    to an idle helper costs a queue put.  A call the caller gave up on (a long poll past
    its timeout) keeps its helper until it ends, so the next call starts another.
    Helpers idle for ``IDLE`` seconds exit, and all of them exit after :meth:`close`.
    """

    IDLE = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[_Job | None]] = []
        self._closed = False

    def run(self, func: Callable[[], _Reply]) -> _Job:
        call = _Job(func)
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._serve, args=(inbox,), name="etcd-discovery-inprocess", daemon=True
            ).start()
        inbox.put(call)
        return call

    def _serve(self, inbox: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            try:
                call = inbox.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                continue  # a caller took this helper just now: its call is on the way
            if call is None:
                return
            call.run()
            del call  # the caller holds the reply; an idle helper should not
            with self._lock:
                if self._closed:
                    return
                self._idle.append(inbox)

    def open(self) -> None:
        with self._lock:
            self._closed = False

    def close(self) -> None:
        """Idle helpers exit now, busy ones when their call ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)


@contextmanager
def intercept(app: DiscoveryService, hosts: Sequence[str] = DEFAULT_HOSTS) -> Iterator[Interceptor]:
    """Serve ``requests`` calls to ``hosts`` from ``app`` for the ``with`` block."""
    with Interceptor(app, hosts) as interceptor:
        yield interceptor
