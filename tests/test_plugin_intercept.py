"""The ``responses`` adapter on its own: which URLs it captures, and that an in-process
call looks like the live one (same app, same state, same answer)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter

from pytest_etcd_discovery._transport.intercept import Interceptor, normalize_host
from pytest_etcd_discovery._transport.server import DiscoveryServer


@pytest.fixture
def server() -> Iterator[DiscoveryServer]:
    with DiscoveryServer() as live:
        yield live


def test_normalize_host() -> None:
    assert normalize_host("discovery.example") == "https://discovery.example"
    assert normalize_host("http://127.0.0.1:8087/some/path") == "http://127.0.0.1:8087"
    with pytest.raises(ValueError):
        normalize_host("https://")


def test_captures_the_host_only_on_a_path_boundary(server: DiscoveryServer) -> None:
    # An intercepted host whose URL is a prefix of the live server's (port 4123 vs
    # 41234): requests to the longer one must still go over TCP.
    shorter = server.url[:-1]
    with Interceptor(server.app, [shorter]):
        captured = requests.get(shorter + "/new?size=2", timeout=5)
        passed = requests.get(server.url + "/new?size=2", timeout=5)
    assert captured.text.startswith(shorter + "/")
    assert passed.text.startswith(server.url + "/")
    assert [c.transport for c in server.app.calls] == ["inprocess", "live"]


def test_inprocess_answer_matches_the_live_one(server: DiscoveryServer) -> None:
    token = server.app.new_token(3)
    public = "https://discovery.etcd.io"
    live = requests.put(
        f"{server.url}/{token}/m1?prevExist=false", data={"value": "a=http://x:1"}, timeout=5
    )
    with Interceptor(server.app):
        again = requests.put(
            f"{public}/{token}/m1?prevExist=false", data={"value": "a=http://x:1"}, timeout=5
        )
        listed = requests.get(f"{public}/{token}", timeout=5)
        missing = requests.post(f"{public}/{token}/m1", timeout=5)
    assert live.status_code == 201
    # Same store: the second create of the same key is refused, with etcd's error.
    assert again.status_code == 412
    assert again.json()["errorCode"] == 105
    assert again.headers["Content-Type"] == "application/json"
    assert again.headers["X-Etcd-Index"] == live.headers["X-Etcd-Index"]
    assert listed.json()["node"]["nodes"][0]["value"] == "a=http://x:1"
    assert (missing.status_code, missing.text) == (405, "")


def test_start_and_stop_restore_requests(server: DiscoveryServer) -> None:
    original = HTTPAdapter.send
    interceptor = Interceptor(server.app)
    interceptor.start()
    interceptor.start()  # idempotent
    assert interceptor.active and HTTPAdapter.send is not original
    interceptor.stop()
    interceptor.stop()
    assert not interceptor.active and HTTPAdapter.send is original


def test_a_restarted_interceptor_serves_again(server: DiscoveryServer) -> None:
    # The plugin starts and stops one interceptor for every test; what it registered on
    # the first start must serve after every later one, and nothing while it is stopped.
    original = HTTPAdapter.send
    interceptor = Interceptor(server.app)
    for _ in range(3):
        interceptor.start()
        created = requests.get("https://discovery.etcd.io/new?size=1", timeout=5)
        assert created.status_code == 200
        interceptor.stop()
        assert HTTPAdapter.send is original
        with pytest.raises(requests.ConnectionError):
            # This run's guard refuses the host once nothing serves it.
            requests.get("https://discovery.etcd.io/new?size=1", timeout=5)
    assert len(server.app.token_names()) == 3


def test_timeout_bounds_an_intercepted_long_poll(
    server: DiscoveryServer,
) -> None:
    token = server.app.new_token(3)
    url = f"https://discovery.etcd.io/{token}?wait=true&recursive=true"
    with Interceptor(server.app):
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(url, timeout=(1, 0.1))
        # Without a timeout the call blocks until an event: a write from another thread.
        got: list[requests.Response] = []
        before = server.app.store.watcher_count  # the timed-out poll still waits
        waiter = threading.Thread(target=lambda: got.append(requests.get(url)), daemon=True)
        waiter.start()
        # Write only once it watches.
        assert server.app.store.wait_for_watchers(before + 1, timeout=10), "no watch registered"
        requests.put(f"https://discovery.etcd.io/{token}/m1", data={"value": "v"}, timeout=5)
        waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert got[0].json()["action"] == "set"
