"""The control API (``/_fake/``) on the fixture's live server, driven over real HTTP.

Each test gets the fixture's fresh state; requests go over the socket as a suite in
another language sends them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unitutil import START, WAIT, Control
from werkzeug.test import Client

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._etcd_discovery import V04_TTL
from pytest_etcd_discovery._real.cluster import etcd_member_id
from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.control import MAX_BODY, ControlApp
from pytest_etcd_discovery._service.discovery import seeded_token_source
from pytest_etcd_discovery._v2store.clock import NS_PER_S, ControllableClock
from pytest_etcd_discovery._v2store.store import MAX_REAPER_WAIT, reaper_wait


def _everything(ctl: Control) -> dict[str, Any]:
    """All the state a bad request must leave alone."""
    return {
        "state": ctl.ok("GET", "state"),
        "faults": ctl.ok("GET", "faults"),
        "frozen": ctl.ok("GET", "clock")["frozen"],
        "calls": ctl.ok("GET", "calls"),
    }


# -- tokens ------------------------------------------------------------------------------


def test_seeding_a_token_writes_what_the_marker_writes(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    seeded = control.ok(
        "POST",
        "tokens",
        {
            "size": 3,
            "members": [
                "infra0",
                ["infra1", ["http://10.0.0.12:2380", " http://10.0.0.11:2380"]],
                {"name": "old", "peer_urls": "http://10.0.0.9:7001", "style": "v0.4"},
            ],
            "state": "started",
        },
    )
    url = seeded["url"]
    assert url == f"{etcd_discovery.url}/{seeded['token']}"
    # The same members written by the fixture's helpers (what the marker uses).
    other = etcd_discovery.new_token(3)
    etcd_discovery.register(other, "infra0", "http://10.0.0.1:2380", check_full=False)
    etcd_discovery.register(
        other, "infra1", ["http://10.0.0.12:2380", " http://10.0.0.11:2380"], check_full=False
    )
    etcd_discovery.register_v04(other, "old", "http://10.0.0.9:7001", start=False)
    etcd_discovery.set_state(other)
    mine, theirs = etcd_discovery.token(url), etcd_discovery.token(other)
    assert (mine.size, mine.state) == (theirs.size, theirs.state) == (3, "started")
    assert [(m.name, m.value, m.ttl) for m in mine.members] == [
        (m.name, m.value, m.ttl) for m in theirs.members
    ]
    assert mine.members[0].id == etcd_member_id(["http://10.0.0.1:2380"], url)
    assert mine.members[2].ttl == V04_TTL

    listed = control.ok("GET", "tokens")["tokens"]
    assert [t["token"] for t in listed] == [seeded["token"], other.rsplit("/", 1)[1]]
    first = listed[0]
    assert (first["size"], first["size_value"], first["state"]) == (3, "3", "started")
    assert [(m["name"], m["peer_urls"], m["ttl"]) for m in first["members"]] == [
        ("infra0", ["http://10.0.0.1:2380"], None),
        ("infra1", ["http://10.0.0.11:2380", "http://10.0.0.12:2380"], None),
        ("old", ["http://10.0.0.9:7001"], V04_TTL),
    ]


def test_a_token_with_no_body_is_a_size_3_token_like_new(control: Control) -> None:
    status, seeded = control.call("POST", "tokens")
    assert status == 201
    (token,) = control.ok("GET", "tokens")["tokens"]
    assert (token["token"], token["size"], token["members"], token["state"]) == (
        seeded["token"],
        3,
        [],
        None,
    )


def test_members_as_a_count(control: Control) -> None:
    control.ok("POST", "tokens", {"size": 2, "members": 2})
    (token,) = control.ok("GET", "tokens")["tokens"]
    assert [m["name"] for m in token["members"]] == ["member1", "member2"]


def test_a_registered_member_shows_with_its_ttl_left(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    etcd_discovery.clock.freeze()
    token = control.ok("POST", "tokens", {"size": 1})["url"]
    reply = requests.put(
        f"{token}/infra0", data={"value": "http://a:2380", "ttl": "60"}, timeout=WAIT
    )
    assert reply.status_code == 201
    control.ok("POST", "clock/advance", {"seconds": 15})
    (view,) = control.ok("GET", "tokens")["tokens"]
    assert [(m["key"], m["ttl"]) for m in view["members"]] == [("infra0", 45)]


@pytest.mark.etcd_discovery(profile="discoveryserver")
def test_tokens_on_the_discoveryserver_profile(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    url = control.ok("POST", "tokens", {"size": 1, "state": "started"})["url"]
    put = requests.put(f"{url}/m1", data={"value": "m1=http://a:2380"}, timeout=WAIT)
    assert put.json()["node"]["key"] == f"/{url.rsplit('/', 1)[1]}/m1"  # no /_etcd/registry
    (view,) = control.ok("GET", "tokens")["tokens"]
    assert (view["url"], view["size"], view["state"]) == (url, 1, "started")
    assert [(m["key"], m["name"]) for m in view["members"]] == [("m1", "m1")]


# -- control requests are invisible to the service ------------------------------------


def test_control_requests_are_not_journalled_counted_or_faulted(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    # A rule that hits every request the discovery app sees.
    control.ok("POST", "faults", {"status": 503, "route": "*"})
    seeded = control.ok("POST", "tokens", {"members": 1})  # would count as /new if routed
    assert control.ok("GET", "clock")["controllable"] is True
    assert requests.get(f"{etcd_discovery.url}/health", timeout=WAIT).status_code == 503
    (rule,) = control.ok("GET", "faults")["faults"]
    assert (rule["seen"], rule["fired"]) == (1, 1)  # only /health
    assert [(c["method"], c["path"]) for c in control.ok("GET", "calls")["calls"]] == [
        ("GET", "/health")
    ]
    assert [(c.method, c.path) for c in etcd_discovery.calls] == [("GET", "/health")]
    control.ok("DELETE", "faults")
    metrics = requests.get(f"{etcd_discovery.url}/metrics", timeout=WAIT).text
    assert "endpoint_new_requests_total" not in metrics
    assert "endpoint_token_requests_total" not in metrics
    assert seeded["token"] in etcd_discovery.tokens()[0]


# -- the clock ---------------------------------------------------------------------------


def test_advancing_past_a_v04_ttl_expires_the_member_and_wakes_its_watcher(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    url = control.ok("POST", "tokens", {"size": 1, "members": [{"name": "n1", "style": "v0.4"}]})[
        "url"
    ]
    index = etcd_discovery.token(url).index
    events: list[dict[str, Any]] = []

    def watch() -> None:
        reply = requests.get(
            url, params={"wait": "true", "recursive": "true", "waitIndex": index + 1}, timeout=WAIT
        )
        events.append(reply.json())

    thread = threading.Thread(target=watch)
    thread.start()
    assert etcd_discovery.app.store.wait_for_watchers(1, timeout=WAIT)
    before = control.ok("GET", "clock")["now"]
    after = control.ok("POST", "clock/advance", {"seconds": V04_TTL + 1})
    assert after["now"] >= before + V04_TTL + 1
    thread.join(WAIT)
    assert not thread.is_alive()
    assert events[0]["action"] == "expire"
    assert events[0]["node"]["key"].endswith("/n1")
    (view,) = control.ok("GET", "tokens")["tokens"]
    assert view["members"] == []


def test_freeze_and_unfreeze(control: Control) -> None:
    frozen = control.ok("POST", "clock/freeze")
    assert frozen["frozen"] is True
    assert control.ok("GET", "clock")["now"] == frozen["now"]  # time stands still
    moved = control.ok("POST", "clock/advance", {"seconds": 2.5})
    assert moved["now"] == pytest.approx(frozen["now"] + 2.5)
    running = control.ok("POST", "clock/unfreeze")
    assert running["frozen"] is False
    assert running["now"] >= moved["now"]


# -- reset and state ---------------------------------------------------------------------


def test_reset_empties_everything_and_brings_the_clock_back(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    control.ok("POST", "tokens", {"members": 2})
    control.ok("POST", "faults", {"status": 500, "route": "new"})
    control.ok("POST", "clock/freeze")
    control.ok("POST", "clock/advance", {"seconds": 86400 * 30})
    requests.get(f"{etcd_discovery.url}/new", timeout=WAIT)
    assert control.ok("POST", "reset") == {"index": 0}
    assert control.ok("GET", "tokens") == {"tokens": [], "index": 0}
    assert control.ok("GET", "faults") == {"faults": []}
    assert control.ok("GET", "calls") == {"calls": [], "next": 0}
    clock = control.ok("GET", "clock")
    assert clock["frozen"] is False
    assert abs(clock["now"] - time.time()) < 60  # real time again, not 30 days ahead
    assert requests.get(f"{etcd_discovery.url}/new", timeout=WAIT).status_code == 200


def test_state_round_trip(control: Control, etcd_discovery: EtcdDiscovery) -> None:
    control.ok("POST", "tokens", {"members": ["a", "b"], "state": "started"})
    state = control.ok("GET", "state")
    assert state == etcd_discovery.snapshot()
    tokens = control.ok("GET", "tokens")
    control.ok("POST", "reset")
    assert control.ok("GET", "tokens")["tokens"] == []
    assert control.ok("PUT", "state", state) == {"index": state["store"]["index"]}
    assert control.ok("GET", "tokens") == tokens
    assert control.ok("GET", "state") == state


def test_a_state_over_10_mib_round_trips(control: Control, etcd_discovery: EtcdDiscovery) -> None:
    # Two 6 MB registrations (each within Go's 10 MiB form limit) make a state of over
    # 24 MB (each value is in the tree and in the history): the live server must give
    # the control API more than the discovery routes' 10 MiB + 1 byte.
    url = control.ok("POST", "tokens", {"size": 2})["url"]
    for name in ("m1", "m2"):
        value = name + "=http://10.0.0.1:2380," + "x" * 6_000_000
        put = requests.put(f"{url}/{name}", data={"value": value}, timeout=WAIT)
        assert put.status_code == 201, put.text[:200]
    reply = control.session.get(f"{control.url}/_fake/state", timeout=WAIT)
    assert len(reply.content) > 24_000_000
    state = reply.json()
    control.ok("POST", "reset")
    put = control.session.put(f"{control.url}/_fake/state", data=reply.content, timeout=WAIT)
    assert (put.status_code, put.json()) == (200, {"index": state["store"]["index"]})
    assert control.ok("GET", "state") == state
    # (The discovery routes keep Go's 10 MiB: test_gohttp's "POST too large".)


def test_the_control_apis_own_limit_is_in_force_on_the_live_server(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    # Only the head is sent: the answer comes from the Content-Length alone.
    host, port = etcd_discovery.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(
            b"PUT /_fake/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1)
        )
        head = sock.makefile("rb").readline()
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert control.ok("GET", "tokens")["tokens"] == []


def test_a_store_refuses_an_expiry_past_int64_and_changes_nothing() -> None:
    app = DiscoveryApp(clock=ControllableClock(START, frozen=True))
    token = app.new_token(3)
    before = app.store.snapshot()
    bad = json.loads(_one_key_state(2**63))["store"]
    with pytest.raises(ValueError, match="expireNs"):
        app.store.restore(bad)
    assert app.store.snapshot() == before
    assert app.token_names() == [token]
    app.store.close()


def test_the_expiry_thread_never_sleeps_past_what_a_lock_takes() -> None:
    # Python's lock timeouts end at threading.TIMEOUT_MAX (~292 years): a longer sleep
    # raised OverflowError and killed the expiry thread.
    assert reaper_wait(2**63 - 1, 0) <= threading.TIMEOUT_MAX
    assert reaper_wait(2**63 - 1, 0) == MAX_REAPER_WAIT
    assert reaper_wait(5 * NS_PER_S, 2 * NS_PER_S) == 3.0
    assert reaper_wait(1, 2) == 0.0


def test_a_fault_rule_over_http(control: Control, etcd_discovery: EtcdDiscovery) -> None:
    added = control.ok(
        "POST", "faults", {"status": 503, "route": "size", "times": 1, "method": "get"}
    )
    assert added["description"] == "503 GET size"
    assert (added["seen"], added["fired"], added["method"]) == (0, 0, ["GET"])
    url = control.ok("POST", "tokens", {"size": 3})["url"]
    first = requests.get(f"{url}/_config/size", timeout=WAIT)
    second = requests.get(f"{url}/_config/size", timeout=WAIT)
    assert (first.status_code, first.text) == (503, "Service Unavailable\n")
    assert second.status_code == 200
    (rule,) = control.ok("GET", "faults")["faults"]
    assert (rule["seen"], rule["fired"], rule["exhausted"]) == (2, 1, True)
    calls = control.ok("GET", "calls")["calls"]
    assert [(c["status"], c["fault"]) for c in calls] == [(503, "503 GET size"), (200, None)]
    assert control.ok("DELETE", "faults") == {"removed": 1}
    assert control.ok("GET", "faults") == {"faults": []}


def test_a_regex_rule_and_a_delay_rule_read_back(control: Control) -> None:
    control.ok("POST", "faults", {"action": "drop", "path_regex": "^/[a-f0-9]+/_state$"})
    control.ok("POST", "faults", {"action": "delay", "delay": 0.5, "nth": 2})
    rules = control.ok("GET", "faults")["faults"]
    assert [(r["action"], r["path_regex"], r["delay"], r["nth"], r["times"]) for r in rules] == [
        ("drop", "^/[a-f0-9]+/_state$", 0.0, None, None),
        ("delay", None, 0.5, 2, 1),
    ]


def test_calls_since_and_limit(control: Control, etcd_discovery: EtcdDiscovery) -> None:
    for n in range(5):
        requests.get(f"{etcd_discovery.url}/robots.txt?n={n}", timeout=WAIT)
    everything = control.ok("GET", "calls")
    assert [c["number"] for c in everything["calls"]] == [0, 1, 2, 3, 4]
    assert everything["next"] == 5
    later = control.ok("GET", "calls?since=3")
    assert [c["query"] for c in later["calls"]] == ["n=3", "n=4"]
    assert control.ok("GET", "calls?since=5") == {"calls": [], "next": 5}
    assert [c["number"] for c in control.ok("GET", "calls?limit=2")["calls"]] == [3, 4]
    first = everything["calls"][0]
    assert (first["method"], first["path"], first["status"], first["transport"]) == (
        "GET",
        "/robots.txt",
        200,
        "live",
    )


def test_paging_with_since_and_limit_skips_nothing(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    for n in range(11):
        requests.get(f"{etcd_discovery.url}/robots.txt?n={n}", timeout=WAIT)
    first = control.ok("GET", "calls?since=0&limit=3")
    assert [c["number"] for c in first["calls"]] == [0, 1, 2]
    assert first["next"] == 3
    # Following `next` page by page reads every call once, in order.
    seen, since = [], 0
    while True:
        page = control.ok("GET", f"calls?since={since}&limit=3")
        if not page["calls"]:
            break
        seen.extend(c["query"] for c in page["calls"])
        since = page["next"]
    assert seen == [f"n={n}" for n in range(11)]
    assert since == 11
    assert control.ok("GET", "calls?since=4&limit=0") == {"calls": [], "next": 4}


def test_call_numbers_survive_trimming() -> None:
    app = DiscoveryApp(max_calls=3)
    client = Client(ControlApp(app))
    for n in range(10):
        client.get(f"/robots.txt?n={n}")
    data = client.get("/_fake/calls?since=8").get_json()
    assert [(c["number"], c["query"]) for c in data["calls"]] == [(8, "n=8"), (9, "n=9")]
    assert data["next"] == 10
    kept = client.get("/_fake/calls").get_json()["calls"]
    # The oldest are gone; the numbers of those kept did not shift.
    assert [c["query"] for c in kept] == [f"n={c['number']}" for c in kept]
    assert kept[-1]["number"] == 9 and len(kept) < 10


# -- bad input ---------------------------------------------------------------------------


def _one_key_state(expire_ns: int) -> str:
    """A state of one key ``/k`` that expires at ``expire_ns``."""
    key = {"path": "/k", "createdIndex": 1, "modifiedIndex": 1, "value": "v"}
    root = {"path": "/", "createdIndex": 0, "modifiedIndex": 0, "children": [key]}
    key["expireNs"] = expire_ns
    return json.dumps({"store": {"index": 1, "root": root, "history": []}})


BAD = [
    ("POST", "clock/advance", '{"seconds": -1}', "seconds must be >= 0"),
    ("POST", "clock/advance", '{"seconds": "10"}', "seconds must be a number"),
    ("POST", "clock/advance", '{"seconds": true}', "seconds must be a number"),
    ("POST", "clock/advance", '{"seconds": NaN}', "invalid JSON"),
    ("POST", "clock/advance", '{"seconds": 1, "minutes": 2}', "unknown advance fields"),
    ("POST", "clock/advance", "", "a JSON object body is required"),
    ("POST", "clock/advance", "[1]", "must be a JSON object"),
    ("POST", "clock/freeze", '{"now": 1}', "unknown freeze fields"),
    ("POST", "reset", "{nope", "invalid JSON"),
    ("POST", "tokens", '{"size": "3"}', "size must be an integer"),
    ("POST", "tokens", '{"sizes": 3}', "unknown token fields"),
    ("POST", "tokens", '{"members": [{"peer_urls": "http://x"}]}', "has no name"),
    ("POST", "tokens", '{"members": ["a/b"]}', "without '/'"),
    ("POST", "tokens", '{"members": [{"name": "a", "style": "v2"}]}', "style must be"),
    ("POST", "tokens", '{"members": ["a", ["b", "http://10.0.0.1:2380"]]}', "same key"),
    ("POST", "tokens", '{"members": -1}', "members: a count must be >= 0"),
    ("POST", "tokens", '{"members": ["a,b"]}', "holds no ',' or '='"),
    ("POST", "tokens", '{"members": [["a", "http://h:2380/path"]]}', "is not http(s)://host:port"),
    ("POST", "tokens", '{"members": [{"name": "_state", "style": "v0.4"}]}', "start with '_'"),
    ("POST", "tokens", '{"state": 1}', "state must be a string"),
    ("POST", "faults", '{"action": "explode"}', "unknown fault action"),
    ("POST", "faults", '{"status": 42}', "fault status"),
    ("POST", "faults", '{"route": "nowhere"}', "unknown route"),
    ("POST", "faults", '{"times": 0}', "must be a positive integer"),
    ("POST", "faults", '{"delay": -1}', "fault delay must be"),
    ("POST", "faults", '{"action": "call"}', "needs on_match"),
    ("POST", "faults", '{"on_match": "x"}', "unknown fault fields"),
    ("PUT", "state", '{"index": 3}', 'a state is {"store": ...}'),
    ("PUT", "state", '{"store": {"index": 1, "root": {"path": "/"}}}', "createdIndex"),
    ("PUT", "state", '{"store": {"index": -1, "root": {}}}', "store.index must be >= 0"),
    (
        "PUT",
        "state",
        '{"store": {"index": 1, "root": {"path": "/", "createdIndex": 0, '
        '"modifiedIndex": 0, "children": [{"path": "/a", "createdIndex": 1, '
        '"modifiedIndex": 1}]}}}',
        "/a value must be a string",
    ),
    (
        "PUT",
        "state",
        '{"store": {"index": 1, "root": {"path": "/", "createdIndex": 0, '
        '"modifiedIndex": 0, "children": []}, "history": [{"action": "set", "node": 5}]}}',
        "store.history[0].node must be an object",
    ),
    (
        "PUT",
        "state",
        '{"store": {"index": 1, "root": {"path": "/", "createdIndex": 0, '
        '"modifiedIndex": 0, "children": []}, "history": [{"action": "set", "node": '
        '{"modifiedIndex": 1}}]}}',
        "store.history[0].node.key must be a string",
    ),
    (
        "PUT",
        "state",
        '{"store": {"index": 1, "root": {"path": "/", "createdIndex": 0, '
        '"modifiedIndex": 0, "children": []}, "history": [{"action": "boom", "node": '
        '{"key": "/a", "modifiedIndex": 1}}]}}',
        "store.history[0].action must be one of",
    ),
    ("PUT", "state", "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("POST", "clock/advance", '{"seconds": 1e300}', "seconds too large"),
    # Python reads 1e400 as inf: the message says the number is out of range.
    ("POST", "clock/advance", '{"seconds": 1e400}', "number out of range: 1e400"),
    ("POST", "faults", '{"delay": -1e999}', "number out of range: -1e999"),
    # etcd keeps an expiry as int64 nanoseconds: 2^63 and beyond are no instant.
    ("PUT", "state", _one_key_state(2**63), "/k expireNs out of range"),
    ("PUT", "state", _one_key_state(10**20), "/k expireNs out of range"),
    ("POST", "clock/advance", '{"seconds": 1000000000000}', "the clock would pass 2262-04-11"),
    ("POST", "tokens", '{"size": 18446744073709551616}', "size out of range"),
    ("POST", "tokens", '{"members": 1001}', "at most 1000 members"),
    ("GET", "calls?since=-1", None, "since must be a whole number"),
    ("GET", "calls?since=%C2%B2", None, "since must be a whole number"),
    ("GET", "calls?after=1", None, "unknown query fields"),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), BAD)
def test_bad_input_is_a_400_that_changes_nothing(
    control: Control,
    etcd_discovery: EtcdDiscovery,
    method: str,
    path: str,
    body: str | None,
    message: str,
) -> None:
    control.ok("POST", "tokens", {"members": 1, "state": "started"})
    control.ok("POST", "faults", {"status": 503, "route": "new", "times": 1})
    requests.get(f"{etcd_discovery.url}/robots.txt", timeout=WAIT)
    before = _everything(control)
    status, reply = control.call(method, path, raw=body)
    assert status == 400
    assert message in reply["message"]
    assert list(reply) == ["message"]
    assert _everything(control) == before


def test_unknown_endpoints_and_methods(control: Control) -> None:
    assert control.call("GET", "nope") == (404, {"message": "no control endpoint /_fake/nope"})
    status, reply = control.call("GET", "reset")
    assert (status, reply) == (405, {"message": "GET is not allowed on /_fake/reset"})
    allowed = requests.delete(f"{control.url}/_fake/clock", timeout=WAIT).headers["Allow"]
    assert set(allowed.split(", ")) == {"GET", "HEAD"}


def test_the_dashboard_and_its_files(control: Control) -> None:
    page = requests.get(f"{control.url}/_fake/", timeout=WAIT)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'src="static/dashboard.js"' in page.text
    script = requests.get(f"{control.url}/_fake/static/dashboard.js", timeout=WAIT)
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "clock/advance" in script.text
    style = requests.get(f"{control.url}/_fake/static/dashboard.css", timeout=WAIT)
    assert style.headers["Content-Type"] == "text/css; charset=utf-8"
    missing = requests.get(f"{control.url}/_fake/static/secret.py", timeout=WAIT)
    assert missing.status_code == 404


# -- seeding tokens ------------------------------------------------------------------------


def test_a_seeded_source_repeats_and_a_reset_starts_it_over() -> None:
    first, again = seeded_token_source(7), seeded_token_source(7)
    tokens = [first() for _ in range(3)]
    assert tokens == [again() for _ in range(3)]
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)
    assert tokens != [seeded_token_source(8)() for _ in range(3)]

    app = DiscoveryApp()
    client = Client(ControlApp(app, seed=7))
    handed = [client.get("/new").text.rsplit("/", 1)[1] for _ in range(2)]
    assert handed == tokens[:2]
    assert client.get("/health").text == "OK"  # health checks do not use the sequence
    assert client.post("/_fake/tokens").get_json()["token"] == tokens[2]
    client.post("/_fake/reset")
    assert client.get("/new").text.rsplit("/", 1)[1] == tokens[0]


def test_a_seeded_source_skips_tokens_a_restored_state_holds() -> None:
    app = DiscoveryApp()
    client = Client(ControlApp(app, seed=7))
    first = client.get("/new").text.rsplit("/", 1)[1]
    state = client.get("/_fake/state").get_json()
    client.post("/_fake/reset")  # the sequence starts over...
    assert client.put("/_fake/state", data=json.dumps(state)).status_code == 200
    # ...and its first token is taken: /new hands out the next one instead of failing.
    reply = client.get("/new")
    assert reply.status_code == 200
    tokens = seeded_token_source(7)
    assert [tokens(), tokens()] == [first, reply.text.rsplit("/", 1)[1]]


def test_disabled_control_hands_everything_to_the_app() -> None:
    app = DiscoveryApp()
    reply = Client(ControlApp(app, enabled=False)).get("/_fake/state")
    assert (reply.status_code, reply.text) == (404, "404 page not found\n")
    assert [c.path for c in app.calls] == ["/_fake/state"]  # the app answered it


# -- hostile input never breaks the fake ---------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "size",
                    "members",
                    "state",
                    "seconds",
                    "store",
                    "index",
                    "root",
                    "history",
                    "name",
                    "peer_urls",
                    "style",
                    "status",
                    "route",
                    "path",
                    "method",
                    "times",
                    "nth",
                    "delay",
                    "action",
                    "body",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
ENDPOINTS = [
    ("POST", "tokens"),
    ("PUT", "state"),
    ("POST", "clock/advance"),
    ("POST", "clock/freeze"),
    ("POST", "reset"),
    ("POST", "faults"),
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=st.sampled_from(ENDPOINTS), body=JSON_VALUES)
def test_any_json_gets_an_answer_never_a_crash(endpoint: tuple[str, str], body: Any) -> None:
    app = DiscoveryApp(clock=ControllableClock(START, frozen=True))
    client = Client(ControlApp(app))  # an exception inside would raise here
    method, path = endpoint
    reply = client.open(f"/_fake/{path}", method=method, data=json.dumps(body))
    assert reply.status_code in (200, 201, 400, 409), reply.text
    assert reply.content_type == "application/json"
    if reply.status_code >= 400:
        assert list(reply.get_json()) == ["message"]
    # Whatever was accepted leaves a fake that still answers its own API and the service.
    for read in ("state", "tokens", "faults", "clock", "calls"):
        assert client.get(f"/_fake/{read}").status_code == 200
    assert client.get("/health").status_code in (200, 503)
    app.store.close()


def test_fake_discovery_serves_the_control_api_too() -> None:
    from pytest_etcd_discovery import fake_discovery

    with fake_discovery(frozen=True, intercept=False) as disco:
        ctl = Control(disco.url)
        seeded = ctl.ok("POST", "tokens", {"size": 1, "members": 1})
        assert disco.token(seeded["url"]).names == ["member1"]
        ctl.ok("POST", "clock/advance", {"seconds": 60})
        assert disco.clock.now() == pytest.approx(ctl.ok("GET", "clock")["now"])
        ctl.session.close()


@pytest.mark.parametrize("count", [100_000_000, 10**18])
def test_a_huge_member_count_is_refused_before_any_list_is_made(
    control: Control, count: int
) -> None:
    """The count is checked against MAX_MEMBERS first: 10**8 members grew the process by
    gigabytes when the names were listed before the check."""
    tracemalloc.start()
    try:
        status, reply = control.call("POST", "tokens", {"members": count})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 400
    assert reply["message"] == f"members: at most 1000 members per token, got {count}"
    assert peak < 2 * 2**20, f"refusing it took {peak} bytes"
