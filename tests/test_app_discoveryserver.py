"""The WSGI app in the ``discoveryserver`` profile (spec section 6), via werkzeug's test client.

Facts come from etcd-io/discoveryserver (handlers/token.go, handlers/new.go) and etcd's
v2v3 store it runs on. The last section covers app features the conformance suite
cannot see from the wire: the public URL choice, the journal, metrics and reset().
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator

import pytest
from unitutil import TOKEN_RE
from werkzeug.test import Client, TestResponse

from pytest_etcd_discovery._service.app import TRANSPORT_KEY, DiscoveryApp
from pytest_etcd_discovery._service.profiles import PROFILES, Profile
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.rules import ETCD_V2, V2_OVER_V3

WAIT = 10.0  # generous bound for anything that should happen at once
HOME = "https://etcd.io/docs/v3.5/dev-internal/discovery_protocol"


def profile(watch_timeout: float) -> Profile:
    """The discoveryserver profile with a shorter long-poll give-up time."""
    return dataclasses.replace(PROFILES["discoveryserver"], watch_timeout=watch_timeout)


@pytest.fixture
def app() -> Iterator[DiscoveryApp]:
    a = DiscoveryApp(profile=profile(10.0))
    yield a
    a.close()


@pytest.fixture
def client(app: DiscoveryApp) -> Client:
    return Client(app)


def new_token(client: Client, query: str = "") -> str:
    resp = client.get(f"/new{query}")
    assert resp.status_code == 200
    token = resp.get_data(as_text=True).rsplit("/", 1)[1]
    assert TOKEN_RE.fullmatch(token)
    return token


def ok_json(resp: TestResponse) -> dict[str, object]:
    """A discoveryserver success: 200, JSON without a trailing newline, two headers."""
    assert resp.status_code == 200, resp.data
    assert not resp.data.endswith(b"\n")
    assert set(resp.headers.keys()) - {"Content-Length"} == {"Content-Type", "X-Etcd-Index"}
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json
    assert isinstance(body, dict)
    return body


def text_error(resp: TestResponse, message: str) -> None:
    """Go's ``http.Error(w, message, 400)``."""
    assert resp.status_code == 400
    assert resp.data == f"{message}\n".encode()
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def wait_for_watchers(app: DiscoveryApp, count: int) -> None:
    """Until ``count`` long polls are registered in the store (bounded)."""
    assert app.store.wait_for_watchers(count, timeout=WAIT)
    assert app.store.watcher_count == count


def created_index(client: Client, token: str) -> int:
    node = ok_json(client.get(f"/{token}"))["node"]
    assert isinstance(node, dict)
    return int(node["createdIndex"])


# -- /new and token keys ------------------------------------------------------------------------


def test_new_creates_the_size_key_under_slash_token(client: Client) -> None:
    resp = client.get("/new")
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert not resp.data.endswith(b"\n")
    token = resp.get_data(as_text=True).rsplit("/", 1)[1]
    body = ok_json(client.get(f"/{token}/_config/size"))
    assert body == {
        "action": "get",
        "node": {
            "key": f"/{token}/_config/size",
            "value": "3",
            "modifiedIndex": 1,
            "createdIndex": 1,
        },
    }
    size_five = new_token(client, "?size=5")
    node = ok_json(client.get(f"/{size_five}/_config/size"))["node"]
    assert isinstance(node, dict) and node["value"] == "5"


def test_new_spends_two_indexes_so_the_first_member_is_token_plus_two(client: Client) -> None:
    token = new_token(client)
    base = created_index(client, token)
    resp = client.get(f"/{token}")
    assert resp.headers["X-Etcd-Index"] == str(base + 1)  # the GC record took one
    body = ok_json(client.put(f"/{token}/m1", data={"value": "a"}))
    node = body["node"]
    assert isinstance(node, dict)
    assert node["createdIndex"] == node["modifiedIndex"] == base + 2


def test_new_with_a_bad_size(client: Client) -> None:
    resp = client.get("/new?size=abc")
    assert resp.status_code == 400
    assert resp.data == b'strconv.Atoi: parsing "abc": invalid syntax\n'


# -- PUT: always a plain set ----------------------------------------------------------------------


