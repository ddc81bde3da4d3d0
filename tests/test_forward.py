"""Forwarding to a real service: what a client gets at ``https://discovery.etcd.io`` is what
the configured service answers, byte for byte but for the host.

The differential test asks the real original service the same requests three ways:
directly, through the TLS front whose backend forwards (what ``urllib``, ``httpx``,
``aiohttp`` and child processes use in real-service mode) and in-process through the
``requests`` interception; status, headers (in order) and body must agree.
"""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pytest_etcd_discovery._service.messages import PROXIED
from pytest_etcd_discovery._transport import client_cover
from pytest_etcd_discovery._transport.client_cover import ClientCover
from pytest_etcd_discovery._transport.forward import ForwardApp, _reply_headers, forwarding_server
from pytest_etcd_discovery._transport.intercept import Interceptor
from pytest_etcd_discovery._transport.proxy import DiscoveryFront

if TYPE_CHECKING:
    from pytest_etcd_discovery._real.processes import RealDiscoveryService

PUBLIC = "https://discovery.etcd.io"
#: (status, headers in order without Date, body)
Answer = tuple[int, list[tuple[str, str]], bytes]
Ask = Callable[[str, str, "bytes | None"], Answer]


@pytest.fixture
def forwarded(
    real_service: RealDiscoveryService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ForwardApp]:
    """Real-service mode's machinery, as the plugin sets it up, in front of the real
    service; no name but loopback reaches the real resolver meanwhile."""
    real = client_cover._real_getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) not in ("127.0.0.1", "localhost"):
            raise socket.gaierror(socket.EAI_NONAME, f"test: lookup of {host!r} refused")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(client_cover, "_real_getaddrinfo", loopback_only)
    forward = ForwardApp(real_service.url)
    with (
        forwarding_server(forward) as server,
        DiscoveryFront(server, [PUBLIC]) as front,
        ClientCover([PUBLIC], lambda: front),
        Interceptor(forward, [PUBLIC]),
    ):
        assert socket.getaddrinfo is client_cover._getaddrinfo
        yield forward
        forward.close()


def _normal(answer: Answer, own: str) -> Answer:
    """Store indexes, tokens and a client's own member name taken out (each way creates
    its own member on the same token)."""
    status, headers, body = answer
    body = re.sub(rb'"(createdIndex|modifiedIndex|index)":\d+', b'"I":0', body)
    body = re.sub(rb"[a-f0-9]{32}", b"T", body.replace(own.encode(), b"M"))
    varying = ("x-etcd-index", "x-raft-index", "x-raft-term", "content-length")
    headers = [(k, "N" if k.lower() in varying else v) for k, v in headers]
    return status, headers, body


def _http_client(connect: Callable[[], http.client.HTTPConnection]) -> Ask:
    def ask(method: str, path: str, body: bytes | None) -> Answer:
        connection = connect()
        try:
            form = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
            connection.request(method, path, body=body, headers=form)
            reply = connection.getresponse()
            headers = [(k, v) for k, v in reply.getheaders() if k.lower() != "date"]
            return reply.status, headers, reply.read()
        finally:
            connection.close()

    return ask


def _requests(method: str, path: str, body: bytes | None) -> Answer:
    form = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    reply = requests.request(
        method, PUBLIC + path, data=body, headers=form, timeout=10, allow_redirects=False
    )
    headers = [(k, v) for k, v in reply.headers.items() if k.lower() != "date"]
    return reply.status_code, headers, reply.content


@pytest.mark.real
def test_every_way_gets_what_the_service_answers(
    forwarded: ForwardApp, real_service: RealDiscoveryService
) -> None:
    host, port = real_service.url.removeprefix("http://").split(":")
    ways: dict[str, Ask] = {
        "direct": _http_client(lambda: http.client.HTTPConnection(host, int(port), timeout=10)),
        "front": _http_client(lambda: http.client.HTTPSConnection("discovery.etcd.io", timeout=10)),
        "inprocess": _requests,
    }
    token = ways["direct"]("GET", "/new?size=3", None)[2].decode().rsplit("/", 1)[1]
    steps = [
        ("GET", "/new?size=3", None),
        ("PUT", f"/{token}/OWN?prevExist=false", b"value=OWN=http://10.0.0.1:2380"),
        ("PUT", f"/{token}/OWN?prevExist=false", b"value=again"),  # 412, key exists
        ("GET", f"/{token}", None),
        ("GET", f"/{token}/_config/size", None),
        ("GET", f"/{token}/missing", None),
        ("HEAD", f"/{token}", None),
        ("GET", "/health", None),
        ("POST", "/new", None),
        ("GET", "/robots.txt", None),
        ("GET", "//new", None),  # Go's redirect to the clean path
        ("GET", "/new?size=abc", None),
        ("GET", "/nope/x", None),
        ("DELETE", f"/{token}/OWN", None),
    ]
    seen: dict[str, list[Answer]] = {}
    for name, ask in ways.items():
        own = f"m-{name}"
        seen[name] = [
            _normal(
                ask(method, path.replace("OWN", own), body and body.replace(b"OWN", own.encode())),
                own,
            )
            for method, path, body in steps
        ]

    for name in ("front", "inprocess"):
        for step, got, expected in zip(steps, seen[name], seen["direct"], strict=True):
            if name == "inprocess":  # requests' headers: the same, in its own order
                got = (got[0], sorted(got[1]), got[2])
                expected = (expected[0], sorted(expected[1]), expected[2])
            assert got == expected, (name, step)
    # The token URL /new hands out is on the service's own host (not rewritten).
    assert seen["front"][0][2] == f"{real_service.url}/T".encode()


@pytest.mark.real
def test_a_head_reply_keeps_the_length_the_service_announced(
    forwarded: ForwardApp, real_service: RealDiscoveryService
) -> None:
    reply = requests.head(f"{PUBLIC}/health", timeout=10)
    direct = requests.head(f"{real_service.url}/health", timeout=10)

    assert reply.status_code == direct.status_code == 200
    assert reply.headers["Content-Length"] == direct.headers["Content-Length"] != "0"


@pytest.mark.parametrize(
    ("received", "server"),
    [
        # A Go handler's headers, sorted, then what Go's server adds.
        (
            [
                ("Content-Type", "t"),
                ("X-Content-Type-Options", "n"),
                ("Date", "d"),
                ("Content-Length", "9"),
            ],
            ("Date", "Content-Length"),
        ),
        # A reply proxied whole from etcd: every header the handler's, all sorted.
        (
            [("Content-Length", "9"), ("Content-Type", "t"), ("Date", "d"), ("X-Etcd-Index", "4")],
            PROXIED,
        ),
        # Not Go's order at all: sent sorted.
        ([("X-B", "1"), ("X-A", "2")], PROXIED),
        # Chunked (no length): the length goes last, as Go's server would put it.
        (
            [("Content-Type", "t"), ("Date", "d"), ("Transfer-Encoding", "chunked")],
            ("Content-Length",),
        ),
    ],
)
def test_reply_headers_tell_the_servers_own_from_the_handlers(
    received: list[tuple[str, str]], server: tuple[str, ...]
) -> None:
    headers, supplied = _reply_headers(received, "42")

    assert supplied == server
    assert [v for k, v in headers if k == "Content-Length"] == ["42"]
    assert not any(k.lower() == "transfer-encoding" for k, _ in headers)


def test_a_bodiless_reply_keeps_what_the_service_announced() -> None:
    assert _reply_headers([("Date", "d")], None)[0] == [("Date", "d")]
    assert _reply_headers([("Content-Length", "19")], None)[0] == [("Content-Length", "19")]
