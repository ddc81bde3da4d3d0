"""The fake discovery service as a WSGI application: :class:`DiscoveryApp`.

A thin adapter over :class:`~.discovery.DiscoveryService`: it turns a WSGI environ into
a :class:`~.messages.ServiceRequest` and the :class:`~.messages.Reply` back into WSGI. The live
server (:mod:`pytest_etcd_discovery._transport.server`) serves it; anything else that
speaks WSGI can too. In-process transports call :meth:`DiscoveryService.answer
<.discovery.DiscoveryService.answer>` directly.

Two WSGI conventions carry what WSGI cannot say: an empty first piece asks the server
to send the headers at once (a long poll's flush), and :class:`ConnectionDropped` (a
:class:`ConnectionError`) asks it to close the connection without a reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING

from werkzeug.wsgi import get_current_url, get_input_stream

from .._constants import TRANSPORT_LIVE
from .._errors import Error
from .discovery import DiscoveryService
from .journal import Call
from .messages import Later, Reply, ServiceRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "DEFER_KEY",
    "GO_SUPPLIED_KEY",
    "TRANSPORT_KEY",
    "Call",
    "ConnectionDropped",
    "DiscoveryApp",
    "request_from_environ",
]

#: The environ key a WSGI caller may set to name its transport (default ``"live"``).
TRANSPORT_KEY = "etcd_discovery.transport"
#: Set before ``start_response`` when the reply says so (``Reply.server_headers``), read
#: by the live server (transport.gohttp) to write Go's header order: the names of the
#: headers Go's *server* writes for this reply, not its handler. Absent: Go's default,
#: ``("Date", "Content-Length")``.
GO_SUPPLIED_KEY = "etcd_discovery.go_supplied"
#: Set (true) by a server that waits without blocking (the live server's event loop):
#: an application with ``serves_deferred = True`` then answers at once, and its body may
#: yield :class:`~.messages.Pending` pieces (empty bytes) the server must wait for
#: (``arm`` them) before it asks for the next piece.
DEFER_KEY = "etcd_discovery.deferred"


class ConnectionDropped(Error, ConnectionAbortedError):
    """Raised to the WSGI server for a ``drop`` fault: close without a reply.

    werkzeug's request handler treats it as a client that went away (no 500 page, no
    traceback), and the live server's handler closes the socket.
    """


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} UNKNOWN"


@lru_cache(maxsize=64)
def _host_url(
    scheme: str, host: str | None, server_name: str | None, server_port: str | None
) -> str:
    """werkzeug's ``get_current_url(environ, host_only=True)``, which reads only these
    four keys; cached, since a connection sends the same ``Host`` every time (the IRI
    decoding in it was ~10 % of the live server's CPU per request)."""
    given = {"HTTP_HOST": host, "SERVER_NAME": server_name, "SERVER_PORT": server_port}
    environ = {"wsgi.url_scheme": scheme, **{k: v for k, v in given.items() if v is not None}}
    return get_current_url(environ, host_only=True)


@lru_cache(maxsize=256)
def _header_name(key: str) -> str:
    """``USER_AGENT`` -> ``User-Agent``; cached: a client sends the same few headers
    with every request."""
    return key.replace("_", "-").title()


def request_from_environ(environ: WSGIEnvironment) -> ServiceRequest:
    """The :class:`ServiceRequest` of a WSGI environ (PEP 3333)."""
    # PATH_INFO and QUERY_STRING carry the bytes as Latin-1; bytes that are not UTF-8
    # stay as surrogate escapes, so keys keep their bytes like Go's.
    path = environ.get("PATH_INFO", "").encode("latin-1", "replace")
    query = environ.get("QUERY_STRING", "").encode("latin-1", "replace")
    headers: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key[:5] == "HTTP_":  # a slice compares cheaper than a method call per key
            headers.append((_header_name(key[5:]), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((_header_name(key), value))
    if environ.get("CONTENT_LENGTH") in (None, "", "0") and "wsgi.input_terminated" not in environ:
        body = b""  # nothing to read: skip building the stream
    else:
        body = get_input_stream(environ).read()
    return ServiceRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        path="/" + path.decode("utf-8", "surrogateescape").removeprefix("/"),
        query=query.decode("utf-8", "surrogateescape"),
        headers=headers,
        body=body,
        transport=environ.get(TRANSPORT_KEY, TRANSPORT_LIVE),
        host_url=_host_url(
            environ.get("wsgi.url_scheme", "http"),
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
        ),
    )


def _flushed_first(pieces: Iterable[bytes]) -> Iterator[bytes]:
    yield b""  # the server sends the headers now
    yield from pieces


class DiscoveryApp(DiscoveryService):
    """The fake discovery service as a WSGI application (see :class:`DiscoveryService`
    for the parameters and the Python API)."""

    #: The live server may call it on its event loop with ``environ[DEFER_KEY]`` set:
    #: it then never blocks (see :data:`DEFER_KEY`).
    serves_deferred = True

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = request_from_environ(environ)
        if not environ.get(DEFER_KEY):
            return self.respond(self.answer(request), environ, start_response)
        reply = self.answer_deferred(request)
        if reply.later is None:
            return self.respond(reply, environ, start_response)
        return _Late(self, reply.later, environ, start_response)

    def respond(
        self, reply: Reply, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Hand a settled ``reply`` to the WSGI server."""
        if reply.drop:
            raise ConnectionDropped("etcd discovery fake: connection dropped on purpose")
        if reply.server_headers is not None:
            environ[GO_SUPPLIED_KEY] = reply.server_headers
        start_response(_status_line(reply.status), reply.headers)
        pieces = reply.pieces(environ.get("REQUEST_METHOD", "GET"))
        if not reply.streamed:
            return pieces
        # A long poll: the server closes the iterable when it is done (or gone).
        return _Closing(_flushed_first(pieces) if reply.flush_early else iter(pieces), reply)


class _Late:
    """A reply still to come, as a WSGI body: its waits (empty :class:`Pending` pieces
    the live server waits for on its loop), then ``start_response`` and its pieces
    (WSGI lets an application start its response from its iterable)."""

    def __init__(
        self,
        app: DiscoveryApp,
        later: Later,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> None:
        self._app = app
        self._later = later
        self._environ = environ
        self._start_response = start_response
        self._body: Iterable[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            reply = yield from self._later
        finally:
            self._later.close()
        body = self._body = self._app.respond(reply, self._environ, self._start_response)
        yield from body

    def close(self) -> None:
        self._later.close()
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


class _Closing:
    """A long poll's pieces with the ``close`` WSGI servers call when they are done."""

    def __init__(self, pieces: Iterator[bytes], reply: Reply) -> None:
        self._pieces = pieces
        self._reply = reply

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces

    def close(self) -> None:
        self._reply.close()