def test_put_is_a_set_200_ignoring_prev_exist_and_ttl(client: Client) -> None:
    token = new_token(client)
    base = created_index(client, token)
    key = f"/{token}/m1"
    first = client.put(f"{key}?prevExist=false&ttl=10", data={"value": "a"})
    resp = client.put(f"{key}?prevExist=false&ttl=10", data={"value": "b"})
    assert ok_json(first) == {
        "action": "set",
        "node": {"key": key, "value": "a", "modifiedIndex": base + 2, "createdIndex": base + 2},
    }
    assert first.headers["X-Etcd-Index"] == str(base + 2)
    assert ok_json(resp) == {
        "action": "set",
        # v2 over v3 reports the key's v3 create revision: an overwrite keeps it.
        "node": {"key": key, "value": "b", "modifiedIndex": base + 3, "createdIndex": base + 2},
        "prevNode": {
            "key": key,
            "value": "a",
            "modifiedIndex": base + 2,
            "createdIndex": base + 2,
        },
    }


def test_a_second_state_create_succeeds(client: Client) -> None:
    token = new_token(client)
    for _ in range(2):
        resp = client.put(f"/{token}/_state?prevExist=false", data={"value": "started"})
        body = ok_json(resp)
        assert body["action"] == "set"
    assert "prevNode" in body


def test_put_with_prev_exist_true_on_a_missing_key_still_sets(client: Client) -> None:
    token = new_token(client)
    body = ok_json(client.put(f"/{token}/m9?prevExist=true&prevValue=zz", data={"value": "v"}))
    assert body["action"] == "set"


def test_put_dir_true_stores_an_empty_value(client: Client) -> None:
    token = new_token(client)
    body = ok_json(client.put(f"/{token}/d?dir=true"))
    node = body["node"]
    assert isinstance(node, dict)
    assert node["value"] == "" and "dir" not in node


def test_put_value_from_the_query_string(client: Client) -> None:
    token = new_token(client)
    node = ok_json(client.put(f"/{token}/m1?value=fromquery"))["node"]
    assert isinstance(node, dict) and node["value"] == "fromquery"


def test_put_on_a_directory_is_unable_to_put(client: Client) -> None:
    token = new_token(client)
    text_error(client.put(f"/{token}", data={"value": "x"}), "unable to PUT token")
    text_error(client.put(f"/{token}/_config", data={"value": "x"}), "unable to PUT token")


# -- GET ----------------------------------------------------------------------------------------


def test_get_token_sorts_members_and_drops_underscore_names(client: Client) -> None:
    token = new_token(client)
    for name in ("m3", "_state", "m1", "m2"):
        ok_json(client.put(f"/{token}/{name}", data={"value": name}))
    node = ok_json(client.get(f"/{token}"))["node"]
    assert isinstance(node, dict)
    assert [n["key"] for n in node["nodes"]] == [f"/{token}/m{i}" for i in (1, 2, 3)]
    state = ok_json(client.get(f"/{token}/_state"))["node"]
    assert isinstance(state, dict) and state["value"] == "_state"


def test_get_reports_the_current_index(client: Client, app: DiscoveryApp) -> None:
    token = new_token(client)
    ok_json(client.put(f"/{token}/m1", data={"value": "a"}))
    resp = client.get(f"/{token}/m1")
    ok_json(resp)
    assert resp.headers["X-Etcd-Index"] == str(app.store.index)


@pytest.mark.parametrize("path", ["/{never}", "/{token}/missing", "/{never}/_config/size"])
def test_get_errors_are_unable_to_get_token(client: Client, path: str) -> None:
    token = new_token(client)
    url = path.format(token=token, never="0123456789abcdef0123456789abcdef")
    text_error(client.get(url), "unable to GET token")


# -- DELETE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["m1", "_state"])
def test_deleting_a_member_or_state_fails(client: Client, name: str) -> None:
    token = new_token(client)
    ok_json(client.put(f"/{token}/{name}", data={"value": "v"}))
    text_error(client.delete(f"/{token}/{name}"), "unable to DELETE token")
    node = ok_json(client.get(f"/{token}/{name}"))["node"]
    assert isinstance(node, dict) and node["value"] == "v"


def test_deleting_a_missing_member_fails(client: Client) -> None:
    token = new_token(client)
    text_error(client.delete(f"/{token}/nobody"), "unable to DELETE token")


def test_delete_and_post_on_the_token_are_405(client: Client) -> None:
    token = new_token(client)
    for resp in (client.delete(f"/{token}"), client.post(f"/{token}/m1")):
        assert resp.status_code == 405
        assert resp.data == b""


