"""The TLS + proxy front on its own, on raw sockets (loopback servers only)."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from pytest_etcd_discovery.transport.proxy import DiscoveryFront
from pytest_etcd_discovery.transport.server import DiscoveryServer
from pytest_etcd_discovery.transport.tls import session_ca

HOSTS = ("https://discovery.etcd.io", "http://discovery.internal:8087")
TOKEN = r"[a-f0-9]{32}"


@pytest.fixture(scope="module")
def front() -> Iterator[DiscoveryFront]:
    with DiscoveryServer() as server, DiscoveryFront(server, HOSTS, session_ca()) as front:
        yield front


@pytest.fixture
def echo() -> Iterator[int]:
    """A loopback TCP echo server (any other host the code under test talks to)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


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
        front = DiscoveryFront(server, HOSTS, session_ca())
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
