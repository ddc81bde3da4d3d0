"""The live fake: :class:`DiscoveryApp` on a loopback socket, framed like Go's server.

:class:`GoHTTPServer` is a :class:`socketserver.TCPServer` with one thread per
connection (each served by :class:`~.gohttp.GoHTTPHandler`), that keeps its connections
so that closing it ends them all, accepts like Go (the system's listen backlog, backoff
when out of file descriptors) and refuses a connection cleanly when no thread can be
started for it. :class:`DiscoveryServer` runs one in a daemon thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import socketserver
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._errors import Error
from .._service.app import DiscoveryApp
from .._service.profiles import Profile
from .._v2store.clock import Clock
from .._v2store.store import Store
from .gohttp import DEFAULT_MAX_BODY, HEAD_TIMEOUT, GoHTTPHandler

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


class GoHTTPServer(socketserver.TCPServer):
    """A threaded TCP server for :class:`~.gohttp.GoHTTPHandler` that owns its connections.

    :param address: ``(host, port)`` to bind (call :meth:`server_bind` and
        :meth:`server_activate` yourself: it is made without binding).
    :param application: the WSGI callable each request is handed to.
    :param max_body: bytes of a request body the application gets at most.

    Every connection, accepted here or handed in through :meth:`process_request`,
    gets a daemon thread and is tracked until it ends; :meth:`server_close` shuts
    them all and joins their threads.
    """

    allow_reuse_address = True  # a restarted server may reuse a port in TIME_WAIT
    #: How long :meth:`server_close` waits for the handler threads, all together.
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
        super().__init__(address, GoHTTPHandler, bind_and_activate=False)
        self.application = application
        self.max_body = max_body
        self._lock = threading.Lock()
        self._connections: dict[Any, threading.Thread] = {}
        self._closed = False
        self._stopping = threading.Event()
        self._accept_delay = 0.0
        self._refusing = False
        #: Connections closed unserved because no thread could be started for them.
        self.refused = 0

    def get_request(self) -> tuple[Any, Any]:
        try:
            request = self.socket.accept()
        except OSError as exc:
            if exc.errno in _ACCEPT_RETRY:
                # Like Go: out of descriptors, wait before the next accept (the connection
                # stays in the backlog) instead of spinning on a socket that stays ready.
                delay = min(self._accept_delay * 2 or ACCEPT_BACKOFF_FIRST, ACCEPT_BACKOFF_MAX)
                self._accept_delay = delay
                log.warning("etcd discovery fake: accept: %s; retrying in %g s", exc, delay)
                self._stopping.wait(delay)
            raise  # socketserver skips this round
        self._accept_delay = 0.0
        return request

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` (a connected socket, plain or TLS) in a thread of its own."""
        thread = threading.Thread(
            target=self._serve,
            args=(request, client_address),
            name=f"etcd-discovery-fake:{client_address}",
            daemon=True,
        )
        with self._lock:
            if self._closed:
                self.shutdown_request(request)
                return
            self._connections[request] = thread
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of memory or threads
            with self._lock:
                self._connections.pop(request, None)
            self.refused += 1
            if not self._refusing:  # one line, not one per connection
                log.warning(
                    "etcd discovery fake: cannot start a thread for a connection (%s); "
                    "closing connections until one can be started",
                    exc,
                )
            self._refusing = True
            self.shutdown_request(request)
            return
        self._refusing = False

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._lock:
                self._connections.pop(request, None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback; a connection that failed is the client's
        # business (the handler already absorbs resets), so say one line.
        log.debug("etcd discovery fake: connection from %s failed", client_address, exc_info=True)

    def shutdown(self) -> None:
        self._stopping.set()  # end an accept backoff at once
        super().shutdown()

    def server_close(self) -> None:
        """Stop listening, shut every connection still open, wait for their threads."""
        self._stopping.set()
        super().server_close()
        with self._lock:
            self._closed = True
            open_now = list(self._connections.items())
        for conn, _ in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        # One deadline for them all (not join_timeout each), and say which thread is
        # stuck: a handler that outlives its socket waits on something stop() missed.
        deadline = time.monotonic() + self.join_timeout
        stuck = []
        for _, thread in open_now:
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
    :meth:`serve_connection`, or ``server.httpd.process_request`` on the socketserver
    itself): it is served in a thread of its own, tracked, and closed by :meth:`stop`. A
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
        """The running socketserver (for :meth:`GoHTTPServer.process_request`)."""
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

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Serve a connection accepted elsewhere (plain or TLS, say the TLS front's)
        like one of our own, until it ends or :meth:`stop`; returns at once (the
        connection gets a thread of its own). Closes it and raises :class:`ServerError`
        when the server is not running."""
        httpd = self._httpd
        if httpd is None:
            request.close()
            raise ServerError("the server is not running")
        httpd.process_request(request, client_address)

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
            # stop() waits for the loop to look up: keep that to ~10 ms.
            kwargs={"poll_interval": 0.01},
            name=f"etcd-discovery-fake:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Release blocked long polls, stop serving, close every connection and wait for
        their threads. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self.app.close()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=10)

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