# -- long polls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    [0, 1, 2],
)
def test_wait_index_b_to_b_plus_2_return_the_first_member(client: Client, offset: int) -> None:
    token = new_token(client)
    base = created_index(client, token)
    ok_json(client.put(f"/{token}/m1", data={"value": "a"}))
    started = time.monotonic()
    resp = client.get(f"/{token}?wait=true&recursive=true&waitIndex={base + offset}")
    assert time.monotonic() - started < WAIT
    node = ok_json(resp)["node"]
    assert isinstance(node, dict)
    assert (node["key"], node["modifiedIndex"]) == (f"/{token}/m1", base + 2)


def test_self_watch_at_created_index_returns_at_once(client: Client) -> None:
    token = new_token(client)
    node = ok_json(client.put(f"/{token}/m1", data={"value": "a"}))["node"]
    assert isinstance(node, dict)
    resp = client.get(f"/{token}/m1?wait=true&waitIndex={node['createdIndex']}")
    assert ok_json(resp)["action"] == "set"


def test_a_blocked_wait_returns_the_next_visible_event(client: Client, app: DiscoveryApp) -> None:
    token = new_token(client)
    after = app.store.index
    result: list[TestResponse] = []

    def wait() -> None:
        result.append(Client(app).get(f"/{token}?wait=true&recursive=true&waitIndex={after + 1}"))

    thread = threading.Thread(target=wait)
    thread.start()
    wait_for_watchers(app, 1)
    # The hidden _state write does not end the wait; the member does.
    ok_json(client.put(f"/{token}/_state", data={"value": "started"}))
    ok_json(client.put(f"/{token}/m1", data={"value": "a"}))
    thread.join(timeout=WAIT)
    assert not thread.is_alive()
    node = ok_json(result[0])["node"]
    assert isinstance(node, dict) and node["key"] == f"/{token}/m1"


def test_recursive_wait_answered_from_history_skips_hidden_keys(
    client: Client, app: DiscoveryApp
) -> None:
    token = new_token(client)
    ok_json(client.put(f"/{token}/_state", data={"value": "started"}))
    state_index = app.store.index
    ok_json(client.put(f"/{token}/_state", data={"value": "again"}))
    ok_json(client.put(f"/{token}/m1", data={"value": "a"}))
    for wait_index in (state_index - 1, state_index):
        resp = client.get(f"/{token}?wait=true&recursive=true&waitIndex={wait_index}")
        node = ok_json(resp)["node"]
        assert isinstance(node, dict) and node["key"] == f"/{token}/m1"


def test_wait_gives_an_empty_200_after_the_watch_timeout() -> None:
    app = DiscoveryApp(profile=profile(0.2))
    try:
        client = Client(app)
        token = new_token(client)
        started = time.monotonic()
        resp = client.get(f"/{token}?wait=true&recursive=true&waitIndex={app.store.index + 1}")
        elapsed = time.monotonic() - started
        assert resp.status_code == 200
        assert resp.data == b""
        assert "Content-Type" not in resp.headers
        assert 0.15 < elapsed < WAIT
    finally:
        app.close()


def test_default_watch_timeout_is_one_minute() -> None:
    assert PROFILES["discoveryserver"].watch_timeout == 60.0


def test_wait_without_wait_index_scans_from_the_start(client: Client) -> None:
    # waitIndex absent = 0: discoveryserver watches from revision 1, so an old event answers.
    token = new_token(client)
    ok_json(client.put(f"/{token}/m1", data={"value": "a"}))
    ok_json(client.put(f"/{token}/other", data={"value": "b"}))
    node = ok_json(client.get(f"/{token}/m1?wait=true"))["node"]
    assert isinstance(node, dict) and node["value"] == "a"


def test_wait_without_wait_index_replays_beyond_a_v2_history(client: Client) -> None:
    # v3 keeps every revision (no compaction): more writes than etcd v2's 1,000-event
    # window still replay from the first one.
    token = new_token(client)  # index 1 (size) and 2 (GC record)
    for i in range(1100):  # indexes 3..1102
        client.put(f"/{token}/m1", data={"value": str(i)})
    node = ok_json(client.get(f"/{token}/m1?wait=true"))["node"]
    assert isinstance(node, dict)
    assert (node["value"], node["modifiedIndex"], node["createdIndex"]) == ("0", 3, 3)


# -- other routes ---------------------------------------------------------------------------------


def test_home_redirects_to_the_protocol_page(client: Client) -> None:
    resp = client.get("/")
    assert resp.status_code == 301
    assert resp.headers["Location"] == HOME


def test_no_keys_api(client: Client) -> None:
    for path in ("/v2/keys", "/v2/keys/", "/v2/keys/foo"):
        resp = client.get(path)
        assert resp.status_code == 404
        assert resp.data == b"404 page not found\n"


