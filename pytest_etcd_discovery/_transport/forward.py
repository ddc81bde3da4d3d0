"""Interception against a real service: discovery hosts are sent to the configured one.

With ``--etcd-discovery-url`` there is no fake to answer, yet code under test may still
call ``https://discovery.etcd.io`` (a suite whose ini turns interception on, a test with
the ``etcd_discovery`` marker, a child process given ``env()``).  Such calls must never
reach the public service: :class:`ForwardApp` replays each request on the configured
service over HTTP, unchanged but for the host, and hands back its reply as it came (a
token URL keeps the configured service's host).  It stands where the fake would:

- for ``requests``, the :class:`~.intercept.Interceptor` calls it instead of the service
  (the same ``route``/``may_block``/``handle`` calls);
- for every other client, it is the WSGI application of the live server behind the TLS
  front (:func:`forwarding_server`), so the front and the client cover (:mod:`.proxy`,
  :mod:`.client_cover`) work as they do for the fake.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from .._errors import Error
from .._service.app import GO_SUPPLIED_KEY, ConnectionDropped, request_from_environ
from .._service.forms import Form
from .._service.messages import PROXIED, Reply, ServiceRequest
from .._service.routes import Route
from .server import DiscoveryServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ForwardApp", "ForwardingError", "forwarding_server"]

log = logging.getLogger("pytest_etcd_discovery")

#: Headers that belong to one connection, not to the request or reply (RFC 9110 7.6.1),
#: plus Host (the configured service's).
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        # The hop that received the request already answered it (the live server sends
        # its own 100 Continue); the whole body is at hand.
        "expect",
    }
)
#: Characters a path keeps unescaped (RFC 3986 pchar and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
#: What Go's server writes itself after a handler's headers, in this order.
_GO_SERVER_WRITES = ("date", "content-length", "content-type")


def _request_headers(request: ServiceRequest) -> dict[str, str]:
    # http.client works the length out again from the whole body.
    skip = _NOT_FORWARDED | {"content-length"}
    return {name: value for name, value in request.headers if name.lower() not in skip}


def _reply_headers(
    received: list[tuple[str, str]], length: str | None
) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    """The service's headers to send on, with ``length`` as Content-Length (None: the
    service's own, if it sent one), and which of them its server wrote itself
    (``Reply.server_headers``).

    Go writes a handler's headers sorted by name, then its own (Date, Content-Length, a
    sniffed Content-Type); telling the two apart by that order lets the live server
    write the head in the service's order.  A head in no such order is sent sorted.
    """
    headers = [(k, v) for k, v in received if k.lower() not in _NOT_FORWARDED]
    if length is not None:
        if any(k.lower() == "content-length" for k, _ in headers):
            headers = [(k, length if k.lower() == "content-length" else v) for k, v in headers]
        else:
            headers.append(("Content-Length", length))  # it came chunked; it goes whole
    names = [k for k, _ in headers]
    sorted_up_to = 1
    while sorted_up_to < len(names) and names[sorted_up_to - 1] <= names[sorted_up_to]:
        sorted_up_to += 1
    server = [n.lower() for n in names[sorted_up_to:]]
    ranks = [_GO_SERVER_WRITES.index(n) if n in _GO_SERVER_WRITES else -1 for n in server]
    if -1 in ranks or ranks != sorted(ranks):
        return headers, PROXIED
    return headers, tuple(names[sorted_up_to:])


class ForwardingError(Error, ConnectionError):
    """The configured service could not be reached, or (``cut``) the test ended while a
    request was still waiting on it (:meth:`ForwardApp.close`).  Each transport turns it
    into what its clients see when a server goes away."""

    def __init__(self, message: str, *, cut: bool = False) -> None:
        super().__init__(message)
        self.cut = cut


class ForwardApp:
    """Answers each request with what ``base_url`` answers to it.

    :param base_url: the configured service (``http(s)://host[:port][/prefix]``).

    Long polls are held open like any reply; :meth:`close` cuts the ones still waiting
    (the test ended), so no thread outlives its test.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        # Guards _open; notified when a request starts, so a test can wait for one.
        self._lock = threading.Condition()
        self._open: set[http.client.HTTPConnection] = set()

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._netloc, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._netloc)

    def route(self, request: ServiceRequest) -> Route:
        """No routing here: the configured service routes (the interceptor asks)."""
        return Route("forward", request.path, Form())

    def may_block(self, route: Route) -> bool:
        """Any forwarded request may wait on the network (a long poll, a slow service)."""
        return True

    def answer(self, request: ServiceRequest, route: Route | None = None) -> Reply:
        """What the configured service answers to ``request`` (for the interceptor: a
        failure is the :class:`requests.ConnectionError` an unreachable server gives)."""
        try:
            return self.forward(request)
        except ForwardingError as exc:
            import requests  # interception loaded it already

            raise requests.exceptions.ConnectionError(str(exc)) from exc

    def forward(self, request: ServiceRequest) -> Reply:
        """Replay ``request`` on the configured service; its reply, whole.

        Raises :class:`ForwardingError` when the service cannot be reached or
        :meth:`close` cut the request.
        """
        path = quote(request.path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)
        target = self._prefix + path + (f"?{request.query}" if request.query else "")
        connection = self._connect()
        with self._lock:
            self._open.add(connection)
            self._lock.notify_all()
        try:
            connection.connect()
            with self._lock:
                if connection not in self._open:  # close() came before the socket did
                    raise ConnectionAbortedError("cut before it was sent")
            connection.request(
                request.method, target, body=request.body, headers=_request_headers(request)
            )
            reply = connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException) as exc:
            with self._lock:
                cut = connection not in self._open  # close() took it: the test ended
            if cut:
                raise ForwardingError(
                    f"etcd discovery: the test ended while {request.method} {target} was "
                    f"waiting on {self.base_url}",
                    cut=True,
                ) from exc
            raise ForwardingError(
                f"etcd discovery: forwarding to {self.base_url} failed: {exc!r}"
            ) from exc
        finally:
            with self._lock:
                self._open.discard(connection)
            connection.close()
        # A reply without a body (HEAD, 1xx, 204, 304) keeps what the service announced.
        bodiless = request.method == "HEAD" or reply.status < 200 or reply.status in (204, 304)
        length = None if bodiless else str(len(body))
        headers, server_headers = _reply_headers(reply.getheaders(), length)
        return Reply(reply.status, headers, body, server_headers=server_headers)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The live server's application (behind the TLS front): the same forwarding;
        a failure closes the client's connection, as the unreachable service would."""
        try:
            reply = self.forward(request_from_environ(environ))
        except ForwardingError as exc:
            log.log(logging.DEBUG if exc.cut else logging.WARNING, "%s", exc)
            raise ConnectionDropped(str(exc)) from exc
        environ[GO_SUPPLIED_KEY] = reply.server_headers
        start_response(f"{reply.status} {_reason(reply.status)}", reply.headers)
        return reply.pieces(environ.get("REQUEST_METHOD", "GET"))

    def wait_in_flight(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``count`` requests are waiting on the service (a test
        that must know its long poll is under way); False when ``timeout`` passed."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._open) >= count, timeout)

    def close(self) -> None:
        """Cut every request still waiting on the service (their callers get an error)."""
        with self._lock:
            waiting, self._open = list(self._open), set()
        for connection in waiting:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)


def _reason(status: int) -> str:
    # The live server writes Go's reason phrase anyway; WSGI just wants one.
    return http.client.responses.get(status, "Unknown")


def forwarding_server(forward: ForwardApp, host: str = "127.0.0.1") -> DiscoveryServer:
    """A live server (not started) whose only application is ``forward``: the backend of
    the TLS front in real-service mode, so other clients reach the configured service
    through the same front and client cover as the fake."""
    return DiscoveryServer(host, 0, wsgi_app=forward)
