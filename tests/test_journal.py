"""The request journal (``DiscoveryApp.calls``): pending long polls and bounded growth."""

from __future__ import annotations

import threading

from werkzeug.test import Client

from pytest_etcd_discovery import DiscoveryApp


def test_max_calls_keeps_the_newest_entries() -> None:
    app = DiscoveryApp(max_calls=5)
    client = Client(app)
    for i in range(23):
        client.get(f"/robots.txt?n={i}")
    assert 5 <= len(app.calls) < 10
    assert app.calls[-1].query == "n=22"
    queries = [int(c.query.split("=")[1]) for c in app.calls]
    assert queries == sorted(queries) == list(range(23 - len(queries), 23))


def test_unbounded_by_default() -> None:
    app = DiscoveryApp()
    client = Client(app)
    for _ in range(50):
        client.get("/robots.txt")
    assert len(app.calls) == 50


def test_a_waiting_long_poll_is_journalled_as_pending() -> None:
    # discoveryserver answers a long poll only once it has the event (etcd-v2's status is
    # known at once: the body streams later).
    app = DiscoveryApp(profile="discoveryserver")
    token = app.new_token(1)
    client = Client(app)
    done = threading.Event()

    def poll() -> None:
        client.get(f"/{token}/m1?wait=true")
        done.set()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        assert app.store.wait_for_watchers(1, timeout=5)
        (call,) = app.calls
        assert call.status is None and "pending" in str(call)
        app.store.set(f"{app.token_key(token)}/m1", "x")
        assert done.wait(5)
        assert call.status == 200
    finally:
        app.close()
        thread.join(5)


def test_an_error_inside_the_fake_is_a_500_and_kept_for_the_test() -> None:
    app = DiscoveryApp()

    def broken(request: object) -> None:
        raise ValueError("boom")

    app.before_request.append(broken)
    response = Client(app).get("/new")
    assert response.status_code == 500
    assert app.calls[-1].status == 500
    (error,) = app.take_errors()
    assert isinstance(error, ValueError) and str(error) == "boom"
    assert app.take_errors() == []