def test_health_and_robots(client: Client) -> None:
    health = client.get("/health")
    assert (health.status_code, health.data) == (200, b"OK")
    robots = client.get("/robots.txt")
    assert robots.data == b"User-agent: *\nDisallow: /"


# -- app features the wire cannot show (both profiles) ----------------------------------------


@pytest.mark.parametrize("profile_name", ["etcd-v2", "discoveryserver"])
def test_public_url_none_hands_out_the_request_host(profile_name: str) -> None:
    app = DiscoveryApp(profile=profile_name)
    try:
        resp = Client(app).get("/new", base_url="http://fake.test:8087")
        assert re.fullmatch(r"http://fake\.test:8087/[0-9a-f]{32}", resp.get_data(as_text=True))
    finally:
        app.close()


def test_public_url_is_what_new_hands_out() -> None:
    app = DiscoveryApp(public_url="https://disco.example/")
    try:
        text = Client(app).get("/new", base_url="http://127.0.0.1:1").get_data(as_text=True)
        assert re.fullmatch(r"https://disco\.example/[0-9a-f]{32}", text)
    finally:
        app.close()


def test_in_process_transport_hands_out_discovery_etcd_io_and_is_journaled() -> None:
    app = DiscoveryApp()
    try:
        resp = Client(app).get(
            "/new",
            base_url="https://discovery.etcd.io",
            environ_overrides={TRANSPORT_KEY: "inprocess"},
        )
        assert re.fullmatch(
            r"https://discovery\.etcd\.io/[0-9a-f]{32}", resp.get_data(as_text=True)
        )
        assert [c.transport for c in app.calls] == ["inprocess"]
    finally:
        app.close()


def test_calls_journal() -> None:
    clock = ControllableClock(start=1_700_000_000, frozen=True)
    app = DiscoveryApp(clock=clock)
    try:
        client = Client(app)
        token = app.new_token(3)
        assert TOKEN_RE.fullmatch(token)
        client.put(f"/{token}/m1?prevExist=false", data={"value": "http://10.0.0.1:2380"})
        clock.advance(2)
        client.get(f"/{token}")
        client.delete(f"/{token}")
        put, get, delete = app.calls
        assert (put.method, put.path, put.query, put.status, put.transport) == (
            "PUT",
            f"/{token}/m1",
            "prevExist=false",
            201,
            "live",
        )
        assert put.form == {"value": ["http://10.0.0.1:2380"], "prevExist": ["false"]}
        assert put.time == 1_700_000_000
        assert get.time == 1_700_000_002
        assert (get.status, delete.status) == (200, 405)
        assert str(put) == f"PUT /{token}/m1?prevExist=false -> 201 (live)"
        assert str(get) == f"GET /{token} -> 200 (live)"
    finally:
        app.close()


def test_metrics_count_requests_by_endpoint_code_and_method() -> None:
    app = DiscoveryApp()
    try:
        client = Client(app)
        token = new_token(client)
        new_token(client)
        client.get("/new?size=x")
        client.put(f"/{token}/m1?prevExist=false", data={"value": "a"})
        client.put(f"/{token}/m1?prevExist=false", data={"value": "a"})
        client.get(f"/{token}")
        client.get("/health")
        client.post(f"/{token}/x")  # gorilla mux's 405: never reaches the handler
        client.get("/0123456789abcdef0123456789abcdef")  # proxied 404
        text = client.get("/metrics").get_data(as_text=True)
        assert 'code="405"' not in text
        assert 'endpoint_token_requests_total{code="404",method="GET"} 1' in text.splitlines()
        for line in [
            'endpoint_new_requests_total{code="200",method="GET"} 2',
            'endpoint_new_requests_total{code="400",method="GET"} 1',
            'endpoint_token_requests_total{code="201",method="PUT"} 1',
            'endpoint_token_requests_total{code="412",method="PUT"} 1',
            'endpoint_token_requests_total{code="200",method="GET"} 1',
            'endpoint_health_requests_total{code="200",method="GET"} 1',
            "# TYPE endpoint_token_requests_total counter",
        ]:
            assert line in text.splitlines(), line
    finally:
        app.close()


def test_reset_starts_over_and_releases_blocked_polls() -> None:
    app = DiscoveryApp()
    try:
        client = Client(app)
        token = new_token(client)
        old_store = app.store
        watcher_done = threading.Event()

        def wait() -> None:
            Client(app).get(f"/{token}?wait=true&recursive=true")
            watcher_done.set()

        thread = threading.Thread(target=wait)
        thread.start()
        wait_for_watchers(app, 1)
        app.reset()
        assert watcher_done.wait(WAIT)
        thread.join(timeout=WAIT)
        assert app.store is not old_store
        assert app.store.index == 0
        assert app.store.clock is old_store.clock
        assert app.calls == []
        assert "endpoint_" not in client.get("/metrics").get_data(as_text=True)
        assert client.get(f"/{token}").status_code == 404
    finally:
        app.close()


