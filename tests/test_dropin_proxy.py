"""The TLS + proxy front on its own, on raw sockets (loopback servers only)."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

from pytest_etcd_discovery._transport.proxy import DiscoveryFront
from pytest_etcd_discovery._transport.server import DiscoveryServer

HOSTS = ("https://discovery.etcd.io", "http://discovery.internal:8087")
TOKEN = r"[a-f0-9]{32}"


@pytest.fixture(scope="module")
def front() -> Iterator[DiscoveryFront]:
    with DiscoveryServer() as server, DiscoveryFront(server, HOSTS) as front:
        yield front


@pytest.fixture
def echo() -> Iterator[int]:
    """A loopback TCP echo server (any other host the code under test talks to)."""
    listener = socket.create_server(("127.0.0.1", 0))
    lock = threading.Lock()
    conns: set[socket.socket] = set()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # shut down below
            with lock:
                conns.add(conn)
            with conn:
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except OSError:
                    pass
            with lock:
                conns.discard(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        # close() alone does not wake a blocked accept() or recv() on Linux; shutdown()
        # does, so the thread ends now instead of at a join timeout.
        with lock:
            open_now = [listener, *conns]
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(10)
        assert not thread.is_alive(), "the echo server did not stop"


def _connect(front: DiscoveryFront) -> socket.socket:
    return socket.create_connection(front.address, timeout=30)


def _read_reply(sock: socket.socket | ssl.SSLSocket) -> tuple[str, bytes]:
    """A whole ``Connection: close`` reply: (status line, body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


def _connect_line(sock: socket.socket, target: str) -> str:
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    return head.split(b"\r\n", 1)[0].decode()


def test_connect_to_a_discovery_host_is_served_by_the_fake_over_tls(
    front: DiscoveryFront,
) -> None:
    with _connect(front) as raw:
        assert _connect_line(raw, "discovery.etcd.io:443") == (
            "HTTP/1.1 200 Connection established"
        )
        context = front.ca.client_context()
        with context.wrap_socket(raw, server_hostname="discovery.etcd.io") as tls:
            tls.sendall(
                b"GET /new?size=3 HTTP/1.1\r\nHost: discovery.etcd.io\r\nConnection: close\r\n\r\n"
            )
            status, body = _read_reply(tls)
    assert status == "HTTP/1.1 200 OK"
    assert re.fullmatch(rf"https://discovery\.etcd\.io/{TOKEN}", body.decode())


def test_connect_to_another_host_is_a_byte_tunnel(front: DiscoveryFront, echo: int) -> None:
    with _connect(front) as raw:
        assert _connect_line(raw, f"127.0.0.1:{echo}").startswith("HTTP/1.1 200")
        sent = b"\x16\x03\x01 not http at all \x00\xff"
        raw.sendall(sent)
        got = b""
        while len(got) < len(sent):
            got += raw.recv(64)
    assert got == sent


def test_absolute_form_for_a_discovery_host_is_served(front: DiscoveryFront) -> None:
    with _connect(front) as raw:
        raw.sendall(
            b"GET http://discovery.internal:8087/new?size=2 HTTP/1.1\r\n"
            b"Host: discovery.internal:8087\r\nConnection: close\r\n\r\n"
        )
        status, body = _read_reply(raw)
    assert status == "HTTP/1.1 200 OK"
    # The Host comes from the URL, so /new hands out the URL the client asked for.
    assert re.fullmatch(rf"http://discovery\.internal:8087/{TOKEN}", body.decode())


def test_absolute_form_for_another_host_is_forwarded_in_origin_form(
    front: DiscoveryFront,
) -> None:
    # The fake's own plain live server stands for "another host" here.
    server = front.server
    with _connect(front) as raw:
        raw.sendall(
            f"GET http://127.0.0.1:{server.port}/new?size=4 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n".encode()
        )
        status, body = _read_reply(raw)
    assert status == "HTTP/1.1 200 OK"
    assert body.decode().startswith(f"http://127.0.0.1:{server.port}/")


def test_a_discovery_host_on_a_port_not_served_is_refused(front: DiscoveryFront) -> None:
    with _connect(front) as raw:
        raw.sendall(b"CONNECT discovery.etcd.io:8443 HTTP/1.1\r\n\r\n")
        status, body = _read_reply(raw)
    assert status == "HTTP/1.1 403 Forbidden"
    assert b"discovery.etcd.io:8443" in body and b"etcd_discovery_hosts" in body


def test_bad_requests_and_unreachable_hosts(front: DiscoveryFront) -> None:
    with _connect(front) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert _read_reply(raw)[0] == "HTTP/1.1 400 Bad Request"
    with _connect(front) as raw:
        raw.sendall(b"CONNECT nohostport HTTP/1.1\r\n\r\n")
        assert _read_reply(raw)[0] == "HTTP/1.1 400 Bad Request"
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with _connect(front) as raw:
        raw.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert _read_reply(raw)[0] == "HTTP/1.1 502 Bad Gateway"


def test_a_client_that_does_not_trust_the_test_ca_fails_cleanly(front: DiscoveryFront) -> None:
    untrusting = ssl.create_default_context()  # system roots only
    with _connect(front) as raw, pytest.raises(ssl.SSLCertVerificationError):
        untrusting.wrap_socket(raw, server_hostname="discovery.etcd.io")
    # The front carries on.
    with _connect(front) as raw:
        tls = front.ca.client_context().wrap_socket(raw, server_hostname="discovery.etcd.io")
        with tls:
            tls.sendall(
                b"GET /health HTTP/1.1\r\nHost: discovery.etcd.io\r\nConnection: close\r\n\r\n"
            )
            assert _read_reply(tls)[0].startswith("HTTP/1.1 ")


def test_the_certificate_names_every_discovery_host(front: DiscoveryFront) -> None:
    for name in ("discovery.etcd.io", "discovery.internal"):
        with _connect(front) as raw:
            context = front.ca.client_context()
            with context.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.selected_alpn_protocol() in (None, "http/1.1")


def test_stop_closes_open_tunnels(echo: int) -> None:
    with DiscoveryServer() as server:
        front = DiscoveryFront(server, HOSTS)
        front.start()
        port = front.port
        raw = _connect(front)
        assert _connect_line(raw, f"127.0.0.1:{echo}").startswith("HTTP/1.1 200")
        front.stop()
        # The tunnel ends: the client reads end-of-stream instead of hanging.
        raw.settimeout(10)
        assert raw.recv(10) == b""
        raw.close()
        assert not front.is_running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), 5)


