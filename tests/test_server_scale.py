"""The live server at scale (issue 20): one event loop takes up every connection at
once, wakes many watchers together, and a stalled client holds up nobody else.

Nothing here asserts a time: each test checks an ordering or a state (a reply came while
a stalled connection still had none; no thread was started; every descriptor is back).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import selectors
import socket
import threading
from collections.abc import Iterator

import pytest
from unitutil import WAIT, wait_until

from pytest_etcd_discovery._transport.proxy import DiscoveryFront
from pytest_etcd_discovery._transport.server import DiscoveryServer

HOSTS = ("https://discovery.etcd.io",)


@pytest.fixture(autouse=True)
def _enough_descriptors() -> Iterator[None]:
    """Room for a few thousand sockets on both sides of loopback."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if want < 4500:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _connect_all(port: int, count: int) -> list[socket.socket]:
    """``count`` sockets connecting at the same moment (non-blocking), all connected."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_WRITE)
    pending = set(socks)
    while pending:
        ready = selector.select(WAIT)
        assert ready, f"{len(pending)} of {count} connections never completed"
        for key, _ in ready:
            sock = key.fileobj  # type: ignore[assignment]
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            selector.unregister(sock)
            pending.discard(sock)  # type: ignore[arg-type]
    selector.close()
    return socks


def _send_all(socks: list[socket.socket], requests: list[bytes]) -> None:
    for sock, request in zip(socks, requests, strict=True):
        sock.setblocking(True)
        sock.sendall(request)
        sock.setblocking(False)


def _read_replies(socks: list[socket.socket], done: re.Pattern[bytes]) -> list[bytes]:
    """Read every socket until its data matches ``done`` (or it ends)."""
    selector = selectors.DefaultSelector()
    got = {sock: b"" for sock in socks}
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    pending = set(socks)
    while pending:
        ready = selector.select(WAIT)
        assert ready, f"{len(pending)} of {len(socks)} replies never came"
        for key, _ in ready:
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            data = sock.recv(65536)
            got[sock] += data
            if not data or done.search(got[sock]):
                selector.unregister(sock)
                pending.discard(sock)
    selector.close()
    return [got[sock] for sock in socks]


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
OK_REPLY = re.compile(rb"\r\n\r\nOK\Z")


def test_200_connections_opened_at_once_are_all_answered_without_a_thread_each() -> None:
    with DiscoveryServer() as server:
        threads = set(threading.enumerate())
        socks = _connect_all(server.port, 200)
        try:
            _send_all(socks, [HEALTH] * 200)
            replies = _read_replies(socks, OK_REPLY)
            assert all(reply.startswith(b"HTTP/1.1 200 OK\r\n") for reply in replies)
            assert all(OK_REPLY.search(reply) for reply in replies)
            # Every connection is still open (kept alive) and no thread was started.
            assert server.httpd.connection_count == 200
            assert set(threading.enumerate()) == threads
        finally:
            _close_all(socks)


def _get(port: int, request: bytes = HEALTH) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        return _read_replies([sock], OK_REPLY)[0]


def _has_nothing(sock: socket.socket) -> bool:
    """True when nothing (not even an end) has arrived on ``sock`` yet."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    return False


def test_a_client_that_never_sends_its_body_delays_nobody() -> None:
    with DiscoveryServer() as server:
        token = server.app.new_token(3)
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        try:
            stalled.sendall(
                f"PUT /{token}/m1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                "application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nvalue=".encode()
            )
            wait_until(lambda: server.httpd.connection_count == 1, "the server has the client")
            # Others are served while the body is still missing, on the same loop.
            for _ in range(3):
                assert _get(server.port).startswith(b"HTTP/1.1 200 OK")
            assert _has_nothing(stalled), "the stalled PUT was answered without its body"
            assert server.store.get(f"/_etcd/registry/{token}", recursive=True).node.get(
                "nodes"
            ) in (None, [])
            # The rest of the body arrives: now it is answered.
            stalled.setblocking(True)
            stalled.sendall(b"x" * 94)
            reply = _read_replies([stalled], re.compile(rb"\r\n\r\n.*\n", re.S))[0]
            assert reply.startswith(b"HTTP/1.1 201 Created")
        finally:
            stalled.close()


