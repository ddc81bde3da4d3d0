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

The front runs on the live server's event loop (:mod:`.loop`): no thread per connection
or tunnel. A TLS handshake is stepped on readiness (a non-blocking
:class:`ssl.SSLSocket`), so a client that stalls mid-handshake holds up nobody; a
discovery connection is then handed to the server as it is (TLS or plain, with the bytes
already read), and a tunnel to another host copies through two bounded buffers.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from .hosts import HostMap, canonical_name, is_loopback
from .loop import EventLoop, Timer
from .server import DiscoveryServer, GoHTTPServer, ServerError, connect_host, url_host
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
#: Bytes a tunnel holds per direction before it stops reading that side.
_TUNNEL_BUFFER = 256 << 10


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
        self._listener: socket.socket | None = None  # None: stopped
        self._listener_sock: socket.socket | None = None  # open on the loop until closed
        self._httpd: GoHTTPServer | None = None
        self._loop: EventLoop | None = None
        self._loop_ref: EventLoop | None = None  # the loop its connections live on
        self._lock = threading.Lock()
        self._open: set[_FrontConn | _Tunnel] = set()
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
        """Listen, on the running live server's event loop."""
        if self._listener is not None:
            return
        httpd = self.server.httpd  # ServerError when the server is not running
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((self.host, 0))
            listener.listen(128)
            listener.setblocking(False)
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
        self._listener = self._listener_sock = listener
        self._httpd = httpd
        self._loop = self._loop_ref = loop = httpd.loop
        # The server closes us with it (a server stopped first leaves nothing open).
        httpd.companions.append(self._close_all)
        loop.run_soon(lambda: loop.register(listener, selectors.EVENT_READ, self._on_accept))

    def stop(self) -> None:
        """Stop accepting, close every connection and tunnel the front still holds
        (those handed to the live server are the server's)."""
        listener, loop, httpd = self._listener, self._loop, self._httpd
        if listener is None or loop is None:
            return
        self._listener = self._loop = self._httpd = None
        loop.run_sync(self._close_all)
        if httpd is not None:
            with contextlib.suppress(ValueError):
                httpd.companions.remove(self._close_all)

    def _close_all(self) -> None:
        """Close the listener and every connection and tunnel (on the loop, or after it
        stopped)."""
        with self._lock:
            self._closed = True
            still_open, self._open = list(self._open), set()
            listener, self._listener_sock = self._listener_sock, None
            self._listener = None  # stopped, also when the server closed first
        if listener is not None:
            self._loop_unregister(listener)
            with contextlib.suppress(OSError):
                listener.close()
        for item in still_open:
            item.close()

    def _loop_unregister(self, sock: Any) -> None:
        if self._loop_ref is not None:
            self._loop_ref.unregister(sock)

    def __enter__(self) -> DiscoveryFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.proxy_url if self._listener is not None else "stopped"
        return f"<DiscoveryFront {where} -> {self.server!r}>"

    # -- connections ----------------------------------------------------------------

    def _keep(self, item: _FrontConn | _Tunnel) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._open.add(item)
            return True

    def _forget(self, item: _FrontConn | _Tunnel) -> None:
        with self._lock:
            self._open.discard(item)

    def _on_accept(self, events: int) -> None:
        listener = self._listener_sock
        while listener is not None and not self._closed:  # every pending one this turn
            try:
                conn, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("etcd discovery fake: front accept: %s", exc)
                return
            _no_delay(conn)
            conn.setblocking(False)
            front_conn = _FrontConn(self, conn, addr)
            if not self._keep(front_conn):
                conn.close()
                return
            front_conn.start()

    def _hand_over(self, conn: socket.socket, addr: Any, first: bytes = b"") -> None:
        """The live server serves ``conn`` from now on (``first``: bytes read already)."""
        # The server stopped meanwhile: it closed the connection.
        with contextlib.suppress(ServerError):
            self.server.process_request(conn, addr, first)

    # -- what a connection asks for -------------------------------------------------

    def _serve_http(self, conn: _FrontConn, head: bytes, extra: bytes) -> None:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        words = line.split()
        if len(words) != 3:
            conn.reply(400, "Bad Request", "400 Bad Request")
            return
        method, target, _version = words
        if method == "CONNECT":
            # Clients wait for the 200 before they send more: nothing extra to keep.
            self._serve_connect(conn, target)
            return
        if target.startswith("/"):
            # Origin form: an http:// discovery host the resolver pointed here.
            conn.hand_over(head + extra)
            return
        parts = urlsplit(target)
        try:
            target_port = parts.port
        except ValueError:  # out of 0-65535, or not a number
            target_port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or target_port == -1:
            conn.reply(400, "Bad Request", "400 Bad Request: unsupported request target")
            return
        if self.hosts.is_discovery_name(parts.hostname):
            # Absolute form for a discovery host: the live server routes it by path and
            # takes the Host from the URL.
            conn.hand_over(head + extra)
            return
        if not self.relays:
            self._refuse_relay(conn, parts.hostname, target_port or 80)
            return
        # Another host through a plain proxy: forwarded to it in origin form.
        port = target_port or (443 if parts.scheme == "https" else 80)
        origin_target = parts.path or "/"
        if parts.query:
            origin_target += "?" + parts.query
        rest = head.split(b"\r\n", 1)[1] if b"\r\n" in head else b""
        forwarded = f"{method} {origin_target} {_version}\r\n".encode("latin-1") + rest + extra
        conn.tunnel(parts.hostname, port, forwarded, established=False)

    def _serve_connect(self, conn: _FrontConn, target: str) -> None:
        host, _, port_text = target.rpartition(":")
        # Digits only, in range: socket.create_connection would take 65536 + N as N.
        if not host or not port_text.isascii() or not port_text.isdigit():
            conn.reply(400, "Bad Request", "400 Bad Request: CONNECT needs host:port")
            return
        port = int(port_text)
        if not 0 < port <= 65535:
            conn.reply(400, "Bad Request", f"400 Bad Request: port out of range: {port_text}")
            return
        scheme = self.hosts.scheme(host, port)
        if scheme == "https":
            conn.send(_ESTABLISHED)
            conn.start_tls()  # with a deadline of its own, from now
            return
        if scheme == "http":
            conn.send(_ESTABLISHED)
            conn.hand_over(b"")
            return
        if self.hosts.is_discovery_name(host):
            # A discovery host on a port the fake does not serve: never let it out.
            served = ", ".join(self.hosts.served(host))
            conn.reply(
                403,
                "Forbidden",
                f"etcd discovery fake: {host}:{port} is a discovery host but the fake serves "
                f"only {served}; add the URL to etcd_discovery_hosts to serve it",
            )
            return
        if not self.relays:
            self._refuse_relay(conn, host, port)
            return
        conn.tunnel(canonical_name(host), port, b"", established=True)

    def _refuse_relay(self, conn: _FrontConn, host: str, port: int) -> None:
        conn.reply(
            403,
            "Forbidden",
            f"etcd discovery fake: the front listens on {self.host}, beyond loopback, so it "
            f"relays nothing but the discovery hosts ({', '.join(self.hosts.urls)}); not "
            f"{host}:{port}",
        )

    def server_address(self) -> tuple[str, int]:
        return connect_host(self.server.host), self.server.port


