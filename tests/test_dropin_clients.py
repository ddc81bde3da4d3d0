"""Every client in the test process reaches the fake at https://discovery.etcd.io unchanged.

``requests`` is served in-process; ``urllib.request``, ``http.client``, ``httpx`` (sync and
async) and ``aiohttp`` go through the resolver/connect/trust cover to the TLS front.  Each
must get the answers ``requests`` gets: ``/new``, a token GET, a member PUT and a long poll
woken by ``clock.advance``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import responses
from dropinutil import CLIENTS, Fetch, Reply, fetch_requests, require_module

from pytest_etcd_discovery import DiscoveryHostGuardError, EtcdDiscovery
from pytest_etcd_discovery._transport import client_cover

PUBLIC = "https://discovery.etcd.io"
TOKEN_URL = re.compile(re.escape(PUBLIC) + r"/([a-f0-9]{32})")
pytestmark = pytest.mark.etcd_discovery


def _normal(body: str, token: str) -> dict[str, Any]:
    """An etcd reply with the token and the store indexes taken out (they differ between
    two tokens that went through the same steps)."""
    data = json.loads(body.replace(token, "T"))

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("createdIndex", "modifiedIndex", "expiration"):
                node.pop(key, None)
            for child in node.get("nodes") or []:
                strip(child)

    strip(data.get("node"))
    strip(data.get("prevNode"))
    return data


def _steps(fetch: Fetch, disco: EtcdDiscovery) -> list[tuple[int, str, Any]]:
    """/new, a member PUT, a token GET and a long poll woken by the clock, as one client
    sees them: (status, content type, normalised body) for each."""
    status, headers, body = fetch("GET", f"{PUBLIC}/new?size=3", None)
    match = TOKEN_URL.fullmatch(body)
    assert match, body
    token_url, token = body, match.group(1)
    seen: list[tuple[int, str, Any]] = [(status, headers.get("content-type", ""), "<token url>")]

    status, headers, body = fetch(
        "PUT", f"{token_url}/m1?prevExist=false", {"value": "m1=http://10.0.0.1:2380"}
    )
    seen.append((status, headers.get("content-type", ""), _normal(body, token)))
    status, headers, body = fetch("PUT", f"{token_url}/m2", {"value": "m2", "ttl": "5"})
    seen.append((status, headers.get("content-type", ""), _normal(body, token)))
    status, headers, body = fetch("GET", token_url, None)
    reply = _normal(body, token)
    reply["node"]["nodes"] = sorted(reply["node"]["nodes"], key=lambda n: n["key"])
    for node in reply["node"]["nodes"]:
        node.pop("ttl", None)  # seconds left: the clock runs between the two clients
    seen.append((status, headers.get("content-type", ""), reply))

    # The long poll waits in another thread until m2's TTL runs out on the test's clock.
    result: list[Reply] = []
    poll = threading.Thread(
        target=lambda: result.append(fetch("GET", f"{token_url}?wait=true&recursive=true", None))
    )
    poll.start()
    assert disco.app.store.wait_for_watchers(1, timeout=30)
    disco.clock.advance(6)
    poll.join(30)
    assert result, "the long poll was not woken by clock.advance"
    status, headers, body = result[0]
    seen.append((status, headers.get("content-type", ""), _normal(body, token)))
    return seen


@pytest.mark.parametrize("client", [c for c in CLIENTS if c != "requests"])
def test_client_gets_the_answers_requests_gets(client: str, etcd_discovery: EtcdDiscovery) -> None:
    fetch = CLIENTS[client]
    got = _steps(fetch, etcd_discovery)
    expected = _steps(fetch_requests, etcd_discovery)
    assert got == expected
    assert [s for s, _, _ in got] == [200, 201, 201, 200, 200]
    assert got[-1][2]["action"] == "expire"
    # Both clients' requests are in the journal: this one's over TLS (the live server),
    # requests' in-process.
    transports = [c.transport for c in etcd_discovery.calls]
    assert transports == ["live"] * 5 + ["inprocess"] * 5


@pytest.mark.parametrize("client", list(CLIENTS))
def test_no_lookup_of_a_discovery_host_leaves(
    client: str, etcd_discovery: EtcdDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    real = client_cover._real_getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        return real(host, *args, **kwargs)

    # Whatever reaches the real resolver is recorded; the discovery host must not.
    monkeypatch.setattr(client_cover, "_real_getaddrinfo", recording)
    aiodns = sys.modules.get("aiodns")
    if aiodns is not None:
        # c-ares (aiohttp's AsyncResolver) must not be asked either.
        real_aiodns = aiodns.DNSResolver.getaddrinfo

        def recording_aiodns(self: Any, host: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(host)
            return real_aiodns(self, host, *args, **kwargs)

        monkeypatch.setattr(aiodns.DNSResolver, "getaddrinfo", recording_aiodns)
    status, _, body = CLIENTS[client]("GET", f"{PUBLIC}/new?size=3", None)
    assert status == 200 and TOKEN_URL.fullmatch(body)
    for spelling in ("discovery.etcd.io", "DISCOVERY.etcd.IO.", b"discovery.etcd.io"):
        (family, _, _, _, address), *more = socket.getaddrinfo(spelling, 443)
        assert (family, address, more) == (socket.AF_INET, (client_cover.SENTINEL, 443), [])
    assert not [h for h in asked if "etcd.io" in str(h).lower()]


def test_guard_names_the_host_and_the_fix(etcd_discovery: EtcdDiscovery) -> None:
    # A client that resolves the name without a port and connects to the address itself
    # cannot be served: it fails at once instead of reaching the public service.
    with pytest.raises(DiscoveryHostGuardError) as caught:
        socket.gethostbyname("discovery.etcd.io")
    message = str(caught.value)
    assert "'discovery.etcd.io'" in message
    assert "etcd_discovery_hosts" in message and "etcd_discovery.env()" in message
    with pytest.raises(DiscoveryHostGuardError):
        socket.gethostbyname_ex("Discovery.Etcd.IO")
    # IPv6 only: the fake listens on IPv4.
    with pytest.raises(DiscoveryHostGuardError, match="IPv6"):
        socket.getaddrinfo("discovery.etcd.io", 443, socket.AF_INET6)


def test_guard_refuses_a_port_the_fake_does_not_serve(etcd_discovery: EtcdDiscovery) -> None:
    # http://discovery.etcd.io (port 80) and :8443 are not served (only https on 443).
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen("http://discovery.etcd.io/new?size=3", timeout=5)
    assert isinstance(caught.value.reason, DiscoveryHostGuardError)
    assert "discovery.etcd.io:80" in str(caught.value.reason)
    assert "https://discovery.etcd.io" in str(caught.value.reason)
    httpx = require_module("httpx")
    with pytest.raises(httpx.ConnectError, match=r"discovery\.etcd\.io:8443"):
        httpx.get("https://discovery.etcd.io:8443/new", timeout=5)
    with pytest.raises(DiscoveryHostGuardError):
        socket.create_connection(("discovery.etcd.io", 80), timeout=5)


@pytest.fixture
def other_host() -> Iterator[str]:
    """A loopback HTTP server standing for any other service the code under test calls."""

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from elsewhere"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    # shutdown() waits for the loop to look up: every 10 ms, not the default 0.5 s.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_other_hosts_are_untouched(etcd_discovery: EtcdDiscovery, other_host: str) -> None:
    with urllib.request.urlopen(other_host, timeout=10) as reply:
        assert reply.read() == b"hello from elsewhere"
    assert socket.getaddrinfo("localhost", 80, socket.AF_INET)[0][4][0] == "127.0.0.1"
    assert etcd_discovery.calls == []


def test_a_responses_mock_of_another_host_and_the_fake_in_one_test(
    etcd_discovery: EtcdDiscovery,
) -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://api.example.test/config", json={"size": 3})
        etcd_discovery.add_to(mock)
        size = requests.get("https://api.example.test/config", timeout=5).json()["size"]
        token_url = requests.get(f"{PUBLIC}/new?size={size}", timeout=5).text
        assert TOKEN_URL.fullmatch(token_url)
        assert etcd_discovery.token(token_url).size == 3
    assert [(c.method, c.path, c.status) for c in etcd_discovery.calls] == [("GET", "/new", 200)]


def test_without_add_to_an_own_mock_refuses_the_discovery_host(
    etcd_discovery: EtcdDiscovery,
) -> None:
    # What add_to() is for: responses' own answer to a host it was not told about.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get("https://api.example.test/config", json={})
        with pytest.raises(requests.ConnectionError, match="Connection refused by Responses"):
            requests.get(f"{PUBLIC}/new?size=3", timeout=5)


@responses.activate
def test_responses_activate_passes_discovery_hosts_through(etcd_discovery: EtcdDiscovery) -> None:
    # The default mock gets the passthru automatically while the fake is on.
    responses.get("https://api.example.test/config", json={"size": 5})
    size = requests.get("https://api.example.test/config", timeout=5).json()["size"]
    token_url = requests.get(f"{PUBLIC}/new?size={size}", timeout=5).text
    assert etcd_discovery.token(token_url).size == 5
    # responses journals what it answered; the fake journals what passed through to it.
    assert [c.request.url for c in responses.calls] == ["https://api.example.test/config"]
    assert [(c.method, c.path, c.transport) for c in etcd_discovery.calls] == [
        ("GET", "/new", "live")
    ]
