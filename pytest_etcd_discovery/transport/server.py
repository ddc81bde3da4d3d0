"""The live fake: a threaded werkzeug server on loopback serving :class:`DiscoveryApp`."""

from __future__ import annotations

import errno
import socket
import ssl
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from ..service.app import DiscoveryApp
from ..service.profiles import Profile
from ..v2store.clock import Clock
from ..v2store.store import Store
from .gohttp import GoLikeRequestHandler, GoLikeServer

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment


class _QuietHandler(GoLikeRequestHandler):
    """No access log on stderr: test output stays readable (``app.calls`` is the log)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Go's net/http sends no Server header; neither do we.
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()
        # A connection the TLS front handed over (transport/proxy.py) is https: /new hands
        # out https:// token URLs there, as the public service does.
        if isinstance(self.connection, ssl.SSLSocket):
            environ["wsgi.url_scheme"] = "https"
        return environ


class ServerError(RuntimeError):
    """The server could not start (for example: the port is busy)."""


class DiscoveryServer:
    """The fake discovery service on a real socket, for subprocesses such as ``etcd``.

    :param host: address to bind, loopback by default.
    :param port: port to bind; 0 picks a free one (read it back from :attr:`port`).
    :param app: the application to serve; a new :class:`DiscoveryApp` by default,
        made from ``profile``, ``public_url`` and ``clock``.
    :param wsgi_app: the WSGI callable actually served; ``app`` by default. Give a
        dispatcher that mounts other applications in front of ``app`` (a control API)
        to serve them on the same port.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        app: DiscoveryApp | None = None,
        profile: str | Profile = "etcd-v2",
        public_url: str | None = None,
        clock: Clock | None = None,
        wsgi_app: WSGIApplication | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.app = (
            app
            if app is not None
            else DiscoveryApp(profile=profile, public_url=public_url, clock=clock)
        )
        self.wsgi_app: WSGIApplication = wsgi_app if wsgi_app is not None else self.app
        self._server: GoLikeServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Store:
        return self.app.store

    @property
    def is_running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise ServerError("the server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises :class:`ServerError` if it cannot bind."""
        if self._server is not None:
            raise ServerError("the server is already running")
        sock = self._bind()
        self.app.open()  # a restarted server carries on with the state it had
        try:
            # werkzeug dups the bound socket; binding it ourselves keeps werkzeug from
            # printing to stderr and exiting when the port is busy.
            server = GoLikeServer(
                self.host, sock.getsockname()[1], self.wsgi_app, _QuietHandler, fd=sock.fileno()
            )
        finally:
            sock.close()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits for the loop to look up: keep that to ~10 ms.
            kwargs={"poll_interval": 0.01},
            name=f"etcd-discovery-fake:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        """Serve a connection accepted elsewhere (the TLS front's) like one of our own."""
        server = self._server
        if server is None:
            request.close()
            raise ServerError("the server is not running")
        server.process_request(request, client_address)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # A restarted server may reuse a port whose old connections are in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            raise ServerError(
                f"cannot listen on {self.host}:{self._requested_port}: {reason.lower()}"
            ) from exc
        return sock

    def stop(self) -> None:
        """Release blocked long polls, stop serving and close the socket. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        self.app.close()
        server.shutdown()
        # Also shuts idle keep-alive connections and waits for every handler thread.
        server.server_close()
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
        where = self.url if self._server is not None else "stopped"
        return f"<DiscoveryServer {self.app.profile.name} {where}>"
