"""The TLS and proxy front of the live server: ``https://discovery.etcd.io`` for real.

One loopback port in front of a :class:`~.server.DiscoveryServer`, speaking three ways
on each connection (told apart by its first bytes):

1. **TLS** (the first byte is a TLS handshake record): a client that was pointed here
   for a discovery host (the in-process resolver does that, see :mod:`.client_cover`).  The
   front finishes the handshake with a certificate from the test CA for every discovery
   host and hands the connection to the live server, which serves it like any other.
2. **An HTTP proxy** (``HTTPS_PROXY``/``HTTP_PROXY`` in a child's environment):
   ``CONNECT discovery.etcd.io:443`` is answered ``200`` and then served by the fake over
   TLS as in 1; ``CONNECT`` to any other host is a plain byte tunnel to it, so the rest of
   a program's traffic is untouched; an absolute-form ``GET http://discovery.etcd.io/...``
   is served by the fake, one for another host is forwarded to that host.  That relay
   serves the program's own traffic only while the front listens on loopback: bound
   beyond it (``0.0.0.0``, a LAN address), tunnels and forwards to other hosts are
   refused (403), or anyone who reaches the port could use it to reach any host, and the
   services on this machine's loopback.
3. **Plain HTTP** in origin form (``GET /new``): an ``http://`` discovery host that the
   in-process resolver pointed here; served by the fake.

The fake's own answers always come from the live server (its app, journal and faults).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from .hosts import HostMap, canonical_name, is_loopback
from .server import DiscoveryServer, ServerError, connect_host, url_host
from .tls import TestCA, session_ca

__all__ = ["DiscoveryFront", "HostMap", "is_loopback"]

log = logging.getLogger("pytest_etcd_discovery")

#: A request head longer than this is refused (Go's proxy-less servers allow 1 MiB; no
#: CONNECT or proxied request line needs more than a few hundred bytes).
_MAX_HEAD = 64 * 1024
#: How long a new connection may take, in all, to say what it is: its request head, or
#: its TLS handshake (a deadline, not a per-read timeout: a trickle cannot stretch it).
_HELLO_TIMEOUT = 10.0
#: How long a tunnel to another host may take to connect.
_CONNECT_TIMEOUT = 10.0
_TLS_HANDSHAKE = 0x16


class DiscoveryFront:
    """The TLS + proxy port in front of ``server`` (see the module docstring).

    :param server: the running live server that answers every discovery request.
    :param hosts: the discovery base URLs (``https://discovery.etcd.io`` and extras).
    :param ca: the test CA whose certificate the front presents (default: the process's
        CA for these hosts, :func:`~.tls.session_ca`); it must be scoped to every host.
    :param host: address to listen on (loopback; beyond it the front relays nothing but
        the discovery hosts).
    """

    #: Seconds a new connection has for its request head or TLS handshake in all.
    head_timeout = _HELLO_TIMEOUT

    def __init__(
        self,
        server: DiscoveryServer,
        hosts: Iterable[str],
        ca: TestCA | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.server = server
        self.hosts = HostMap(hosts)
        self.ca = ca if ca is not None else session_ca(self.hosts.names)
        if not self.hosts.names <= self.ca.names:
            outside = ", ".join(sorted(self.hosts.names - self.ca.names))
            raise ValueError(f"the test CA is not scoped to {outside}")
        self.host = host
        #: Whether other hosts are relayed (CONNECT tunnels, absolute-form forwards):
        #: only on loopback, where nobody but this machine reaches the port.
        self.relays = is_loopback(host)
        self._tls = self.ca.server_context(self.hosts.names)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False

    # -- life cycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the front is not running")
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        return connect_host(self.host), self.port

    @property
    def proxy_url(self) -> str:
        """``http://127.0.0.1:PORT``: what ``HTTPS_PROXY`` names."""
        return f"http://{url_host(self.host)}:{self.port}"  # 0.0.0.0 is no address to reach

    @property
    def is_running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        if self._listener is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((self.host, 0))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        if not self.relays:
            log.warning(
                "etcd discovery fake: the TLS + proxy front listens on %s, beyond loopback: "
                "it serves the discovery hosts only and refuses to tunnel or forward to "
                "any other host",
                self.host,
            )
        self._closed = False
        self._listener = listener
        self._thread = threading.Thread(
            target=self._accept_loop,
            args=(listener,),
            name=f"etcd-discovery-front:{listener.getsockname()[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection and tunnel the front still holds."""
        listener, thread = self._listener, self._thread
        if listener is None:
            return
        self._listener = self._thread = None
        with self._lock:
            self._closed = True
            still_open, self._open = list(self._open), set()
        # shutdown() wakes the accept() and every recv() blocked on these sockets.
        for sock in [listener, *still_open]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> DiscoveryFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.proxy_url if self._listener is not None else "stopped"
        return f"<DiscoveryFront {where} -> {self.server!r}>"

    # -- connections ----------------------------------------------------------------

    def _keep(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._open.add(sock)
            return True

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, addr = listener.accept()
            except OSError:
                return  # stop() shut the listener
            if not self._keep(conn):
                conn.close()
                return
            _no_delay(conn)
            threading.Thread(
                target=self._serve, args=(conn, addr), name="etcd-discovery-front-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        handed_over = False
        deadline = time.monotonic() + self.head_timeout
        try:
            conn.settimeout(self.head_timeout)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first[0] == _TLS_HANDSHAKE:
                handed_over = self._serve_tls(conn, addr, deadline)
                return
            read = _read_head(conn, deadline)
            if read is None:
                _reply(conn, 400, "Bad Request", "400 Bad Request")
                return
            head, extra = read
            handed_over = self._serve_http(conn, addr, head, extra)
        except OSError:
            return  # the client went away, or stop() closed the connection
        finally:
            self._forget(conn)
            if not handed_over:
                with contextlib.suppress(OSError):
                    conn.close()

    def _serve_tls(
        self, conn: socket.socket, addr: tuple[str, int], deadline: float | None = None
    ) -> bool:
        """Finish the handshake here (a bad client costs this thread only), by the
        ``deadline`` (a CONNECT's: now plus :attr:`head_timeout`), then let the live
        server serve the decrypted connection."""
        if deadline is None:
            deadline = time.monotonic() + self.head_timeout
        try:
            tls = self._tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            _handshake(tls, deadline)
        except (ssl.SSLError, OSError):
            return False  # an untrusting client closes with an alert; nothing to answer
        tls.settimeout(None)
        self._forget(conn)
        try:
            self.server.process_request(tls, addr)
        except ServerError:
            # The server stopped between the handshake and now: close as it would have.
            with contextlib.suppress(OSError):
                tls.close()
        return True  # the wrapped socket owns the connection now

    def _serve_http(
        self, conn: socket.socket, addr: tuple[str, int], head: bytes, extra: bytes
    ) -> bool:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        words = line.split()
        if len(words) != 3:
            _reply(conn, 400, "Bad Request", "400 Bad Request")
            return False
        method, target, _version = words
        if method == "CONNECT":
            # Clients wait for the 200 before they send more: nothing extra to keep.
            return self._serve_connect(conn, addr, target)
        if target.startswith("/"):
            # Origin form: an http:// discovery host the resolver pointed here.
            self._pipe_to(conn, self.server_address(), head + extra)
            return False
        parts = urlsplit(target)
        try:
            target_port = parts.port
        except ValueError:  # out of 0-65535, or not a number
            target_port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or target_port == -1:
            _reply(conn, 400, "Bad Request", "400 Bad Request: unsupported request target")
            return False
        if self.hosts.is_discovery_name(parts.hostname):
            # Absolute form for a discovery host: the live server routes it by path and
            # takes the Host from the URL.
            self._pipe_to(conn, self.server_address(), head + extra)
            return False
        if not self.relays:
            self._refuse_relay(conn, parts.hostname, target_port or 80)
            return False
        # Another host through a plain proxy: forwarded to it in origin form.
        port = target_port or (443 if parts.scheme == "https" else 80)
        origin_target = parts.path or "/"
        if parts.query:
            origin_target += "?" + parts.query
        rest = head.split(b"\r\n", 1)[1] if b"\r\n" in head else b""
        forwarded = f"{method} {origin_target} {_version}\r\n".encode("latin-1") + rest + extra
        self._tunnel(conn, parts.hostname, port, forwarded, established=False)
        return False

    def _serve_connect(self, conn: socket.socket, addr: tuple[str, int], target: str) -> bool:
        host, _, port_text = target.rpartition(":")
        # Digits only, in range: socket.create_connection would take 65536 + N as N.
        if not host or not port_text.isascii() or not port_text.isdigit():
            _reply(conn, 400, "Bad Request", "400 Bad Request: CONNECT needs host:port")
            return False
        port = int(port_text)
        if not 0 < port <= 65535:
            _reply(conn, 400, "Bad Request", f"400 Bad Request: port out of range: {port_text}")
            return False
        scheme = self.hosts.scheme(host, port)
        if scheme == "https":
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            return self._serve_tls(conn, addr)
        if scheme == "http":
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._pipe_to(conn, self.server_address(), b"")
            return False
        if self.hosts.is_discovery_name(host):
            # A discovery host on a port the fake does not serve: never let it out.
            served = ", ".join(self.hosts.served(host))
            _reply(
                conn,
                403,
                "Forbidden",
                f"etcd discovery fake: {host}:{port} is a discovery host but the fake serves "
                f"only {served}; add the URL to etcd_discovery_hosts to serve it",
            )
            return False
        if not self.relays:
            self._refuse_relay(conn, host, port)
            return False
        self._tunnel(conn, canonical_name(host), port, b"", established=True)
        return False

    def _refuse_relay(self, conn: socket.socket, host: str, port: int) -> None:
        _reply(
            conn,
            403,
            "Forbidden",
            f"etcd discovery fake: the front listens on {self.host}, beyond loopback, so it "
            f"relays nothing but the discovery hosts ({', '.join(self.hosts.urls)}); not "
            f"{host}:{port}",
        )

    def server_address(self) -> tuple[str, int]:
        return connect_host(self.server.host), self.server.port

    def _tunnel(
        self, conn: socket.socket, host: str, port: int, first: bytes, *, established: bool
    ) -> None:
        try:
            upstream = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
        except OSError as exc:
            _reply(conn, 502, "Bad Gateway", f"502 Bad Gateway: {host}:{port}: {exc}")
            return
        if established:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._pipe(conn, upstream, first)

    def _pipe_to(self, conn: socket.socket, address: tuple[str, int], first: bytes) -> None:
        upstream = socket.create_connection(address, timeout=_CONNECT_TIMEOUT)
        self._pipe(conn, upstream, first)

    def _pipe(self, conn: socket.socket, upstream: socket.socket, first: bytes) -> None:
        """Copy bytes both ways until both sides are done (the calling thread copies one
        way, a second thread the other)."""
        if not self._keep(upstream):
            upstream.close()
            return
        _no_delay(upstream)
        try:
            conn.settimeout(None)
            upstream.settimeout(None)
            if first:
                upstream.sendall(first)
            back = threading.Thread(
                target=_copy, args=(upstream, conn), name="etcd-discovery-tunnel", daemon=True
            )
            back.start()
            _copy(conn, upstream)
            back.join()
        finally:
            self._forget(upstream)
            with contextlib.suppress(OSError):
                upstream.close()


def _no_delay(sock: socket.socket) -> None:
    # Like Go and the live server: no Nagle delay.  A TLS handshake is several small
    # writes in a row; with Nagle each waits for the peer's (delayed, ~40 ms) ACK.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        # One side broke: end both directions so the other copier stops too.
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request head or TLS handshake took too long")
    return left


def _handshake(tls: ssl.SSLSocket, deadline: float) -> None:
    """``tls.do_handshake()`` done by ``deadline`` however slowly the client sends."""
    tls.setblocking(False)  # each wait below gets only what is left of the deadline
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            ready = select.select([tls], [], [], _left(deadline))[0]
        except ssl.SSLWantWriteError:
            ready = select.select([], [tls], [], _left(deadline))[1]
        if not ready:
            raise TimeoutError("the TLS handshake took too long")
    tls.setblocking(True)


def _read_head(conn: socket.socket, deadline: float) -> tuple[bytes, bytes] | None:
    """The request head up to and including the blank line, and whatever came after it
    in the same reads (a body's start), by ``deadline``; None when it is too long or cut
    short."""
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return bytes(data[: end + 4]), bytes(data[end + 4 :])
        if len(data) >= _MAX_HEAD:
            return None
        conn.settimeout(_left(deadline))  # each read waits only for what is left
        chunk = conn.recv(_MAX_HEAD)
        if not chunk:
            return None
        data.extend(chunk)


def _reply(conn: socket.socket, status: int, reason: str, text: str) -> None:
    body = (text + "\n").encode("utf-8")
    with contextlib.suppress(OSError):
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
