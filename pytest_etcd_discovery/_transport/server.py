"""The live fake: :class:`DiscoveryApp` on a loopback socket, framed like Go's server.

:class:`GoHTTPServer` serves every connection on one event loop (:mod:`.loop`, a
``selectors`` loop in one thread; the TLS front in :mod:`.proxy` runs on it too): it
accepts every pending connection in a turn (like Go: the system's listen backlog,
backoff when out of file descriptors), reads and writes without blocking through
bounded per-connection buffers, feeds each request head to Go's framing (:mod:`.gohttp`)
as it arrives, and runs the fake's application once the head is in (again once the
body is buffered, when it reads body bytes that had not arrived). A long poll or a
delay fault is a registration that the store's write (or the fault's timer, or
``clear()``) completes, never a blocked thread, so a slow or stalled client (a trickled
head, a body never sent) holds up nobody else. Closing it ends every connection.
:class:`DiscoveryServer` runs one in a daemon thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._errors import Error
from .._service.app import DiscoveryApp
from .._service.profiles import Profile
from .._v2store.clock import Clock
from .._v2store.store import Store
from .connection import Connection
from .gohttp import (
    DEFAULT_MAX_BODY,
    HEAD_TIMEOUT,
)
from .loop import EventLoop

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["DiscoveryServer", "GoHTTPServer", "ServerError", "connect_host", "url_host"]

log = logging.getLogger("pytest_etcd_discovery")

#: Errors of ``accept`` that say "not now" (out of descriptors or memory), not "never".
_ACCEPT_RETRY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Go's accept backoff: 5 ms, doubling, at most 1 s.
ACCEPT_BACKOFF_FIRST = 0.005
ACCEPT_BACKOFF_MAX = 1.0


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``: a wildcard bind
    (``0.0.0.0``, ``::``) is no address to connect to, so its loopback address."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host: str) -> str:
    """:func:`connect_host` as a URL writes it (an IPv6 address in brackets)."""
    host = connect_host(host)
    return f"[{host}]" if ":" in host else host


def listen_backlog() -> int:
    """The system's ``somaxconn``, as Go's ``maxListenerBacklog`` reads it (else 128)."""
    try:
        with open("/proc/sys/net/core/somaxconn", encoding="ascii") as file:
            value = int(file.read().strip())
    except (OSError, ValueError):
        return socket.SOMAXCONN
    return min(value, 65535) if value > 0 else socket.SOMAXCONN


class ServerError(Error, RuntimeError):
    """The server could not start (for example: the port is busy)."""


class GoHTTPServer:
    """The live server's sockets on one event loop (:mod:`.loop`), each connection
    framed like Go's (:class:`~.gohttp.GoExchange`).

    :param address: ``(host, port)`` to bind (call :meth:`server_bind` and
        :meth:`server_activate` yourself: it is made without binding).
    :param application: the WSGI callable each request is handed to.
    :param max_body: bytes of a request body the application gets at most.

    Every pending connection is accepted in one turn (until ``EAGAIN``), read and
    written without blocking, with bounded buffers. An application that says it
    ``serves_deferred`` (the fake's) runs on the loop and hands its waits (a long
    poll, a delay fault) to it; any other WSGI callable (one that may block, such as
    the forwarding app) gets a thread per request while it runs. :meth:`server_close`
    closes every connection and waits for those threads.
    """

    #: How long :meth:`server_close` waits for the request threads, all together.
    join_timeout = 10.0
    #: Go's ``ReadHeaderTimeout``: seconds the whole request head may take (None: no
    #: limit, as the real service); see :mod:`.gohttp`, point 6.
    head_timeout: float | None = HEAD_TIMEOUT

    def __init__(
        self,
        address: tuple[str, int],
        application: WSGIApplication,
        *,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.request_queue_size = listen_backlog()
        self.server_address: Any = address
        self.socket = socket.socket(self.address_family, socket.SOCK_STREAM)
        self.application = application
        self.max_body = max_body
        self.loop = EventLoop()
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._workers: set[threading.Thread] = set()
        self._closed = False
        self._accept_delay = 0.0
        self._refusing = False
        #: Connections closed unserved because no thread could be started for them.
        self.refused = 0
        #: Closed with the server (the TLS front on this loop): called by server_close.
        self.companions: list[Callable[[], None]] = []

    def server_bind(self) -> None:
        # A restarted server may reuse a port in TIME_WAIT.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        self.socket.listen(self.request_queue_size)
        self.socket.setblocking(False)
        self.loop.register(self.socket, selectors.EVENT_READ, self._on_accept)

    def fileno(self) -> int:
        return self.socket.fileno()

    # -- accepting ----------------------------------------------------------------------

    def get_request(self) -> tuple[Any, Any]:
        """One pending connection (raises :class:`BlockingIOError` when there is none)."""
        return self.socket.accept()

    def _on_accept(self, events: int) -> None:
        while not self._closed:  # every pending connection in this turn
            try:
                sock, address = self.get_request()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY:
                    # Like Go: out of descriptors, wait before the next accept (the
                    # connection stays in the backlog) instead of spinning on a socket
                    # that stays ready.
                    delay = min(self._accept_delay * 2 or ACCEPT_BACKOFF_FIRST, ACCEPT_BACKOFF_MAX)
                    self._accept_delay = delay
                    log.warning("etcd discovery fake: accept: %s; retrying in %g s", exc, delay)
                    self.loop.unregister(self.socket)
                    self.loop.call_later(delay, self._accept_again)
                    return
                log.debug("etcd discovery fake: accept failed", exc_info=True)
                return
            self._accept_delay = 0.0
            self._adopt(sock, address, b"")

    def _accept_again(self) -> None:
        if not self._closed:
            self.loop.register(self.socket, selectors.EVENT_READ, self._on_accept)
            self._on_accept(selectors.EVENT_READ)

    def _adopt(self, sock: Any, address: Any, first: bytes) -> Connection | None:
        conn = Connection(self, sock, address, first)
        with self._lock:
            if self._closed:
                self.shutdown_request(sock)
                return None
            self._connections.add(conn)
        if self.loop.in_loop():
            conn.start()
        else:
            self.loop.call_soon_threadsafe(conn.start)
        return conn

    def process_request(self, request: Any, client_address: Any, first: bytes = b"") -> None:
        """Serve ``request`` (a connected socket, plain or TLS, accepted elsewhere) like
        one of ours (from any thread); ``first``: bytes already read from it."""
        self._adopt(request, client_address, first)

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            request.close()

    # -- threads for applications that may block ---------------------------------------

    def _start_worker(self, thread: threading.Thread) -> bool:
        # Started under the lock: server_close() must never see (and join) a thread that
        # has not started yet ("cannot join thread before it is started").
        with self._lock:
            if self._closed:
                return False
            try:
                thread.start()
                self._workers.add(thread)
                failure = None
            except RuntimeError as exc:  # "can't start new thread": out of memory or threads
                failure = exc
        if failure is not None:
            self.refused += 1
            if not self._refusing:  # one line, not one per connection
                log.warning(
                    "etcd discovery fake: cannot start a thread for a connection (%s); "
                    "closing connections until one can be started",
                    failure,
                )
            self._refusing = True
            return False
        self._refusing = False
        return True

    def _worker_ended(self, thread: threading.Thread) -> None:
        with self._lock:
            self._workers.discard(thread)

    # -- running and stopping -----------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the event loop until :meth:`shutdown` (``poll_interval`` is unused: the
        loop wakes on events, timers and calls from other threads)."""
        self.loop.run()

    def shutdown(self) -> None:
        """Stop the event loop (it returns after its current turn)."""
        self.loop.stop()

    def server_close(self) -> None:
        """Stop listening, close every connection (the loop has stopped), wait for the
        request threads."""
        with self._lock:
            self._closed = True
            open_now = list(self._connections)
            workers = list(self._workers)
        self.loop.unregister(self.socket)
        with contextlib.suppress(OSError):
            self.socket.close()
        for close in list(self.companions):
            close()
        for conn in open_now:
            conn._close(shut=True)
        # One deadline for them all (not join_timeout each), and say which thread is
        # stuck: an application that outlives its connection waits on something stop()
        # missed.
        deadline = time.monotonic() + self.join_timeout
        stuck = []
        for thread in workers:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    stuck.append(thread.name)
        if stuck:
            log.warning(
                "etcd discovery fake: %d connection thread(s) still running %g s after stop: %s",
                len(stuck),
                self.join_timeout,
                ", ".join(stuck),
            )
        self.loop.close()

    @property
    def connection_count(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._connections)


