"""Unit tests of :class:`DiscoveryServer`: the app on a real loopback socket."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import resource
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from unitutil import WAIT, wait_until

from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._transport.server import DiscoveryServer, ServerError, listen_backlog
from pytest_etcd_discovery._v2store.clock import ControllableClock


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(WAIT)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_port_zero_binds_a_free_port_and_serves() -> None:
    with DiscoveryServer() as server:
        assert server.is_running
        port = server.port
        assert port > 0
        assert server.url == f"http://127.0.0.1:{port}"
        assert repr(server) == f"<DiscoveryServer etcd-v2 http://127.0.0.1:{port}>"
        resp = requests.get(f"{server.url}/health", timeout=WAIT)
        assert (resp.status_code, resp.text) == (200, "OK")
        assert "Server" not in resp.headers  # Go's net/http sends none
    assert not server.is_running
    assert port_is_closed(port)


def test_new_hands_out_the_servers_own_url() -> None:
    with DiscoveryServer() as server:
        text = requests.get(f"{server.url}/new", timeout=WAIT).text
        assert re.fullmatch(rf"{re.escape(server.url)}/[0-9a-f]{{32}}", text)


def test_public_url_and_profile_are_passed_to_the_app() -> None:
    with DiscoveryServer(profile="discoveryserver", public_url="https://d.example") as server:
        assert server.app.profile.name == "discoveryserver"
        assert requests.get(f"{server.url}/new", timeout=WAIT).text.startswith("https://d.example/")
        assert requests.get(f"{server.url}/v2/keys/", timeout=WAIT).status_code == 404


def test_a_given_app_is_served_with_its_store() -> None:
    app = DiscoveryApp()
    token = app.new_token(1)
    with DiscoveryServer(app=app) as server:
        assert server.app is app and server.store is app.store
        resp = requests.get(f"{server.url}/{token}/_config/size", timeout=WAIT)
        assert resp.json()["node"]["value"] == "1"
        assert app.calls[-1].transport == "live"


def test_port_and_url_need_a_running_server() -> None:
    server = DiscoveryServer()
    with pytest.raises(ServerError):
        _ = server.port
    assert "stopped" in repr(server)
    server.stop()  # stopping a server that never started is fine


def test_start_twice_is_an_error_and_stop_is_idempotent() -> None:
    server = DiscoveryServer()
    server.start()
    try:
        with pytest.raises(ServerError, match="already running"):
            server.start()
    finally:
        server.stop()
    server.stop()


def test_stop_closes_the_port() -> None:
    server = DiscoveryServer()
    server.start()
    port = server.port
    assert not port_is_closed(port)
    server.stop()
    assert port_is_closed(port)


def test_a_long_poll_is_answered_by_a_write_from_another_client() -> None:
    with DiscoveryServer() as server:
        token = server.app.new_token()
        result: list[requests.Response] = []

        def poll() -> None:
            result.append(
                requests.get(f"{server.url}/{token}?wait=true&recursive=true", timeout=WAIT * 2)
            )

        thread = threading.Thread(target=poll)
        thread.start()
        assert server.store.wait_for_watchers(1, timeout=WAIT), "the long poll never registered"
        put = requests.put(f"{server.url}/{token}/m1", data={"value": "v"}, timeout=WAIT)
        assert put.status_code == 201
        thread.join(timeout=WAIT)
        assert not thread.is_alive()
        body = result[0].json()
        assert (body["action"], body["node"]["key"]) == ("set", f"/_etcd/registry/{token}/m1")


def test_stop_releases_a_blocked_long_poll_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    server = DiscoveryServer()
    server.start()
    port = server.port
    token = server.app.new_token()
    # A TTL key starts the store's expiry thread: stop() must end it too.
    server.store.set("/some/ttl/key", "v", ttl=3600)
    outcome: list[object] = []

    def poll() -> None:
        try:
            outcome.append(
                requests.get(f"{server.url}/{token}?wait=true&recursive=true", timeout=60)
            )
        except requests.RequestException as exc:  # a closed connection is fine too
            outcome.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    assert server.store.wait_for_watchers(1, timeout=WAIT), "the long poll never registered"
    started = time.monotonic()
    server.stop()
    thread.join(timeout=WAIT)
    assert not thread.is_alive(), "the long poll still blocks after stop()"
    assert time.monotonic() - started < WAIT
    assert len(outcome) == 1
    if isinstance(outcome[0], requests.Response):
        assert outcome[0].status_code == 200
        assert outcome[0].content == b""  # released with no event
    wait_until(lambda: set(threading.enumerate()) <= before, "the server's threads end")
    assert port_is_closed(port)


#: stop() with a long poll open must return well within this; it used to wait out a 10 s
#: join per handler thread (a bound on a stall, not a measure of the happy path).
STOP_BOUND = 3.0


def _stop_within(server: DiscoveryServer, bound: float) -> bool:
    """Stop ``server`` in a thread; True when stop() returned within ``bound`` seconds."""
    stopper = threading.Thread(target=server.stop, name="test-stopper", daemon=True)
    stopper.start()
    stopper.join(bound)
    return not stopper.is_alive()


@pytest.mark.parametrize("route", ["token", "keys"])
def test_stop_ends_a_stream_from_a_past_index_promptly(route: str) -> None:
    """A ``stream=true`` watch from a past ``waitIndex`` is answered from history and then
    waits for nothing (etcd registers it for no more events); stop() must still end it."""
    before = set(threading.enumerate())
    server = DiscoveryServer(keys_api=route == "keys")
    server.start()
    try:
        if route == "token":
            token = server.app.new_token(3)
            target = f"/{token}?wait=true&stream=true&recursive=true&waitIndex=1"
        else:
            server.store.set("/a", "1")
            target = "/v2/keys/a?wait=true&stream=true&waitIndex=1"
        sock = socket.create_connection((server.host, server.port), timeout=WAIT)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        if route == "keys":
            # etcd flushes at once: the past event arrives, then the stream waits on.
            head = b""
            while b'"modifiedIndex":1' not in head:
                chunk = sock.recv(65536)
                assert chunk, "the connection ended before the first event"
                head += chunk
        else:
            # The original service buffers 4 KiB: nothing arrives; wait until the fake
            # is answering the watch (its journal says the reply is streaming).
            wait_until(
                lambda: any(call.watch and call.streaming for call in server.app.calls),
                "the watch is being answered",
            )
        assert _stop_within(server, STOP_BOUND), "stop() waited on the open stream"
        # The client sees its connection end (after what was still held, if anything).
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        sock.close()
        assert not any(call.in_flight for call in server.app.calls)
        wait_until(lambda: set(threading.enumerate()) <= before, "the server's threads end")
    finally:
        server.stop()


def test_stop_ends_a_stream_that_arrives_while_stopping() -> None:
    """A watch that reaches a stopped store (a request read just as stop() began) does not
    block its handler thread either."""
    server = DiscoveryServer(keys_api=True)
    server.start()
    try:
        sock = socket.create_connection((server.host, server.port), timeout=WAIT)
        server.app.close()  # what stop() does first
        sock.sendall(b"GET /v2/keys/a?wait=true&stream=true HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"0\r\n\r\n"):  # the stream ends with no event
            chunk = sock.recv(65536)
            assert chunk, "the connection ended without a reply"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK")
        assert _stop_within(server, STOP_BOUND), "stop() waited on the open stream"
        sock.close()
    finally:
        server.stop()


def test_stop_ends_a_request_held_by_a_delay_fault_and_keeps_the_plan() -> None:
    server = DiscoveryServer()
    server.start()
    try:
        rule = server.app.faults.delay(600, route="health")
        sock = socket.create_connection((server.host, server.port), timeout=WAIT)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: rule.fired == 1, "the fault holds the request")
        assert _stop_within(server, STOP_BOUND), "stop() waited out the delay"
        assert sock.recv(65536) == b""  # dropped, as by a server that went away
        sock.close()
        assert server.app.faults.rules == [rule]  # a restarted server keeps its plan
    finally:
        server.stop()


def test_stop_names_a_connection_thread_it_could_not_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler blocked on something stop() cannot release (here a WSGI app of the
    test's own) is waited for within one bound, then named in a warning."""
    entered, release = threading.Event(), threading.Event()

    def stuck_app(environ: object, start_response: Callable[..., object]) -> list[bytes]:
        entered.set()
        release.wait(WAIT)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    server = DiscoveryServer(wsgi_app=stuck_app)  # type: ignore[arg-type]
    server.start()
    server.httpd.join_timeout = 0.1  # the bound under test; the default is 10 s
    try:
        sock = socket.create_connection((server.host, server.port), timeout=WAIT)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(WAIT)
        with caplog.at_level(logging.WARNING, logger="pytest_etcd_discovery"):
            assert _stop_within(server, STOP_BOUND)
        assert "1 connection thread(s) still running 0.1 s after stop" in caplog.text
        assert "etcd-discovery-fake:('127.0.0.1'" in caplog.text
    finally:
        release.set()
        sock.close()
        server.stop()