def test_a_stalled_tls_handshake_delays_nobody() -> None:
    with DiscoveryServer() as server, DiscoveryFront(server, HOSTS) as front:
        # A TLS record header and a few bytes of a ClientHello, then nothing.
        stalled = socket.create_connection(front.address, timeout=WAIT)
        try:
            stalled.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]))
            context = front.ca.client_context()
            for _ in range(3):
                raw = socket.create_connection(front.address, timeout=WAIT)
                with context.wrap_socket(raw, server_hostname="discovery.etcd.io") as tls:
                    tls.sendall(b"GET /health HTTP/1.1\r\nHost: discovery.etcd.io\r\n\r\n")
                    data = b""
                    while not OK_REPLY.search(data):
                        chunk = tls.recv(65536)
                        assert chunk, "the TLS client's connection ended without a reply"
                        data += chunk
                    assert data.startswith(b"HTTP/1.1 200 OK")
            assert _has_nothing(stalled), "the stalled handshake was answered or closed"
        finally:
            stalled.close()


def test_1000_watchers_are_all_woken_with_their_own_events_in_order() -> None:
    count, writes = 1000, 5
    with DiscoveryServer() as server:
        token = server.app.new_token(writes)
        start = server.store.index
        socks = _connect_all(server.port, count)
        try:
            # Watcher i waits for index start+1+(i % writes): the (i % writes)-th PUT.
            requests = [
                f"GET /{token}?wait=true&recursive=true&waitIndex={start + 1 + i % writes} "
                "HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                for i in range(count)
            ]
            threads = set(threading.enumerate())
            _send_all(socks, requests)
            assert server.store.wait_for_watchers(count, timeout=WAIT)
            assert set(threading.enumerate()) == threads  # no thread per waiting watcher
            for n in range(writes):
                server.store.set(f"/_etcd/registry/{token}/m{n}", f"peer{n}")
            replies = _read_replies(socks, re.compile(rb"\r\n\r\n[^\r]*\n"))
        finally:
            _close_all(socks)
    for i, reply in enumerate(replies):
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK"), (i, reply)
        event = json.loads(body)
        n = i % writes
        assert event["action"] == "set"
        assert event["node"]["key"] == f"/_etcd/registry/{token}/m{n}"
        assert event["node"]["modifiedIndex"] == start + 1 + n
        assert event["node"]["value"] == f"peer{n}"


def test_stop_with_1000_idle_connections_and_1000_watchers_leaves_nothing_behind() -> None:
    threads = set(threading.enumerate())
    fds = _fd_count()
    server = DiscoveryServer()
    server.start()
    try:
        token = server.app.new_token(3)
        idle = _connect_all(server.port, 1000)
        watchers = _connect_all(server.port, 1000)
        _send_all(watchers, [f"GET /{token}?wait=true HTTP/1.1\r\nHost: x\r\n\r\n".encode()] * 1000)
        assert server.store.wait_for_watchers(1000, timeout=WAIT)
        wait_until(lambda: server.httpd.connection_count == 2000, "every connection is taken up")
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        stopper.join(WAIT)
        assert not stopper.is_alive(), "stop() did not return"
        assert set(threading.enumerate()) <= threads
        # The server's 2,000 sockets, its listener and its loop's pipe are closed: what
        # is left open is the test's own 2,000 client sockets.
        assert _fd_count() == fds + 2000
        # Every client sees its connection end.
        for sock in [*idle[:50], *watchers[:50]]:
            sock.settimeout(WAIT)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
        _close_all(idle)
        _close_all(watchers)
        assert _fd_count() == fds
    finally:
        server.stop()