#: The front and the server must both stop well within this with a stream open (the
#: server used to wait out a 10 s join); a bound on a stall, not a timing of the happy path.
STOP_BOUND = 3.0


def _stops_within(stop: Callable[[], None], bound: float) -> bool:
    stopper = threading.Thread(target=stop, name="test-stopper", daemon=True)
    stopper.start()
    stopper.join(bound)
    return not stopper.is_alive()


@pytest.mark.parametrize("way", ["connect-tls", "absolute-form"])
def test_stop_ends_a_stream_from_a_past_index_through_the_front(way: str) -> None:
    """A ``stream=true`` watch from a past index through the front (TLS handed over to the
    server, or piped to it): stopping the front and the server ends it at once."""
    server = DiscoveryServer(keys_api=True)
    server.start()
    front = DiscoveryFront(server, HOSTS)
    front.start()
    try:
        server.store.set("/a", "1")
        raw = _connect(front)
        sock: socket.socket | ssl.SSLSocket = raw
        if way == "connect-tls":
            assert _connect_line(raw, "discovery.etcd.io:443").startswith("HTTP/1.1 200")
            sock = front.ca.client_context().wrap_socket(raw, server_hostname="discovery.etcd.io")
            target, host = "/v2/keys/a", "discovery.etcd.io"
        else:
            target, host = "http://discovery.internal:8087/v2/keys/a", "discovery.internal:8087"
        request = f"GET {target}?wait=true&stream=true&waitIndex=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"
        sock.sendall(request.encode())
        got = b""
        while b'"modifiedIndex":1' not in got:  # the past event; the stream waits on
            chunk = sock.recv(65536)
            assert chunk, "the connection ended before the first event"
            got += chunk
        assert _stops_within(front.stop, STOP_BOUND), "the front's stop() stalled"
        assert _stops_within(server.stop, STOP_BOUND), "the server's stop() stalled"
        sock.settimeout(10)
        with contextlib.suppress(ssl.SSLError, ConnectionError):  # a TLS end may be unclean
            while sock.recv(65536):
                pass
        sock.close()
    finally:
        front.stop()
        server.stop()
