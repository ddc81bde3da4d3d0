"""Hostile input: malformed, absurd and abusive requests get the real service's answer,
never a 500, a traceback or a hung thread.

Requests go out as raw bytes over a socket (``requests`` would re-quote bad escapes and
refuse odd methods), once to the fake and once to the real stack (``discovery.etcd.io``
in front of etcd 3.4); replies are compared after normalisation (token, indexes,
expiration instants). Without the real binaries the comparisons skip ("real binaries
missing") and the fake-only checks still run.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from unitutil import wait_until

from pytest_etcd_discovery._real.processes import RealDiscoveryService
from pytest_etcd_discovery._transport.server import DiscoveryServer

FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
#: Index-like fields: the two stores count differently (real etcd has other writers).
INDEX_FIELDS = {"modifiedIndex", "createdIndex", "index"}


@dataclass
class RawReply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    closed_without_reply: bool = False


def send_raw(url: str, data: bytes, timeout: float = 15) -> RawReply:
    """Send ``data`` as is; read the reply until the server closes or Content-Length."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
    if not buf:
        return RawReply(0, "", {}, b"", closed_without_reply=True)
    head, _, body = buf.partition(b"\r\n\r\n")
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        body = _dechunk(body)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawReply(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def new_token(url: str) -> str:
    reply = requests.get(f"{url}/new", timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.text.rsplit("/", 1)[1]


def _norm_json(value: Any, token: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in INDEX_FIELDS:
                out[key] = "<index>"
            elif key == "expiration":
                out[key] = "<exp>"
            else:
                out[key] = _norm_json(item, token)
        return out
    if isinstance(value, list):
        return [_norm_json(v, token) for v in value]
    if isinstance(value, str):
        return value.replace(token, "<T>")
    return value


def normalise(reply: RawReply, token: str) -> dict[str, Any]:
    """What must agree: status, content type, the body (JSON parsed), closing."""
    out: dict[str, Any] = {"status": reply.status, "closed": reply.closed_without_reply}
    ctype = reply.headers.get("content-type")
    out["content-type"] = ctype
    if ctype == "application/json":
        out["body"] = _norm_json(json.loads(reply.body), token)
    else:
        text = reply.body.decode("utf-8", "replace").replace(token, "<T>")
        # /new hands out "<its public URL>/<new token>": the URLs differ by design.
        out["body"] = re.sub(r"^\S*/[a-f0-9]{32}$", "<URL>/<new token>", text)
    if reply.status in (400, 431, 505) and ctype and ctype.startswith("text/plain"):
        out["reason"] = reply.reason  # Go puts the detail in the status line too
    return out


def req(line: bytes, body: bytes = b"", headers: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return line + b"\r\nHost: x\r\n" + headers + length + b"Connection: close\r\n\r\n" + body


# (id, raw request with {T} for a fresh token)
CASES: list[tuple[str, bytes]] = [
    ("uppercase-token", req(b"GET /{T:upper} HTTP/1.1")),
    ("short-token", req(b"GET /{T:short} HTTP/1.1")),
    ("bad-escape-in-path", req(b"GET /{T}/%zz HTTP/1.1")),
    ("truncated-escape-in-path", req(b"PUT /{T}/%e HTTP/1.1")),
    ("bad-escape-in-query", req(b"GET /{T}?recursive=%zz HTTP/1.1")),
    ("semicolon-in-query", req(b"GET /{T}?recursive=true;sorted=true HTTP/1.1")),
    ("raw-non-utf8-in-path", req(b"PUT /{T}/\xff\xfe HTTP/1.1")),
    ("escaped-non-utf8-in-path", req(b"PUT /{T}/%ff HTTP/1.1")),
    ("non-utf8-value", req(b"PUT /{T}/v HTTP/1.1", b"value=%ff%fe", FORM)),
    ("raw-non-utf8-body", req(b"PUT /{T}/v HTTP/1.1", b"value=\xff\xfe", FORM)),
    ("control-byte-in-path", req(b"GET /{T}/a\x01b HTTP/1.1")),
    ("ttl-int64-max", req(b"PUT /{T}/t?ttl=9223372036854775807 HTTP/1.1", b"value=x", FORM)),
    ("ttl-2^63", req(b"PUT /{T}/t?ttl=9223372036854775808 HTTP/1.1")),
    ("ttl-uint64-max", req(b"PUT /{T}/t?ttl=18446744073709551615 HTTP/1.1")),
    ("ttl-2^64", req(b"PUT /{T}/t?ttl=18446744073709551616 HTTP/1.1")),
    ("ttl-1e10", req(b"PUT /{T}/t?ttl=10000000000 HTTP/1.1", b"value=x", FORM)),
    ("ttl-overflow-edge", req(b"PUT /{T}/t?ttl=9223372037 HTTP/1.1")),
    ("ttl-negative", req(b"PUT /{T}/t?ttl=-1 HTTP/1.1")),
    ("ttl-float", req(b"PUT /{T}/t?ttl=1.5 HTTP/1.1")),
    ("ttl-word", req(b"PUT /{T}/t?ttl=forever HTTP/1.1")),
    ("wait-index-2^64", req(b"GET /{T}?wait=true&waitIndex=18446744073709551616 HTTP/1.1")),
    ("wait-index-word", req(b"GET /{T}?wait=true&waitIndex=next HTTP/1.1")),
    ("prev-index-max", req(b"PUT /{T}/m?prevIndex=18446744073709551615 HTTP/1.1")),
    ("prev-index-negative", req(b"PUT /{T}/m?prevIndex=-5 HTTP/1.1")),
    ("wait-on-put", req(b"PUT /{T}/m?wait=true HTTP/1.1")),
    ("unknown-method", req(b"FOO /{T} HTTP/1.1")),
    ("patch-member", req(b"PATCH /{T}/m HTTP/1.1")),
    ("options-token", req(b"OPTIONS /{T} HTTP/1.1")),
    ("post-member", req(b"POST /{T}/m HTTP/1.1", b"value=x", FORM)),
    ("delete-token", req(b"DELETE /{T} HTTP/1.1")),
    ("deep-path", req(b"GET /{T}/a/b/c/d/e/f/g HTTP/1.1")),
    ("encoded-slash", req(b"GET /{T}/a%2Fb HTTP/1.1")),
    ("dot-dot", req(b"GET /{T}/../new HTTP/1.1")),
    ("dot-dot-escaped-cr", req(b"GET /{T}/../%0D HTTP/1.1")),
    ("dot-dot-reserved", req(b"GET /{T}/../a%20b(c)!*' HTTP/1.1")),
    ("dot-escaped-question-mark", req(b"GET /{T}/./%3F HTTP/1.1")),
    ("dot-dot-invalid-utf8", req(b"GET /{T}/../\x80%ff HTTP/1.1")),
    ("double-slash-invalid-utf8", req(b"GET //\x80 HTTP/1.1")),
    ("hidden-config-dir", req(b"GET /{T}/_config HTTP/1.1")),
    ("absolute-uri", req(b"GET http://example.invalid/{T} HTTP/1.1")),
    ("space-in-path", req(b"GET /{T}/a b HTTP/1.1")),
    ("http-0.9", b"GET /{T}\r\n\r\n"),
    ("tls-hello", b"\x16\x03\x01\x00\xa5\x01\x00\r\n\r\n"),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("http-2.0-version", b"GET /{T} HTTP/2.0\r\nHost: x\r\n\r\n"),
    ("missing-host", b"GET /{T} HTTP/1.1\r\n\r\n"),
    ("non-ascii-host", b"GET /new HTTP/1.1\r\nHost: \xc3\xa9.example\r\n\r\n"),
    ("high-byte-host", b"GET /{T} HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n"),
    ("http-1.0-high-byte-host", b"GET /health HTTP/1.0\r\nHost: a\x80b\r\n\r\n"),
    ("at-in-host", b"GET /new HTTP/1.1\r\nHost: user@x\r\n\r\n"),
    ("non-ascii-url-host", req(b"GET http://\xc3\xa9.example/new HTTP/1.1")),
    ("header-without-colon", b"GET /{T} HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
    ("bad-content-length", b"PUT /{T}/m HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
    (
        "chunked-body",
        b"PUT /{T}/ch HTTP/1.1\r\nHost: x\r\n" + FORM + b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n7\r\nvalue=1\r\n0\r\n\r\n",
    ),
    (
        "bad-chunk-size",
        b"PUT /{T}/ch HTTP/1.1\r\nHost: x\r\n" + FORM + b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\nvalue=1\r\n0\r\n\r\n",
    ),
    ("long-key-4k", req(b"PUT /{T}/" + b"k" * 4000 + b" HTTP/1.1", b"value=x", FORM)),
    ("new-size-huge", req(b"GET /new?size=99999999999999999999 HTTP/1.1")),
    ("new-size-negative", req(b"GET /new?size=-3 HTTP/1.1")),
]


def render(template: bytes, token: str) -> bytes:
    return (
        template.replace(b"{T:upper}", token.upper().encode())
        .replace(b"{T:short}", token[:31].encode())
        .replace(b"{T}", token.encode())
    )


@pytest.fixture(scope="module")
def hostile_fake() -> Iterator[DiscoveryServer]:
    with DiscoveryServer() as server:
        yield server


def assert_healthy(url: str) -> None:
    reply = requests.get(f"{url}/health", timeout=10)
    assert (reply.status_code, reply.text) == (200, "OK")


@pytest.mark.parametrize(("case", "template"), CASES, ids=[c[0] for c in CASES])
def test_fake_answers_without_failing(
    hostile_fake: DiscoveryServer, case: str, template: bytes
) -> None:
    token = new_token(hostile_fake.url)
    reply = send_raw(hostile_fake.url, render(template, token))
    assert not reply.closed_without_reply, case
    assert reply.status < 500 or reply.status == 505, (reply.status, reply.body[:300])
    assert b"Traceback" not in reply.body
    assert_healthy(hostile_fake.url)


@pytest.mark.real
@pytest.mark.parametrize(("case", "template"), CASES, ids=[c[0] for c in CASES])
def test_fake_answers_like_the_real_service(
    real_service: RealDiscoveryService,
    fake_service: DiscoveryServer,
    case: str,
    template: bytes,
) -> None:
    replies = {}
    for name, url in (("real", real_service.url), ("fake", fake_service.url)):
        token = new_token(url)
        replies[name] = normalise(send_raw(url, render(template, token)), token)
    assert replies["fake"] == replies["real"]


# -- sizes and volume --------------------------------------------------------------------


@pytest.mark.real
def test_form_body_limit_matches_real(
    real_service: RealDiscoveryService, fake_service: DiscoveryServer
) -> None:
    """Go's ParseForm refuses urlencoded bodies over 10 MiB: etcd answers 210. (etcd's
    --max-request-bytes, 1.5 MiB, applies to gRPC and raft, not to v2 PUTs: a 2 MiB
    value is stored, measured on etcd 3.4.23.)"""
    over = b"value=" + b"v" * (10 * 1024 * 1024 + 1)
    under = b"value=" + b"v" * (2 * 1024 * 1024)
    results = {}
    for name, url in (("real", real_service.url), ("fake", fake_service.url)):
        token = new_token(url)
        big = normalise(send_raw(url, req(f"PUT /{token}/b HTTP/1.1".encode(), over, FORM)), token)
        ok = send_raw(url, req(f"PUT /{token}/ok HTTP/1.1".encode(), under, FORM))
        stored = requests.get(f"{url}/{token}/ok", timeout=30).json()["node"]["value"]
        results[name] = (big, ok.status, len(stored))
    assert results["fake"] == results["real"]
    assert results["fake"][0]["body"]["cause"] == "http: POST too large"
    assert results["fake"][1:] == (201, 2 * 1024 * 1024)


@pytest.mark.real
def test_deep_keys_match_real(
    real_service: RealDiscoveryService, fake_keys_service: DiscoveryServer
) -> None:
    """The generic keys API (a custom discovery URL) with a 100-level deep key."""
    depth = "/".join(f"d{i}" for i in range(100))
    results = {}
    for name, base in (
        ("real", f"{real_service.etcd_url}/v2/keys"),
        ("fake", fake_keys_service.url),
    ):
        if name == "fake":
            base = f"{base}/v2/keys"
        root = f"hostile-{time.monotonic_ns()}"
        put = requests.put(f"{base}/{root}/{depth}", data={"value": "x"}, timeout=10)
        listing = requests.get(f"{base}/{root}?recursive=true", timeout=10)
        node = listing.json()["node"]
        levels = 0
        while node.get("nodes"):
            node = node["nodes"][0]
            levels += 1
        results[name] = (put.status_code, listing.status_code, levels, node["key"].count("/"))
    assert results["fake"] == results["real"] == (201, 200, 100, 101)


def test_thousands_of_keys_in_one_token(hostile_fake: DiscoveryServer) -> None:
    app = hostile_fake.app
    token = new_token(hostile_fake.url)
    count = 3000
    for i in range(count):
        status, _, _ = app.answer_url(
            "PUT", f"{hostile_fake.url}/{token}/m{i:05d}", form={"value": f"v{i}"}
        )
        assert status == 201
    start = time.monotonic()
    listing = requests.get(f"{hostile_fake.url}/{token}?sorted=true", timeout=30)
    took = time.monotonic() - start
    nodes = listing.json()["node"]["nodes"]
    assert [n["key"].rsplit("/", 1)[1] for n in nodes] == [f"m{i:05d}" for i in range(count)]
    assert took < 5, f"listing {count} keys took {took:.1f} s"
    # History keeps the last 1000 events: the last member's replays, the first's is gone.
    last, first = nodes[-1]["createdIndex"], nodes[0]["createdIndex"]
    base = f"{hostile_fake.url}/{token}?wait=true&recursive=true&waitIndex="
    assert requests.get(f"{base}{last}", timeout=10).json()["node"]["key"].endswith("/m02999")
    cleared = requests.get(f"{base}{first}", timeout=10)
    assert (cleared.status_code, cleared.json()["errorCode"]) == (400, 401)


def test_slowloris_connections_do_not_starve_the_server() -> None:
    """Idle, half-sent requests hold a thread each but never block other clients, and
    stopping the server does not wait for them."""
    with DiscoveryServer() as server:
        host, port, url = server.host, server.port, server.url
        idle: list[socket.socket] = []
        try:
            for _ in range(100):
                sock = socket.create_connection((host, port), timeout=5)
                sock.sendall(b"GET /new HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
                idle.append(sock)
            start = time.monotonic()
            for _ in range(10):
                assert requests.get(f"{url}/health", timeout=5).text == "OK"
            assert time.monotonic() - start < 5
            stop_started = time.monotonic()
            server.stop()
            assert time.monotonic() - stop_started < 3
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{url}/health", timeout=2)
        finally:
            for sock in idle:
                sock.close()


def test_hung_clients_release_their_threads() -> None:
    """Clients that vanish mid-request (sent headers promising a body, then closed)
    leave no handler thread behind."""
    with DiscoveryServer() as server:
        token = new_token(server.url)
        before = threading.active_count()
        for _ in range(50):
            sock = socket.create_connection((server.host, server.port), timeout=5)
            sock.sendall(
                f"PUT /{token}/m HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nvalue=".encode()
            )
            sock.close()
        wait_until(
            lambda: threading.active_count() <= before + 2,
            lambda: f"the cut-off uploads' threads end ({threading.active_count() - before} left)",
        )
        assert_healthy(server.url)


@pytest.mark.real
def test_lowercase_method_is_not_get(
    real_service: RealDiscoveryService, fake_service: DiscoveryServer
) -> None:
    """Go matches methods case-sensitively: "get" on a token route is a 405."""
    replies = {}
    for name, url in (("real", real_service.url), ("fake", fake_service.url)):
        token = new_token(url)
        replies[name] = normalise(send_raw(url, req(f"get /{token} HTTP/1.1".encode())), token)
    assert replies["fake"] == replies["real"]
    assert replies["fake"]["status"] == 405


def test_request_line_limit_is_go_header_limit(hostile_fake: DiscoveryServer) -> None:
    """Go accepts request lines up to its 1 MiB (+4 KiB) header limit, then says 431;
    Python's own limit (64 KiB, 414) must not show. (The real proxy forwards a long key
    to etcd, whose cmux drops a fresh connection whose request line passes 4 KiB:
    whether a long key works there depends on connection reuse, so no comparison.)"""
    token = new_token(hostile_fake.url)
    long_key = send_raw(
        hostile_fake.url, req(f"PUT /{token}/{'k' * 70_000} HTTP/1.1".encode(), b"value=x", FORM)
    )
    assert (long_key.status, long_key.reason) == (201, "Created")
    too_long = send_raw(
        hostile_fake.url, req(f"GET /{token}/{'k' * ((1 << 20) + 5000)} HTTP/1.1".encode())
    )
    assert (too_long.status, too_long.body) == (431, b"431 Request Header Fields Too Large")
    assert_healthy(hostile_fake.url)


@pytest.mark.parametrize("host", [b"\xc3\xa9.example", b"\xff", b"a\x80b", b"user@x"])
def test_a_host_header_go_refuses_gets_its_400(hostile_fake: DiscoveryServer, host: bytes) -> None:
    """httpguts.ValidHostHeader is ASCII only (the real service answers these 400; the
    fake answered 200 with the token URL ``http:/<token>``)."""
    reply = send_raw(hostile_fake.url, b"GET /new HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert (reply.status, reply.reason) == (400, "Bad Request: malformed Host header")
    assert reply.body == b"400 Bad Request: malformed Host header"
    assert reply.headers["connection"] == "close"


def test_a_non_ascii_url_host_hands_out_a_whole_url(hostile_fake: DiscoveryServer) -> None:
    """Go takes the absolute URL's non-ASCII host; the token URL is then the fake's own
    (as the real service always hands out its own), never ``http:/<token>``."""
    reply = send_raw(hostile_fake.url, req(b"GET http://\xc3\xa9.example/new HTTP/1.1"))
    assert reply.status == 200
    assert re.fullmatch(rf"{re.escape(hostile_fake.url)}/[a-f0-9]{{32}}", reply.body.decode())


# -- a head trickled a byte at a time: one deadline for the whole head -------------------

#: The short head deadline these tests set, and the trickle's pace: the head below takes
#: about 40 intervals, several times the deadline, while no single gap comes near it.
SHORT_DEADLINE = 0.4
TRICKLE_GAP = 0.05


def trickle(address: tuple[str, int], data: bytes) -> tuple[int, bytes]:
    """Send ``data`` a byte per :data:`TRICKLE_GAP`, the gap being a wait for the server
    to close (a ``recv`` with that timeout). Returns how many bytes went out before the
    server closed (``len(data)`` if it never did) and what it sent back."""
    with socket.create_connection(address, timeout=10) as sock:
        for sent in range(len(data)):
            try:
                sock.sendall(data[sent : sent + 1])
            except OSError:
                return sent, b""  # closed under us
            sock.settimeout(TRICKLE_GAP)
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                continue  # still open: the next byte
            except OSError:
                return sent + 1, b""
            return sent + 1, reply
    return len(data), b""


TRICKLED_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n"


def test_a_trickled_head_is_cut_at_the_head_deadline() -> None:
    """Go's ReadHeaderTimeout: one deadline for the whole head, not a timeout per read
    (each byte here comes well within the deadline); cut without a reply, as Go does."""
    server = DiscoveryServer()
    server.head_timeout = SHORT_DEADLINE
    with server:
        sent, reply = trickle((server.host, server.port), TRICKLED_HEAD)
        assert sent < len(TRICKLED_HEAD), "the trickled head was served to its end"
        assert reply == b""
        assert_healthy(server.url)


def test_the_head_deadline_spares_an_idle_kept_connection_and_a_whole_head() -> None:
    """The deadline runs from a request's first byte on a kept connection: waiting
    between requests (Go's IdleTimeout, unset) is not cut, and a head sent at once is."""
    server = DiscoveryServer()
    server.head_timeout = SHORT_DEADLINE
    with server, socket.create_connection((server.host, server.port), timeout=10) as sock:
        ask = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(ask)
        assert sock.recv(65536).endswith(b"\r\n\r\nOK")
        sock.settimeout(SHORT_DEADLINE * 3)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # idle past the deadline: still open, nothing sent
        sock.settimeout(10)
        sock.sendall(ask)
        assert sock.recv(65536).endswith(b"\r\n\r\nOK")


def test_the_front_cuts_a_trickled_head_and_handshake_at_its_deadline() -> None:
    """The TLS + proxy front: a proxy request head or a TLS ClientHello trickled a byte
    at a time is cut at one deadline (it was 10 s per read)."""
    from pytest_etcd_discovery._transport.proxy import DiscoveryFront
    proxied = b"GET http://discovery.etcd.io/health HTTP/1.1\r\nHost: discovery.etcd.io\r\n\r\n"
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="discovery.etcd.io")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    with DiscoveryServer() as server:
        front = DiscoveryFront(server, ["https://discovery.etcd.io"])  # the process's test CA
        front.head_timeout = SHORT_DEADLINE
        with front:
            for data in (proxied, hello):
                sent, reply = trickle(("127.0.0.1", front.port), data)
                assert sent < len(data), data[:20]
                assert reply == b""
