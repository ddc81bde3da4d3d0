"""The control API's verification endpoints (``/_fake/faults/<id>``, ``/_fake/calls/count``,
server-side journal filters, ``/_fake/health``), on the fixture's live server over HTTP."""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unitutil import WAIT, Control, wait_until
from werkzeug.test import Client

from pytest_etcd_discovery import EtcdDiscovery, FaultPlan, FaultRule
from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.control import ControlApp
from pytest_etcd_discovery._stack import FakeStack

# -- fault rules by id -------------------------------------------------------------------


def test_fault_rules_have_ids_to_get_and_delete_one_by(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    first = control.ok("POST", "faults", {"status": 503, "route": "new", "times": 1})
    second = control.ok("POST", "faults", {"status": 500, "route": "health"})
    assert isinstance(first["id"], int) and first["id"] > 0
    assert second["id"] > first["id"]
    requests.get(f"{etcd_discovery.url}/new", timeout=WAIT)
    requests.get(f"{etcd_discovery.url}/new", timeout=WAIT)
    listed = control.ok("GET", "faults")["faults"]
    assert [(r["id"], r["seen"], r["fired"]) for r in listed] == [
        (first["id"], 2, 1),
        (second["id"], 0, 0),
    ]
    one = control.ok("GET", f"faults/{first['id']}")
    assert one == listed[0]
    # Deleting one leaves the other, and the answer is the rule as it was.
    assert control.ok("DELETE", f"faults/{first['id']}") == {"removed": listed[0]}
    assert [r["id"] for r in control.ok("GET", "faults")["faults"]] == [second["id"]]
    status, error = control.call("GET", f"faults/{first['id']}")
    assert status == 404
    assert error["message"].startswith(f"no fault rule with id '{first['id']}'")
    assert requests.get(f"{etcd_discovery.url}/health", timeout=WAIT).status_code == 500


@pytest.mark.parametrize("bad", ["0", "999999999", "abc", "-1", "1.0", "9" * 5000, "%C3%A9"])
def test_an_unknown_fault_id_answers_404_and_changes_nothing(control: Control, bad: str) -> None:
    control.ok("POST", "faults", {"status": 503})
    before = control.ok("GET", "faults")
    for method in ("GET", "DELETE"):
        status, error = control.call(method, f"faults/{bad}")
        assert status == 404, (method, error)
        assert "no fault rule with id" in error["message"]
    assert control.ok("GET", "faults") == before


def test_the_python_plan_shows_the_same_ids_and_counts(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    rule = etcd_discovery.faults.fail(502, route="health", times=1)
    over_http = control.ok("POST", "faults", {"action": "drop", "route": "new"})
    requests.get(f"{etcd_discovery.url}/health", timeout=WAIT)
    listed = control.ok("GET", "faults")["faults"]
    assert [r["id"] for r in listed] == [rule.id, over_http["id"]]
    assert listed[0] == rule.as_dict()
    assert (rule.seen, rule.fired, rule.exhausted) == (1, 1, True)
    added = etcd_discovery.faults.get(over_http["id"])
    assert isinstance(added, FaultRule) and added.action == "drop"
    # Removing by id from Python is seen over HTTP, and a second removal is a no-op.
    assert etcd_discovery.faults.remove(over_http["id"]) is True
    assert etcd_discovery.faults.remove(over_http["id"]) is False
    assert control.call("GET", f"faults/{over_http['id']}")[0] == 404


def test_rule_ids_are_unique_and_not_part_of_equality() -> None:
    one, two = FaultRule(status=503), FaultRule(status=503)
    assert one.id != two.id and one == two
    plan = FaultPlan([one, two])
    # remove() takes the rule itself, not the first rule equal to it.
    assert plan.remove(two) is True
    assert plan.rules == [one] and plan.rules[0] is one


def test_deleting_a_delay_rule_releases_the_requests_it_holds(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    rule = control.ok("POST", "faults", {"action": "delay", "delay": 3600, "route": "health"})
    answered = threading.Event()
    statuses: list[int] = []

    def ask() -> None:
        statuses.append(requests.get(f"{etcd_discovery.url}/health", timeout=60).status_code)
        answered.set()

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    # The request is held once the rule has fired.
    wait_until(lambda: control.ok("GET", f"faults/{rule['id']}")["fired"] == 1, "the rule fired")
    assert not answered.is_set()
    control.ok("DELETE", f"faults/{rule['id']}")
    assert answered.wait(WAIT), "the delayed request was not released"
    assert statuses == [200]


# -- counting calls, with the near misses ------------------------------------------------


def test_count_answers_the_count_and_the_closest_misses_as_assert_requested(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    token = control.ok("POST", "tokens", {"size": 3})["url"]
    requests.get(f"{token}/_config/size", timeout=WAIT)
    requests.put(f"{token}/m1", data={"value": "m1=http://10.0.0.1:2380"}, timeout=WAIT)
    requests.get(f"{etcd_discovery.url}/health", timeout=WAIT)
    counted = control.ok("POST", "calls/count", {"method": "PUT", "token": token})
    assert (counted["count"], counted["matched"], counted["message"]) == (1, [1], None)
    wanted = {"method": "DELETE", "token": token, "status": 200}
    missed = control.ok("POST", "calls/count", wanted)
    assert (missed["count"], missed["matched"], missed["unmatched"]) == (0, [], 3)
    assert missed["filter"] == f"DELETE token={token.rsplit('/', 1)[1]} status=200"
    # The closest first (fewest criteria missed, then the more alike path), each with
    # what it missed: the words assert_requested uses.
    assert [(c["call"]["number"], c["missed"]) for c in missed["closest"]] == [
        (0, ["method GET, not DELETE"]),
        (1, ["method PUT, not DELETE", "status 201, not 200"]),
        (2, ["method GET, not DELETE", "no token"]),
    ]
    with pytest.raises(AssertionError) as python_side:
        etcd_discovery.assert_requested(method="DELETE", token=token, status=200)
    assert missed["message"] == str(python_side.value)
    assert "closest requests that did not match (3 of 3)" in missed["message"]


def test_count_takes_times_since_status_ranges_and_path_regex(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    control.ok("POST", "faults", {"status": 503, "route": "health", "times": 2})
    for _ in range(3):
        requests.get(f"{etcd_discovery.url}/health", timeout=WAIT)
    count = control.ok
    assert count("POST", "calls/count", {"status": "500-599"})["count"] == 2
    assert count("POST", "calls/count", {"status": [200, 503]})["count"] == 3
    assert count("POST", "calls/count", {"status": 503, "since": 1})["matched"] == [1]
    assert count("POST", "calls/count", {"path_regex": "^/heal"})["count"] == 3
    assert count("POST", "calls/count", {"route": "health", "times": 3})["message"] is None
    told = count("POST", "calls/count", {"route": "health", "times": 2})["message"]
    assert told.startswith("etcd discovery: expected exactly 2 requests matching route=health")
    everything = count("POST", "calls/count")
    assert (everything["count"], everything["filter"], everything["next"]) == (3, "any request", 3)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"metod": "GET"}, "unknown count fields ['metod']"),
        ({"route": "nope"}, "unknown route 'nope'"),
        ({"status": "5xx"}, "status: expected a status"),
        ({"status": 1000}, "status: expected a status"),
        ({"status": True}, "status: expected a status"),
        ({"status": []}, "status: expected at least one status"),
        ({"method": 3}, "method: expected a string or a non-empty list"),
        ({"method": []}, "method: expected a string or a non-empty list"),
        ({"path": 1}, "path: expected a string"),
        ({"path_regex": "("}, "bad regex"),
        ({"path": "/x", "path_regex": "x"}, "not both"),
        ({"times": -1}, "times must be >= 0"),
        ({"since": "1"}, "since must be an integer"),
        ([], "must be a JSON object"),
    ],
)
def test_a_bad_count_request_answers_400(control: Control, body: Any, says: str) -> None:
    status, error = control.call("POST", "calls/count", body)
    assert status == 400, error
    assert says in error["message"]


# -- the journal: headers, bodies and filters on the server side -------------------------


def test_calls_keep_headers_and_body(control: Control, etcd_discovery: EtcdDiscovery) -> None:
    token = control.ok("POST", "tokens", {"size": 3})["url"]
    requests.put(
        f"{token}/m1",
        data={"value": "m1=http://10.0.0.1:2380"},
        headers={"X-Trace": "abc"},
        timeout=WAIT,
    )
    (call,) = control.ok("GET", "calls")["calls"]
    assert ["X-Trace", "abc"] in call["headers"]
    assert ["Content-Type", "application/x-www-form-urlencoded"] in call["headers"]
    assert call["body"] == "value=m1%3Dhttp%3A%2F%2F10.0.0.1%3A2380"
    assert (call["body_size"], call["truncated"]) == (len(call["body"]), False)
    assert (call["route"], call["watch"], call["created_url"]) == ("machine", False, None)


def test_calls_filter_on_the_server_and_page_over_the_matches(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    for n in range(9):
        path = "health" if n % 3 == 0 else "robots.txt"
        requests.get(f"{etcd_discovery.url}/{path}?n={n}", timeout=WAIT)
    health = control.ok("GET", "calls?route=health")
    assert [c["number"] for c in health["calls"]] == [0, 3, 6]
    assert health["next"] == 9
    # Paging over the matches skips none of them.
    first = control.ok("GET", "calls?route=health&since=0&limit=2")
    assert ([c["number"] for c in first["calls"]], first["next"]) == ([0, 3], 4)
    rest = control.ok("GET", f"calls?route=health&since={first['next']}&limit=2")
    assert ([c["number"] for c in rest["calls"]], rest["next"]) == ([6], 9)
    # Without since, limit takes the latest matches.
    assert [c["number"] for c in control.ok("GET", "calls?path=/robots*&limit=2")["calls"]] == [
        7,
        8,
    ]
    assert len(control.ok("GET", "calls?method=GET,HEAD&status=200")["calls"]) == 9
    assert len(control.ok("GET", "calls?status=500-599")["calls"]) == 0
    assert len(control.ok("GET", "calls?transport=live&path_regex=n%3D1")["calls"]) == 0  # query
    assert [c["number"] for c in control.ok("GET", "calls?path_regex=^/h")["calls"]] == [0, 3, 6]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("route=nope", "unknown route"),
        ("status=abc", "status: expected a status"),
        ("path=/a&path=/b", "path given 2 times"),
        ("path_regex=(", "bad regex"),
        ("colour=red", "unknown query fields ['colour']"),
    ],
)
def test_a_bad_calls_filter_answers_400(control: Control, query: str, says: str) -> None:
    status, error = control.call("GET", f"calls?{query}")
    assert status == 400, error
    assert says in error["message"]


