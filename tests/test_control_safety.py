"""Who may use the control API: the Host check (DNS rebinding), the Origin check (a
cross-site form or fetch) and the optional bearer token (``--control-token``)."""

from __future__ import annotations

import pytest
import requests
from werkzeug.test import Client

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.control import ControlApp, ControlError
from pytest_etcd_discovery._stack import FakeStack

WAIT = 10.0
FAULT = {"status": 503, "route": "new", "times": 1}


def _client(**kwargs: object) -> tuple[DiscoveryApp, Client]:
    app = DiscoveryApp()
    return app, Client(ControlApp(app, **kwargs))  # type: ignore[arg-type]


# -- Host --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST:8087", "app.localhost:1", "127.0.0.1:8087", "127.1.2.3", "[::1]:80"],
)
def test_loopback_hosts_are_answered(host: str) -> None:
    app, client = _client()
    reply = client.get("/_fake/state", headers={"Host": host})
    assert reply.status_code == 200, reply.text
    app.store.close()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8087", "127.0.0.1.evil.example", "10.0.0.5:8087", "@"]
)
def test_other_hosts_are_refused_with_403(host: str) -> None:
    app, client = _client()
    client.post("/_fake/tokens")
    for method, path in [("GET", "/_fake/state"), ("POST", "/_fake/reset"), ("GET", "/_fake/")]:
        reply = client.open(path, method=method, headers={"Host": host})
        assert reply.status_code == 403, (method, path)
        assert reply.content_type == "application/json"
        assert "does not answer for Host" in reply.get_json()["message"]
    assert len(app.token_names()) == 1  # the reset was refused
    # The discovery routes are not the control API's business: Go answers any Host.
    assert client.get("/health", headers={"Host": host}).status_code in (200, 503)
    app.store.close()


def test_the_configured_host_and_the_public_urls_host_are_answered() -> None:
    app = DiscoveryApp(public_url="http://fake.example:9000")
    client = Client(ControlApp(app, hosts=["box.lan"]))
    for host in ("box.lan:8087", "BOX.LAN.", "fake.example:9000"):
        assert client.get("/_fake/clock", headers={"Host": host}).status_code == 200, host
    assert client.get("/_fake/clock", headers={"Host": "other.lan"}).status_code == 403
    app.store.close()


def test_a_wildcard_bind_answers_every_ip_address_but_no_other_name() -> None:
    for wildcard in ("0.0.0.0", "::"):
        app, client = _client(hosts=[wildcard])
        for host in ("192.168.1.5:8087", "[fd00::5]:8087", "localhost"):
            assert client.get("/_fake/clock", headers={"Host": host}).status_code == 200
        assert client.get("/_fake/clock", headers={"Host": "evil.example"}).status_code == 403
        app.store.close()


# -- Origin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "https://localhost",
        "http://localhost:8080",
        "http://127.0.0.1",
    ],
)
def test_a_state_changing_request_from_another_origin_is_refused(origin: str) -> None:
    app, client = _client()
    for method, path in [
        ("POST", "/_fake/faults"),
        ("PUT", "/_fake/state"),
        ("DELETE", "/_fake/faults"),
        ("POST", "/_fake/reset"),
        ("PATCH", "/_fake/state"),
    ]:
        reply = client.open(
            path,
            method=method,
            json=FAULT,
            headers={"Host": "localhost", "Origin": origin},
        )
        assert reply.status_code == 403, (method, path, reply.text)
        assert "may not change the fake" in reply.get_json()["message"]
    assert client.get("/_fake/faults").get_json() == {"faults": []}
    # Reading is not refused: a browser does not show another site the answer (no CORS).
    reply = client.get("/_fake/faults", headers={"Origin": origin})
    assert reply.status_code == 200
    assert "Access-Control-Allow-Origin" not in reply.headers
    app.store.close()


def test_the_fakes_own_origin_and_no_origin_may_change_it() -> None:
    app, client = _client()
    own = {"Host": "127.0.0.1:8087", "Origin": "http://127.0.0.1:8087"}
    assert client.post("/_fake/faults", json=FAULT, headers=own).status_code == 201
    default_port = {"Host": "localhost", "Origin": "http://LOCALHOST:80"}
    assert client.post("/_fake/faults", json=FAULT, headers=default_port).status_code == 201
    assert client.post("/_fake/faults", json=FAULT).status_code == 201  # curl sends none
    # A browser's own mark of a cross-site request, even without an Origin.
    marked = client.post("/_fake/faults", json=FAULT, headers={"Sec-Fetch-Site": "cross-site"})
    assert marked.status_code == 403
    assert len(client.get("/_fake/faults").get_json()["faults"]) == 3
    app.store.close()


def test_a_cross_origin_text_plain_post_to_the_live_server_is_refused(
    etcd_discovery: EtcdDiscovery,
) -> None:
    # What a page on another site can send without a preflight: a "simple" request.
    reply = requests.post(
        f"{etcd_discovery.url}/_fake/faults",
        data='{"status": 503, "route": "new"}',
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        timeout=WAIT,
    )
    assert reply.status_code == 403
    assert reply.headers["Content-Type"] == "application/json"
    assert requests.get(f"{etcd_discovery.url}/new", timeout=WAIT).status_code == 200
    rebound = requests.get(
        f"{etcd_discovery.url}/_fake/state", headers={"Host": "evil.example"}, timeout=WAIT
    )
    assert rebound.status_code == 403


# -- the token ---------------------------------------------------------------------------


def test_a_token_guards_every_api_request_but_not_the_dashboards_files() -> None:
    app, client = _client(token="s3cret-T0ken")
    for path in ("/_fake/state", "/_fake/tokens", "/_fake/calls", "/_fake/nope"):
        reply = client.get(path)
        assert reply.status_code == 401, path
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="etcd-discovery-fake"'
        assert "Authorization: Bearer TOKEN" in reply.get_json()["message"]
    for wrong in ("Bearer s3cret", "Bearer s3cret-T0ken2", "Basic s3cret-T0ken", "s3cret-T0ken"):
        reply = client.post("/_fake/reset", headers={"Authorization": wrong})
        assert reply.status_code == 401, wrong
        assert "wrong token" in reply.get_json()["message"]
    for right in ("Bearer s3cret-T0ken", "bearer s3cret-T0ken"):
        assert client.get("/_fake/state", headers={"Authorization": right}).status_code == 200
    # The page, its script and its style are the package's static files: no data in them.
    assert client.get("/_fake/").status_code == 200
    assert client.get("/_fake/static/dashboard.js").status_code == 200
    # The discovery routes are the service's: no token there.
    assert client.get("/new").status_code == 200
    app.store.close()


@pytest.mark.parametrize("token", ["", "two words", "tab\there", "caf\u00e9"])
def test_a_token_must_fit_a_header(token: str) -> None:
    with pytest.raises(ControlError, match="visible ASCII"):
        ControlApp(DiscoveryApp(), token=token)


def test_a_stack_with_a_control_token_over_http() -> None:
    stack = FakeStack(control_token="tok-123").start()
    try:
        url = f"{stack.url}/_fake/tokens"
        assert requests.post(url, timeout=WAIT).status_code == 401
        auth = {"Authorization": "Bearer tok-123"}
        assert requests.post(url, headers=auth, timeout=WAIT).status_code == 201
        assert len(requests.get(url, headers=auth, timeout=WAIT).json()["tokens"]) == 1
    finally:
        assert stack.close() == []