def test_a_busy_port_is_a_one_line_server_error(busy_port: int) -> None:
    server = DiscoveryServer(port=busy_port)
    with pytest.raises(ServerError) as err:
        server.start()
    message = str(err.value)
    assert "\n" not in message
    assert str(busy_port) in message
    assert "in use" in message
    assert not server.is_running


def test_a_busy_port_prints_nothing(busy_port: int, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ServerError):
        DiscoveryServer(port=busy_port).start()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_ipv6_loopback_url_has_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support in this Python")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with DiscoveryServer(host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert requests.get(f"{server.url}/health", timeout=WAIT).text == "OK"


def test_a_restarted_server_still_expires_keys_by_itself() -> None:
    clock = ControllableClock(start=1_700_000_000, frozen=True)
    server = DiscoveryServer(clock=clock)
    server.start()
    server.stop()
    server.start()  # e.g. a test simulating an outage of the service
    try:
        token = server.app.new_token()
        put = requests.put(f"{server.url}/{token}/m1?ttl=10", data={"value": "v"}, timeout=WAIT)
        assert put.status_code == 201
        watcher = server.store.watch(f"/_etcd/registry/{token}/m1")
        clock.advance(10)  # expires synchronously, as on a server never stopped
        event = watcher.get(timeout=0)
        assert event is not None and event.action == "expire"
    finally:
        server.stop()