# -- health ------------------------------------------------------------------------------


def test_health_says_the_fake_is_up_with_its_counts(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    from pytest_etcd_discovery import __version__

    control.ok("POST", "faults", {"status": 503, "route": "new"})
    requests.get(f"{etcd_discovery.url}/robots.txt", timeout=WAIT)
    health = control.ok("GET", "health")
    assert health == {
        "status": "ok",
        "version": __version__,
        "profile": "etcd-v2",
        "index": etcd_discovery.app.store.index,
        "calls": control.ok("GET", "calls")["next"],
        "faults": 1,
    }


# -- who may ask: the new endpoints are guarded as the others ----------------------------

NEW_ENDPOINTS = [
    ("GET", "/_fake/health", None),
    ("GET", "/_fake/openapi.json", None),
    ("GET", "/_fake/faults/1", None),
    ("DELETE", "/_fake/faults/1", None),
    ("POST", "/_fake/calls/count", {"route": "new"}),
    ("GET", "/_fake/calls?route=new", None),
]


def _stack_with_a_rule(**kwargs: Any) -> tuple[FakeStack, int]:
    stack = FakeStack(**kwargs).start()
    rule = stack.app.faults.fail(503, route="health")
    return stack, rule.id


@pytest.mark.parametrize(("method", "path", "body"), NEW_ENDPOINTS)
def test_the_new_endpoints_need_the_control_token(method: str, path: str, body: Any) -> None:
    stack, rule_id = _stack_with_a_rule(control_token="tok-123")
    try:
        target = stack.url + path.replace("/1", f"/{rule_id}")
        refused = requests.request(method, target, json=body, timeout=WAIT)
        assert refused.status_code == 401, refused.text
        assert "Authorization: Bearer TOKEN" in refused.json()["message"]
        auth = {"Authorization": "Bearer tok-123"}
        answered = requests.request(method, target, json=body, headers=auth, timeout=WAIT)
        assert answered.status_code == 200, answered.text
    finally:
        assert stack.close() == []


@pytest.mark.parametrize(("method", "path", "body"), NEW_ENDPOINTS)
def test_the_new_endpoints_check_host_and_origin(method: str, path: str, body: Any) -> None:
    stack, rule_id = _stack_with_a_rule()
    try:
        target = stack.url + path.replace("/1", f"/{rule_id}")
        rebound = requests.request(
            method, target, json=body, headers={"Host": "evil.example"}, timeout=WAIT
        )
        assert rebound.status_code == 403
        assert "does not answer for Host" in rebound.json()["message"]
        cross = requests.request(
            method, target, json=body, headers={"Origin": "http://evil.example"}, timeout=WAIT
        )
        if method == "GET":
            assert cross.status_code == 200  # reading: no CORS headers, a page cannot read it
            assert "Access-Control-Allow-Origin" not in cross.headers
        else:
            assert cross.status_code == 403
            assert "may not change the fake" in cross.json()["message"]
        assert len(stack.app.faults) == 1  # nothing was removed
    finally:
        assert stack.close() == []


def test_the_commands_help_names_every_control_route() -> None:
    from pytest_etcd_discovery.__main__ import build_parser
    from pytest_etcd_discovery._service.control import CONTROL_MAP

    text = build_parser().format_help()
    listed = {
        path: set(methods.split("|"))
        for methods, path in re.findall(r"^  ([A-Z|]+) +(/_fake/\S*)", text, re.MULTILINE)
    }
    routed = {
        rule.rule.replace("<rule_id>", "<id>").replace("<v3_rule_id>", "<id>"): (
            rule.methods or set()
        )
        - {"HEAD", "OPTIONS"}
        for rule in CONTROL_MAP.iter_rules()
        if rule.endpoint != "static"  # the dashboard's own files
    }
    assert listed == routed


# -- bad input never crashes -------------------------------------------------------------

_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_FILTER_VALUES = st.one_of(
    _ANY_JSON,
    st.sampled_from(["GET", "new", "*", "watch", "500-599", "599-500", "/*", "(", "1-", "live"]),
    st.lists(st.sampled_from([200, 503, "500-599", "GET", 1000, -1]), max_size=3),
)
_FILTER_KEYS = ["method", "route", "path", "path_regex", "token", "status", "transport"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.dictionaries(
        st.sampled_from([*_FILTER_KEYS, "since", "times", "other"]), _FILTER_VALUES, max_size=4
    )
    | _ANY_JSON,
    query=st.lists(
        st.tuples(st.sampled_from([*_FILTER_KEYS, "since", "limit"]), st.text(max_size=8)),
        max_size=4,
    ),
    # An id with "/" or a dot segment names another path: Go cleans it with a 301 first.
    rule_id=st.text(max_size=12).filter(lambda s: "/" not in s and s not in (".", "..")),
)
def test_any_filter_or_id_gets_a_json_answer_never_a_crash(
    body: Any, query: list[tuple[str, str]], rule_id: str
) -> None:
    app = DiscoveryApp()
    client = Client(ControlApp(app))  # an exception inside would raise here
    client.get("/health")
    client.put("/x", data="value=1")
    try:
        for reply in (
            client.post("/_fake/calls/count", data=json.dumps(body)),
            client.get("/_fake/calls", query_string=query),
            client.get(f"/_fake/faults/{quote(rule_id, safe='')}"),
        ):
            assert reply.status_code in (200, 400, 404), reply.text
            assert reply.content_type == "application/json"
            if reply.status_code >= 400:
                assert list(reply.get_json()) == ["message"]
    finally:
        app.store.close()