# -- etcd-v2 /v2/keys at the root (measured on etcd 3.4.23 --enable-v2) --------------------------
# etcd keeps v2 keys under "/1" and strips that prefix from replies, so the root's own key
# (and a cause that is the root) come out empty and are omitted.


def test_keys_api_root_listing_has_no_key() -> None:
    app = DiscoveryApp(keys_api=True)
    try:
        client = Client(app)
        assert client.put("/v2/keys/a", data={"value": "1"}).status_code == 201
        assert client.get("/v2/keys/").json == {
            "action": "get",
            "node": {
                "dir": True,
                "nodes": [{"key": "/a", "value": "1", "modifiedIndex": 1, "createdIndex": 1}],
            },
        }
    finally:
        app.close()


def test_keys_api_compare_and_delete_of_the_root_has_no_cause() -> None:
    app = DiscoveryApp(keys_api=True)
    try:
        client = Client(app)
        client.put("/v2/keys/a", data={"value": "1"})
        resp = client.delete("/v2/keys/?prevValue=a")
        assert resp.status_code == 403
        assert resp.json == {"errorCode": 102, "message": "Not a file", "index": 1}
    finally:
        app.close()


# -- token bookkeeping in both profiles --------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_name", "prefix", "new_steps", "health_steps"),
    [("etcd-v2", "/_etcd/registry", 1, 2), ("discoveryserver", "", 2, 4)],
)
def test_new_token_keys_and_index_steps(
    profile_name: str, prefix: str, new_steps: int, health_steps: int
) -> None:
    # etcd-v2: one PUT for /new, a create and a delete for /health. discoveryserver adds a
    # v3 garbage-collection record to each (handlers/new.go setupToken/deleteToken).
    app = DiscoveryApp(profile=profile_name)
    try:
        token = app.new_token(5)
        assert TOKEN_RE.fullmatch(token)
        assert app.token_key(token) == f"{prefix}/{token}"
        size = app.store.get(f"{prefix}/{token}/_config/size")
        assert size.node["value"] == "5"
        assert app.store.index == new_steps
        before = app.store.index
        assert Client(app).get("/health").data == b"OK"
        assert app.store.index == before + health_steps
        # The throw-away health token is gone again: only ours is left.
        listing = app.store.get(prefix or "/").node.get("nodes", [])
        assert [n["key"] for n in listing] == [f"{prefix}/{token}"]
    finally:
        app.close()


def test_a_timed_out_long_poll_is_not_counted() -> None:
    app = DiscoveryApp(profile=profile(0.05))
    try:
        client = Client(app)
        token = app.new_token()
        resp = client.get(f"/{token}?wait=true&waitIndex={app.store.index + 1}")
        assert (resp.status_code, resp.data) == (200, b"")
        assert "endpoint_token_requests_total" not in client.get("/metrics").get_data(as_text=True)
    finally:
        app.close()


# -- the store behind it: etcd's v2 API over v3 ---------------------------------------------------


def test_every_store_the_app_makes_follows_the_profile(app: DiscoveryApp) -> None:
    assert app.store.rules is V2_OVER_V3
    clock = ControllableClock()
    fresh = app.new_store(clock)
    assert (fresh.rules, fresh.clock) == (V2_OVER_V3, clock)
    app.reset()  # what the plugin does between tests (with new_store on the test's clock)
    assert app.store.rules is V2_OVER_V3
    assert DiscoveryApp().store.rules is ETCD_V2


def test_member_registering_again_keeps_its_place_before_a_stray_key(client: Client) -> None:
    token = new_token(client)
    client.put(f"/{token}/aaa", data={"value": "m1"})
    client.put(f"/{token}/stray", data={"value": "x"})
    again = ok_json(client.put(f"/{token}/aaa", data={"value": "m1"}))
    listing = ok_json(client.get(f"/{token}"))["node"]
    assert isinstance(listing, dict) and isinstance(again["node"], dict)
    by_created = sorted(listing["nodes"], key=lambda n: n["createdIndex"])
    assert [n["key"].rsplit("/", 1)[1] for n in by_created] == ["aaa", "stray"]
    assert again["node"]["createdIndex"] < again["node"]["modifiedIndex"]