def test_a_never_stopped_server_expires_keys_on_advance() -> None:
    # The control case for the restart test above.
    clock = ControllableClock(start=1_700_000_000, frozen=True)
    with DiscoveryServer(clock=clock) as server:
        token = server.app.new_token()
        put = requests.put(f"{server.url}/{token}/m1?ttl=10", data={"value": "v"}, timeout=WAIT)
        assert put.status_code == 201
        watcher = server.store.watch(f"/_etcd/registry/{token}/m1")
        clock.advance(10)
        event = watcher.get(timeout=0)
        assert event is not None and event.action == "expire"


def _read_responses(sock: socket.socket, count: int) -> bytes:
    """Read until ``count`` complete responses (all with Content-Length) have arrived."""
    data = b""
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"Disallow: /"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.real
@pytest.mark.parametrize("side", ["real", "fake"])
def test_connections_are_kept_alive_like_go(side: str, request: pytest.FixtureRequest) -> None:
    service = request.getfixturevalue(f"{side}_service")
    host, port = service.url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        # A GET with a body nobody reads, then a second request on the same connection.
        sock.sendall(
            b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        replies = _read_responses(sock, 2)
        assert replies.count(b"HTTP/1.1 200 OK") == 2
        assert b"Connection: close" not in replies
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        last = _read_responses(sock, 1)
        assert b"Connection: close" in last
        assert sock.recv(1) == b""  # and Go closes it


def test_stop_closes_idle_keep_alive_connections() -> None:
    before = set(threading.enumerate())
    server = DiscoveryServer()
    server.start()
    sock = socket.create_connection((server.host, server.port), timeout=WAIT)
    try:
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in _read_responses(sock, 1)
        server.stop()  # the connection is idle, its handler thread waits for a request
        assert sock.recv(1) == b""
        wait_until(lambda: set(threading.enumerate()) <= before, "the server's threads end")
    finally:
        sock.close()
        server.stop()


@pytest.mark.real
@pytest.mark.parametrize("side", ["real", "fake"])
def test_expect_100_continue_gets_one_interim_reply(
    side: str, request: pytest.FixtureRequest
) -> None:
    """Go answers ``Expect: 100-continue`` with one ``100 Continue`` before the body,
    then the reply; werkzeug and http.server each sent one (two in a row)."""
    service = request.getfixturevalue(f"{side}_service")
    token = requests.get(f"{service.url}/new?size=3", timeout=WAIT).text
    host_port, path = token.split("//", 1)[1].split("/", 1)
    host, port = host_port.rsplit(":", 1)
    body = b"value=m1%3Dhttp%3A%2F%2F10.0.0.1%3A2380"
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(
            f"PUT /{path}/m1 HTTP/1.1\r\nHost: {host_port}\r\nExpect: 100-continue\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)  # byte by byte: nothing past the interim reply
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 201 Created\r\n")


def test_a_client_gone_before_its_reply_leaves_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A reply that cannot be sent (the client reset the connection) is dropped
    quietly: no "Exception occurred during processing of request" on stderr."""
    with DiscoveryServer() as server:
        token = requests.get(f"{server.url}/new?size=3", timeout=WAIT).text
        path = token.split(str(server.port), 1)[1]
        for _ in range(20):  # each try races the reply against the reset
            sock = socket.create_connection((server.host, server.port), timeout=WAIT)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.close()  # SO_LINGER 0: a reset, not a FIN
    # stop() has waited for every handler thread.
    assert "Traceback" not in capfd.readouterr().err


def _one_reply(host: str, port: int, request: bytes) -> bytes:
    """Send ``request`` and read one whole reply (Content-Length or chunked framing)."""
    with socket.create_connection((host, port), timeout=WAIT) as sock:
        sock.sendall(request)
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    return data
                if not length and body.endswith(b"\r\n0\r\n\r\n"):
                    return data
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.real
@pytest.mark.parametrize("side", ["real", "fake"])
def test_long_poll_framing_is_gos(side: str, request: pytest.FixtureRequest) -> None:
    """Go sends a reply of unknown length that ends within its 2 KiB buffer with a
    Content-Length (the original proxy's watch replies), and chunks one that was flushed
    first (etcd's own /v2/keys watches send their headers at once)."""
    # The fake's keys API is opt-in; the real side's is etcd's own.
    service = request.getfixturevalue("real_service" if side == "real" else "fake_keys_service")
    token = requests.get(f"{service.url}/new?size=3", timeout=WAIT).text
    index = int(requests.get(token, timeout=WAIT).headers["X-Etcd-Index"])
    path = "/" + token.split("//", 1)[1].split("/", 1)[1]
    # waitIndex in the future, then the write: answered whether it registers before or
    # after the PUT (from history), so nothing races.
    proxied = _long_poll(
        service.url,
        f"{path}?wait=true&recursive=true&waitIndex={index + 1}",
        lambda: requests.put(
            f"{token}/m1", data={"value": "m1=http://10.0.0.1:2380"}, timeout=WAIT
        ),
    )
    assert proxied.startswith(b"HTTP/1.1 200 OK\r\n")
    assert re.search(rb"(?im)^content-length: \d+\r$", proxied)
    assert b"chunked" not in proxied.lower()

    keys_url = service.etcd_url if side == "real" else service.url
    reply = requests.put(f"{keys_url}/v2/keys/framing", data={"value": "a"}, timeout=WAIT)
    after = int(reply.headers["X-Etcd-Index"]) + 1
    flushed = _long_poll(
        keys_url,
        f"/v2/keys/framing?wait=true&waitIndex={after}",
        lambda: requests.put(f"{keys_url}/v2/keys/framing", data={"value": "b"}, timeout=WAIT),
    )
    assert re.search(rb"(?im)^transfer-encoding: chunked\r$", flushed)
    assert not re.search(rb"(?im)^content-length:", flushed)


@pytest.mark.real
@pytest.mark.parametrize("side", ["real", "fake"])
def test_a_request_sent_behind_a_long_poll_is_answered_after_it(
    side: str, request: pytest.FixtureRequest
) -> None:
    """A client that sends its next request while its long poll waits gets both answers
    in order (the fake buffers what arrives meanwhile; Go reads on after the handler)."""
    service = request.getfixturevalue(f"{side}_service")
    token = requests.get(f"{service.url}/new?size=3", timeout=WAIT).text
    index = int(requests.get(token, timeout=WAIT).headers["X-Etcd-Index"])
    path = "/" + token.split("//", 1)[1].split("/", 1)[1]
    host, port = service.url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        # waitIndex in the future: answered by the write whether it waits or not.
        watch = f"{path}?wait=true&recursive=true&waitIndex={index + 1}"
        store = service.app.store if side == "fake" else None
        # The shared fake may hold other tests' watchers still.
        waiting = store.watcher_count if store is not None else 0
        sock.sendall(f"GET {watch} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        if store is not None:  # the next request arrives while the long poll waits
            wait_until(lambda: store.watcher_count > waiting, "the long poll waits")
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        requests.put(f"{token}/m1", data={"value": "m1=http://10.0.0.1:2380"}, timeout=WAIT)
        replies = _read_responses(sock, 2)
    assert replies.count(b"HTTP/1.1 200 OK") == 2
    assert b'"action":"set"' in replies
    assert replies.index(b'"action":"set"') < replies.index(b"Disallow: /")


def test_what_a_client_sends_during_a_long_poll_is_buffered_up_to_a_bound() -> None:
    from pytest_etcd_discovery._transport.connection import RECV_SIZE, WAIT_READ_MAX

    with DiscoveryServer() as server:
        token = requests.get(f"{server.url}/new?size=3", timeout=WAIT).text
        path = "/" + token.split("//", 1)[1].split("/", 1)[1]
        with socket.create_connection((server.host, server.port), timeout=WAIT) as sock:
            sock.sendall(
                f"GET {path}?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            store = server.app.store
            wait_until(lambda: store.watcher_count == 1, "the long poll waits")
            # Far more than the bound: the server stops reading and the socket fills up.
            sock.setblocking(False)
            sent, junk = 0, b"x" * 65536
            with contextlib.suppress(BlockingIOError):
                while sent < 64 * WAIT_READ_MAX:
                    sent += sock.send(junk)
            (conn,) = server.httpd._connections
            wait_until(lambda: len(conn.inbuf) >= WAIT_READ_MAX, "the server reads some")
            assert len(conn.inbuf) < WAIT_READ_MAX + RECV_SIZE
            assert sent > len(conn.inbuf)  # the rest waits in the sockets' buffers


def _long_poll(base_url: str, target: str, write: Callable[[], object]) -> bytes:
    """The raw reply to ``GET target`` on ``base_url``, a long poll that ``write()`` ends."""
    host, port = base_url.split("//", 1)[1].rsplit(":", 1)
    got: list[bytes] = []
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    poll = threading.Thread(target=lambda: got.append(_one_reply(host, int(port), request)))
    poll.start()
    write()
    poll.join(WAIT)
    assert got, f"no reply to GET {target} within {WAIT} s"
    return got[0]


def _head(host: str, port: int, path: str) -> bytes:
    """A HEAD request's reply head (it has no body, whatever its Content-Length says)."""
    with socket.create_connection((host, port), timeout=WAIT) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


@pytest.mark.real
@pytest.mark.parametrize("side", ["real", "fake"])
def test_head_replies_have_a_length_only_when_go_would_write_a_body(
    side: str, request: pytest.FixtureRequest
) -> None:
    """Go gives a HEAD reply a Content-Length only from the body its handler wrote: none
    for the mux's 405 and for redirects (http.Redirect writes no body for HEAD), one for
    /health, whose handler writes its text."""
    service = request.getfixturevalue(f"{side}_service")
    token = requests.get(f"{service.url}/new?size=3", timeout=WAIT).text
    host, port = service.url.split("//", 1)[1].rsplit(":", 1)
    token_path = "/" + token.split("//", 1)[1].split("/", 1)[1]
    for path, status in (
        (f"{token_path}/m1", b"405 Method Not Allowed"),
        (f"{token_path}/_config/size", b"405 Method Not Allowed"),
        ("/", b"301 Moved Permanently"),
    ):
        head = _head(host, int(port), path)
        assert head.startswith(b"HTTP/1.1 " + status), head
        assert not re.search(rb"(?im)^content-length:", head), (path, head)
    health = _head(host, int(port), "/health")
    assert health.startswith(b"HTTP/1.1 200 OK")
    assert re.search(rb"(?im)^content-length: [1-9]\d*\r?$", health), health


def _read_until_closed_or_idle(sock: socket.socket, replies: int) -> tuple[bytes, bool]:
    """Read ``replies`` whole replies (all with Content-Length); then whether the server
    closed the connection (a FIN) or left it open (nothing more within a short wait)."""
    data = b""
    while data.count(b"HTTP/1.") < replies or not _complete(data):
        chunk = sock.recv(65536)
        if not chunk:
            return data, True
        data += chunk
    sock.settimeout(0.5)  # an open connection sends nothing more; a closed one says so
    try:
        return data, sock.recv(1) == b""
    except TimeoutError:
        return data, False


def _complete(data: bytes) -> bool:
    head, sep, body = data.rpartition(b"HTTP/1.")[2].partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return bool(sep) and length is not None and len(body) >= int(length.group(1))


@pytest.mark.real
@pytest.mark.parametrize("side", ["real", "fake"])
def test_http10_requests_are_answered_in_http10(side: str, request: pytest.FixtureRequest) -> None:
    """Go answers HTTP/1.0 with an HTTP/1.0 status line, closes after the reply unless the
    client asked for keep-alive, and then says "Connection: keep-alive"."""
    service = request.getfixturevalue(f"{side}_service")
    host, port = service.url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        plain, closed = _read_until_closed_or_idle(sock, 1)
    assert plain.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Connection:" not in plain
    assert closed
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        ask = b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        sock.sendall(ask + ask)
        kept, closed = _read_until_closed_or_idle(sock, 2)
    assert kept.count(b"HTTP/1.0 200 OK\r\n") == 2
    assert kept.count(b"Connection: keep-alive\r\n") == 2
    assert not closed


# -- the contract other transports rely on ------------------------------------------------


def _self_signed(tmp_path: pathlib.Path) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=disco.test",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_handed_over_tls_connection_is_served_as_https(tmp_path: pathlib.Path) -> None:
    """A front (a TLS proxy) hands an accepted, TLS-wrapped socket to the server: it is
    served like any connection, and ``/new`` hands out https URLs for it."""
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    with DiscoveryServer() as server:
        ours, theirs = socket.socketpair()
        tls = server_ctx.wrap_socket(ours, server_side=True, do_handshake_on_connect=False)
        server.serve_connection(tls, ("127.0.0.1", 4242))
        with client_ctx.wrap_socket(theirs, server_hostname="disco.test") as client:
            client.settimeout(WAIT)
            client.sendall(
                b"GET /new?size=3 HTTP/1.1\r\nHost: disco.test\r\nConnection: close\r\n\r\n"
            )
            reply = _read_reply(client)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert re.search(rb"\r\n\r\nhttps://disco\.test/[0-9a-f]{32}$", reply), reply
        assert server.app.calls[-1].path == "/new"
        wait_until(lambda: server.httpd.connection_count == 0, "the connection's thread ends")


def test_stop_closes_a_handed_over_connection() -> None:
    with DiscoveryServer() as server:
        ours, theirs = socket.socketpair()
        server.httpd.process_request(ours, ("127.0.0.1", 4243))  # socketserver's method
        theirs.settimeout(WAIT)
        theirs.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert theirs.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert server.httpd.connection_count == 1  # kept alive, waiting for a request
    assert theirs.recv(1) == b""
    theirs.close()


def test_an_absolute_target_routes_by_its_path_with_the_urls_host() -> None:
    """What a proxy receives: ``GET http://discovery.etcd.io/new?size=3``; Go routes
    by the path and takes the URL's host as the request's host."""
    with (
        DiscoveryServer() as server,
        socket.create_connection((server.host, server.port), timeout=WAIT) as sock,
    ):
        sock.sendall(
            b"GET http://discovery.etcd.io/new?size=5 HTTP/1.1\r\n"
            b"Host: elsewhere\r\nConnection: close\r\n\r\n"
        )
        reply = _read_reply(sock)
        token = re.search(rb"http://discovery\.etcd\.io/([0-9a-f]{32})$", reply)
        assert token, reply
        size = requests.get(f"{server.url}/{token[1].decode()}/_config/size", timeout=WAIT)
        assert size.json()["node"]["value"] == "5"


def test_any_wsgi_callable_can_be_served_in_front_of_the_app() -> None:
    """The server serves the WSGI callable it is given (a control API mounted in front
    of the discovery app), while :attr:`app` and :attr:`store` stay the app's."""
    app = DiscoveryApp()

    def front(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        if str(environ["PATH_INFO"]).startswith("/_front/"):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"front"]
        return app(environ, start_response)  # type: ignore[arg-type,return-value]

    with DiscoveryServer(app=app, wsgi_app=front) as server:  # type: ignore[arg-type]
        assert server.store is app.store
        assert requests.get(f"{server.url}/_front/x", timeout=WAIT).text == "front"
        assert requests.get(f"{server.url}/health", timeout=WAIT).text == "OK"


# -- threads, backlog and accept (issue #12, items 3 and 4) -------------------------------


def test_a_connection_without_a_thread_is_closed_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """When no thread can be started for a request of an application that may block
    (one without ``serves_deferred``: the fake's own app runs on the event loop and
    starts none), the connection is closed unserved, one line is logged, nothing stays
    tracked and stop() is clean."""
    app = DiscoveryApp()

    def blocking_app(environ: Any, start_response: Any) -> Any:
        return app(environ, start_response)

    server = DiscoveryServer(app=app, wsgi_app=blocking_app)
    server.start()
    real_start = threading.Thread.start
    failing = threading.Event()

    def start(thread: threading.Thread) -> None:
        if failing.is_set() and thread.name.startswith("etcd-discovery-fake:("):
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    failing.set()
    for _ in range(20):
        with socket.create_connection((server.host, server.port), timeout=WAIT) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_reply(sock) == b""  # closed unserved
    assert server.httpd.connection_count == 0  # nothing tracked for them
    failing.clear()
    assert requests.get(f"{server.url}/health", timeout=WAIT).text == "OK"
    assert server.httpd.refused == 20
    warnings = [r for r in caplog.records if "cannot start a thread" in r.getMessage()]
    assert len(warnings) == 1
    server.stop()  # raised "cannot join thread before it is started" before
    assert "Traceback" not in capfd.readouterr().err


def test_the_listen_backlog_is_the_systems() -> None:
    """Go listens with the system's somaxconn: 300 clients connecting while nothing is
    accepted all complete their handshake (a backlog of 128 left the rest waiting)."""
    backlog = listen_backlog()
    if backlog < 400:
        pytest.skip(f"the system's somaxconn is {backlog}")
    with DiscoveryServer() as server:
        assert server.httpd.request_queue_size == backlog
        stalled = threading.Event()
        release = threading.Event()
        real_get = server.httpd.get_request

        def slow_get() -> tuple[object, object]:
            stalled.set()
            release.wait(WAIT * 3)
            return real_get()

        server.httpd.get_request = slow_get  # type: ignore[method-assign]
        clients: list[socket.socket] = []
        try:
            # Wake the accept loop into the stalled get_request with a first client.
            first = socket.create_connection((server.host, server.port), timeout=WAIT)
            clients.append(first)
            assert stalled.wait(WAIT)
            pending = []
            for _ in range(300):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex((server.host, server.port))
                clients.append(sock)
                pending.append(sock)

            def all_connected() -> bool:
                _, writable, _ = select.select([], pending, [], 0.1)
                for sock in writable:
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    pending.remove(sock)
                return not pending

            wait_until(
                all_connected,
                lambda: f"all 300 connections complete ({len(pending)} never did)",
                interval=0,  # select() waits
            )
        finally:
            release.set()
            for sock in clients:
                sock.close()


def test_accept_backs_off_when_out_of_file_descriptors(caplog: pytest.LogCaptureFixture) -> None:
    """Out of file descriptors, the accept loop waits 5 ms, 10 ms, 20 ms, ... (Go's
    backoff) instead of spinning on a listening socket that stays ready; it serves the
    waiting client once descriptors are free again."""
    caplog.set_level(logging.WARNING, logger="pytest_etcd_discovery")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with DiscoveryServer() as server:
        client = socket.socket()
        client.settimeout(WAIT)
        fillers: list[int] = []
        limit = max(int(fd) for fd in os.listdir("/proc/self/fd")) + 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        try:
            with contextlib.suppress(OSError):  # fill every free descriptor below the limit
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            client.connect((server.host, server.port))  # queued: the server cannot accept
            wait_until(
                lambda: len(_backoffs(caplog)) >= 5,
                lambda: f"five accept backoffs are logged (got {_backoffs(caplog)})",
            )
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        delays = _backoffs(caplog)
        assert delays[:5] == [0.005, 0.01, 0.02, 0.04, 0.08], delays
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_reply(client).endswith(b"\r\n\r\nOK")
        client.close()


def _backoffs(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = [re.search(r"retrying in ([\d.]+) s", r.getMessage()) for r in caplog.records]
    return [float(m[1]) for m in found if m]