class DiscoveryServer:
    """The fake discovery service on a real socket, for subprocesses such as ``etcd``.

    :param host: address to bind, loopback by default.
    :param port: port to bind; 0 picks a free one (read it back from :attr:`port`).
    :param app: the :class:`DiscoveryApp` whose state this server shows (:attr:`store`,
        :attr:`app`); a new one by default, made from ``profile``, ``public_url``,
        ``clock`` and ``keys_api``.
    :param wsgi_app: the WSGI callable actually served; ``app`` by default. Give a
        dispatcher that mounts other applications in front of ``app`` (a control API)
        to serve them on the same port.
    :param max_body: bytes of a request body an application is given at most (past
        them the body reads as ended and the connection closes after the reply);
        Go's 10 MiB form limit plus one by default.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    **Serving connections accepted elsewhere.** A front such as a TLS proxy can hand
    over a connected socket with :meth:`process_request` (socketserver's name; also
    :meth:`serve_connection`, or ``server.httpd.process_request`` on the server
    itself): it is served on the event loop like the others, and closed by :meth:`stop`. A
    :class:`ssl.SSLSocket` is served with ``wsgi.url_scheme = "https"``, so ``/new``
    hands out ``https`` URLs. Absolute request targets
    (``GET http://discovery.etcd.io/new?size=3 HTTP/1.1``, what proxies receive) route
    by their path, with the URL's host as ``Host``, as Go's server does.
    """

    #: Seconds a request head may take in all (Go's ``ReadHeaderTimeout``; None: no
    #: limit); read at :meth:`start`.
    head_timeout: float | None = HEAD_TIMEOUT

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        app: DiscoveryApp | None = None,
        wsgi_app: WSGIApplication | None = None,
        profile: str | Profile = "etcd-v2",
        public_url: str | None = None,
        clock: Clock | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        keys_api: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.app = (
            app
            if app is not None
            else DiscoveryApp(
                profile=profile, public_url=public_url, clock=clock, keys_api=keys_api
            )
        )
        self.wsgi_app: WSGIApplication = wsgi_app if wsgi_app is not None else self.app
        self.max_body = max_body
        self._httpd: GoHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Store:
        return self.app.store

    @property
    def is_running(self) -> bool:
        return self._httpd is not None

    @property
    def httpd(self) -> GoHTTPServer:
        """The running :class:`GoHTTPServer` (for :meth:`GoHTTPServer.process_request`)."""
        if self._httpd is None:
            raise ServerError("the server is not running")
        return self._httpd

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (no trailing slash); on a wildcard bind
        (``0.0.0.0``, ``::``) its loopback address, which a client can connect to."""
        return f"http://{url_host(self.host)}:{self.port}"

    def process_request(
        self, request: socket.socket, client_address: Any, first: bytes = b""
    ) -> None:
        """Serve a connection accepted elsewhere (plain or TLS, say the TLS front's)
        like one of our own, until it ends or :meth:`stop`; returns at once (the event
        loop serves it). Closes it and raises :class:`ServerError` when the server is
        not running."""
        httpd = self._httpd
        if httpd is None:
            request.close()
            raise ServerError("the server is not running")
        httpd.process_request(request, client_address, first)

    #: The same, under a name that says what it does.
    serve_connection = process_request

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises :class:`ServerError` if it cannot bind."""
        if self._httpd is not None:
            raise ServerError("the server is already running")
        httpd = GoHTTPServer(
            (self.host, self._requested_port), self.wsgi_app, max_body=self.max_body
        )
        httpd.head_timeout = self.head_timeout
        try:
            httpd.server_bind()
            httpd.server_activate()
        except OSError as exc:
            httpd.server_close()
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            raise ServerError(
                f"cannot listen on {self.host}:{self._requested_port}: {reason.lower()}"
            ) from exc
        self.app.open()  # a restarted server carries on with the state it had
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            name=f"etcd-discovery-fake:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Release waiting long polls and delays, stop the event loop, close every
        connection and wait for request threads (of an application that may block).
        Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self.app.close()
        httpd.shutdown()
        if thread is not None:
            thread.join(timeout=10)  # the loop returns after its turn: nothing blocks it
        httpd.server_close()

    def __enter__(self) -> DiscoveryServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<DiscoveryServer {self.app.profile.name} {where}>"