_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def _no_delay(sock: socket.socket) -> None:
    # Like Go and the live server: no Nagle delay.  A TLS handshake is several small
    # writes in a row; with Nagle each waits for the peer's (delayed, ~40 ms) ACK.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _FrontConn:
    """A new connection on the front until it has said what it is (its request head,
    or its TLS handshake), all by one deadline; then handed over, tunnelled or refused."""

    def __init__(self, front: DiscoveryFront, sock: socket.socket, addr: Any) -> None:
        self.front = front
        self.loop: EventLoop = front._loop_ref  # type: ignore[assignment]
        self.sock: socket.socket = sock
        self.addr = addr
        self.buf = bytearray()
        self.closed = False
        self._timer: Timer | None = None
        self._events = 0
        self._step: Callable[[], None] = self._hello

    def start(self) -> None:
        self._timer = self.loop.call_later(self.front.head_timeout, self._timed_out)
        self._want(selectors.EVENT_READ)

    def _want(self, events: int) -> None:
        if self.closed or events == self._events:
            return
        try:
            if self._events:
                self.loop.modify(self.sock, events, self._ready)
            else:
                self.loop.register(self.sock, events, self._ready)
        except (OSError, ValueError):
            self.close()
            return
        self._events = events

    def _ready(self, events: int) -> None:
        if not self.closed:
            self._step()

    def _timed_out(self) -> None:
        self._timer = None
        self.close()  # too slow to say what it is: closed, as before, without a reply

    def _done(self) -> None:
        """This connection leaves the front's hands (handed over or tunnelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.loop.unregister(self.sock)
        self._events = 0
        self.front._forget(self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.loop.unregister(self.sock)
        self.front._forget(self)
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        # A few hundred bytes on a fresh connection: they fit its send buffer.
        with contextlib.suppress(OSError):
            self.sock.send(data)

    def reply(self, status: int, reason: str, text: str) -> None:
        body = (text + "\n").encode("utf-8")
        self.send(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
        self.close()

    # -- steps ------------------------------------------------------------------------

    def _hello(self) -> None:
        try:
            first = self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not first:
            self.close()
        elif first[0] == _TLS_HANDSHAKE:
            self.start_tls(fresh=False)
        else:
            self._step = self._head
            self._head()

    def _head(self) -> None:
        """The request head up to and including the blank line (and whatever came after
        it in the same reads, a body's start)."""
        try:
            chunk = self.sock.recv(_MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not chunk:
            self.reply(400, "Bad Request", "400 Bad Request")
            return
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0:
            head, extra = bytes(self.buf[: end + 4]), bytes(self.buf[end + 4 :])
            self.front._serve_http(self, head, extra)
        elif len(self.buf) >= _MAX_HEAD:
            self.reply(400, "Bad Request", "400 Bad Request")

    def start_tls(self, fresh: bool = True) -> None:
        """Finish the handshake here, stepped on readiness (a bad or slow client costs
        nobody else), by the deadline (a CONNECT's: from now), then hand it over."""
        if fresh:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(self.front.head_timeout, self._timed_out)
        try:
            self.sock = self.front._tls.wrap_socket(
                self.sock, server_side=True, do_handshake_on_connect=False
            )
        except (ssl.SSLError, OSError):
            self.close()
            return
        # wrap_socket made a new socket object on the same descriptor: register it anew.
        self.loop.unregister(self.sock.fileno())
        self._events = 0
        self._step = self._handshake
        self._handshake()

    def _handshake(self) -> None:
        tls = self.sock
        assert isinstance(tls, ssl.SSLSocket)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._want(selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError):
            self.close()  # an untrusting client closes with an alert; nothing to answer
            return
        self.hand_over(b"")

    def hand_over(self, first: bytes) -> None:
        self._done()
        self.closed = True
        self.front._hand_over(self.sock, self.addr, first)

    def tunnel(self, host: str, port: int, first: bytes, *, established: bool) -> None:
        self._done()
        self.closed = True
        tunnel = _Tunnel(self.front, self.loop, self.sock, host, port, first, established)
        if self.front._keep(tunnel):
            tunnel.start()
        else:
            tunnel.close()


class _Tunnel:
    """A byte tunnel to another host on the loop: a non-blocking connect, then copies
    both ways through buffers of :data:`_TUNNEL_BUFFER` bytes, ends passed on."""

    def __init__(
        self,
        front: DiscoveryFront,
        loop: EventLoop,
        client: socket.socket,
        host: str,
        port: int,
        first: bytes,
        established: bool,
    ) -> None:
        self.front = front
        self.loop = loop
        self.client = client
        self.host, self.port = host, port
        self.upstream: socket.socket | None = None
        self.established = established
        self.connected = False
        self.closed = False
        # What goes up to the other host, what comes down to the client.
        self.up = bytearray(first)
        self.down = bytearray()
        self.client_eof = self.upstream_eof = False
        self.up_shut = self.down_shut = False
        self._addresses: list[Any] = []
        self._timer: Timer | None = None
        self._registered: dict[socket.socket, int] = {}

    def start(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self._fail(exc)
            return
        self._addresses = [(info[0], info[4]) for info in infos]
        self._timer = self.loop.call_later(_CONNECT_TIMEOUT, self._connect_timed_out)
        self._try_next(None)

    def _try_next(self, error: OSError | None) -> None:
        if self.upstream is not None:
            self._unwatch(self.upstream)
            self.upstream.close()
            self.upstream = None
        if not self._addresses:
            self._fail(error or OSError("no address"))
            return
        family, address = self._addresses.pop(0)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.upstream = sock
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._try_next(OSError(code, os.strerror(code)))
            return
        self._watch(sock, selectors.EVENT_WRITE)

    def _connect_timed_out(self) -> None:
        self._timer = None
        if not self.connected:
            self._fail(TimeoutError("timed out"))

    def _fail(self, exc: OSError) -> None:
        text = f"502 Bad Gateway: {self.host}:{self.port}: {exc}"
        body = (text + "\n").encode("utf-8")
        with contextlib.suppress(OSError):
            self.client.send(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
        self.close()

    def _watch(self, sock: socket.socket, events: int) -> None:
        old = self._registered.get(sock, 0)
        if events == old or self.closed:
            return
        if not events:
            self._unwatch(sock)
            return
        callback = functools.partial(self._ready, sock)
        if old:
            self.loop.modify(sock, events, callback)
        else:
            self.loop.register(sock, events, callback)
        self._registered[sock] = events

    def _unwatch(self, sock: socket.socket) -> None:
        if self._registered.pop(sock, 0):
            self.loop.unregister(sock)

    def _ready(self, sock: socket.socket, events: int) -> None:
        if self.closed:
            return
        if not self.connected:
            assert self.upstream is not None
            code = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._try_next(OSError(code, os.strerror(code)))
                return
            self.connected = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            _no_delay(self.upstream)
            if self.established:
                self.down += _ESTABLISHED
            self._pump()
            return
        if events & selectors.EVENT_READ:
            self._read(sock)
        self._pump()

    def _read(self, sock: socket.socket) -> None:
        to_up = sock is self.client
        buf = self.up if to_up else self.down
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()  # one side broke: end both
            return
        if not data:
            if to_up:
                self.client_eof = True
            else:
                self.upstream_eof = True
            return
        buf += data

    def _pump(self) -> None:
        """Write what each side can take, pass ends on, and ask for what is next."""
        upstream = self.upstream
        if self.closed or upstream is None:
            return
        for sock, buf in ((upstream, self.up), (self.client, self.down)):
            while buf:
                try:
                    sent = sock.send(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self.close()
                    return
                del buf[:sent]
        if self.client_eof and not self.up and not self.up_shut:
            self.up_shut = True
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        if self.upstream_eof and not self.down and not self.down_shut:
            self.down_shut = True
            with contextlib.suppress(OSError):
                self.client.shutdown(socket.SHUT_WR)
        if self.up_shut and self.down_shut:
            self.close()
            return
        client_events = (
            selectors.EVENT_READ if not self.client_eof and len(self.up) < _TUNNEL_BUFFER else 0
        ) | (selectors.EVENT_WRITE if self.down else 0)
        upstream_events = (
            selectors.EVENT_READ if not self.upstream_eof and len(self.down) < _TUNNEL_BUFFER else 0
        ) | (selectors.EVENT_WRITE if self.up else 0)
        self._watch(self.client, client_events)
        self._watch(upstream, upstream_events)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.front._forget(self)
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if self._registered.pop(sock, 0):
                self.loop.unregister(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
