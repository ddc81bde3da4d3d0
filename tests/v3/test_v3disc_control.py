"""The control API's ``/_fake/v3/`` routes: the command's etcd v3 endpoint (``--v3-port``)
driven over HTTP as a shell, Go or Terraform suite drives it.

Each route calls the ``etcd_discovery.v3`` methods (``V3Discovery``), so these tests check
the HTTP side (input, answers, errors) and that the Python face sees the same endpoint.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aetcd
import aetcd.exceptions
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import WAIT, Fake, run
from v3disc_util import FAKE, Endpoint, put, read

from pytest_etcd_discovery._stack import FakeStack
from pytest_etcd_discovery._v3face import REGISTRY, V3Discovery

__all__ = ["run"]  # the command's fixture, imported for the end-to-end test


class Api:
    """The control API of a fake with a v3 endpoint."""

    def __init__(self, url: str, v3: V3Discovery) -> None:
        self.url = url
        self.v3 = v3

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        data = None if body is None else json.dumps(body)
        return requests.request(
            method, f"{self.url}/_fake/v3/{path}", data=data, timeout=WAIT, **kw
        )


@pytest.fixture
def api() -> Iterator[Api]:
    stack = FakeStack().start()
    v3 = V3Discovery(stack.clock)
    stack.control.v3 = v3  # as the command does with --v3-port
    try:
        yield Api(stack.url, v3)
    finally:
        v3.close()
        assert stack.close() == []


def test_a_token_made_registered_read_and_deleted(api: Api) -> None:
    made = api.call("POST", "tokens", {"size": 2})
    assert made.status_code == 201, made.text
    body = made.json()
    token = body["token"]
    assert body["endpoints"] == api.v3.endpoints
    assert (body["size"], body["full"], body["members"]) == (2, False, [])
    # The Python face and a gRPC client see the same token.
    assert api.v3.token(token).size == 2
    assert read(api.v3.endpoint, f"{REGISTRY}/{token}/_config/size") == b"2"

    one = api.call(
        "POST", f"tokens/{token}/members", {"name": "m1", "peer_urls": "http://127.0.0.1:12381"}
    )
    assert one.status_code == 201, one.text
    two = api.call(
        "POST",
        f"tokens/{token}/members",
        {"name": "m0", "peer_urls": ["http://127.0.0.1:12380"], "member_id": "abc"},
    )
    assert two.status_code == 201, two.text
    assert two.json()["member"]["id"] == "abc"
    view = api.call("GET", f"tokens/{token}").json()
    # By create revision: m1 first, as etcd's discovery orders them.
    assert [m["name"] for m in view["members"]] == ["m1", "m0"]
    assert view["full"] is True
    assert view["initial_cluster"] == "m1=http://127.0.0.1:12381,m0=http://127.0.0.1:12380"
    assert api.v3.token(token).names == ["m1", "m0"]

    full = api.call(
        "POST", f"tokens/{token}/members", {"name": "m2", "peer_urls": "http://127.0.0.1:12382"}
    )
    assert full.status_code == 409
    assert "discovery: cluster is full" in full.json()["message"]

    gone = api.call("DELETE", f"tokens/{token}")
    assert gone.json() == {"token": token, "deleted": 3}
    assert api.call("GET", f"tokens/{token}").status_code == 404
    assert api.v3.tokens() == []


def test_a_named_token_and_the_refusals(api: Api) -> None:
    assert api.call("POST", "tokens", {"size": 1, "token": "my-tok"}).json()["token"] == "my-tok"
    again = api.call("POST", "tokens", {"token": "my-tok"})
    assert (again.status_code, "exists already" in again.json()["message"]) == (409, True)
    for bad in ({"size": 0}, {"size": "3"}, {"token": "a/b"}, {"token": ""}, {"sise": 3}):
        reply = api.call("POST", "tokens", bad)
        assert reply.status_code == 400, (bad, reply.text)
        assert list(reply.json()) == ["message"]
    api.v3.set_size("badsize", "x")  # etcd's "size key is bad"
    bad_size = api.call("POST", "tokens/badsize/members", {"name": "a", "peer_urls": "http://a:1"})
    assert (bad_size.status_code, bad_size.json()["message"]) == (409, "discovery: size key is bad")
    missing = api.call("POST", "tokens/nope/members", {"name": "a", "peer_urls": "http://a:1"})
    assert missing.status_code == 404
    for bad in (
        {"name": "a"},
        {"name": "a=b", "peer_urls": "http://a:1"},
        {"name": "a", "peer_urls": []},
    ):
        reply = api.call("POST", "tokens/my-tok/members", bad)
        assert reply.status_code == 400, (bad, reply.text)


def test_the_journal_pages_as_the_v2_one(api: Api) -> None:
    endpoint = Endpoint(FAKE, api.v3.endpoint)
    for n in range(3):
        put(endpoint, f"/k{n}", "v")
    reply = api.call("GET", "calls").json()
    puts = [c for c in reply["calls"] if c["method"] == "Put"]
    assert [(c["service"], c["key"], c["code"]) for c in puts] == [
        ("KV", f"/k{n}", "OK") for n in range(3)
    ]
    assert reply["next"] == len(reply["calls"]) == len(api.v3.calls)
    first = api.call("GET", "calls", params={"since": 0, "limit": 1}).json()
    assert [c["number"] for c in first["calls"]] == [0] and first["next"] == 1
    rest = api.call("GET", "calls", params={"since": first["next"]}).json()
    assert [c["number"] for c in rest["calls"]] == list(range(1, reply["next"]))
    latest = api.call("GET", "calls", params={"limit": 1}).json()
    assert [c["number"] for c in latest["calls"]] == [reply["next"] - 1]
    assert api.call("GET", "calls", params={"since": "-1"}).status_code == 400
    assert api.call("GET", "calls", params={"method": "Put"}).status_code == 400


def test_fault_rules_fire_list_and_go(api: Api) -> None:
    rule = api.call(
        "POST",
        "faults",
        {
            "action": "fail",
            "code": "INVALID_ARGUMENT",
            "message": "nope",
            "method": "Range",
            "times": 1,
        },
    )
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    with pytest.raises(aetcd.exceptions.InvalidArgumentError):
        read(api.v3.endpoint, "/k")
    assert read(api.v3.endpoint, "/k") is None  # times=1: the next Range is served
    listed = api.call("GET", "faults").json()["faults"]
    assert [(r["id"], r["fired"]) for r in listed] == [(rule_id, 1)]
    [failed] = [c for c in api.call("GET", "calls").json()["calls"] if c["code"] != "OK"]
    assert (failed["method"], failed["code"], failed["message"]) == (
        "Range",
        "INVALID_ARGUMENT",
        "nope",
    )
    assert failed["fault"] is not None
    # The same plan as the Python face's.
    assert api.v3.faults.rules[0].fired == 1
    delay = api.call(
        "POST", "faults", {"action": "delay", "seconds": 2, "key_prefix": "/slow"}
    ).json()
    drop = api.call("POST", "faults", {"action": "drop"}).json()
    assert (drop["service"], drop["times"]) == ("Watch", 1)  # V3Faults.drop's defaults
    assert api.call("GET", f"faults/{delay['id']}").json()["seconds"] == 2
    assert api.call("DELETE", f"faults/{rule_id}").json()["removed"]["id"] == rule_id
    assert api.call("GET", f"faults/{rule_id}").status_code == 404
    assert api.call("DELETE", "faults").json() == {"removed": 2}
    assert api.v3.faults.rules == []
    for bad in (
        {"action": "fail", "code": "OK"},
        {"action": "fail", "code": "unavailable"},
        {"action": "delay"},
        {"action": "delay", "seconds": -1},
        {"action": "drop", "seconds": 1},
        {"action": "fail", "service": "Nope"},
        {"action": "fail", "times": 0},
        {"action": "explode"},
    ):
        reply = api.call("POST", "faults", bad)
        assert reply.status_code == 400, (bad, reply.text)
    assert api.v3.faults.rules == []


def test_reset_empties_the_v3_endpoint_too(api: Api) -> None:
    token = api.call("POST", "tokens", {"size": 1}).json()["token"]
    put(Endpoint(FAKE, api.v3.endpoint), "/other", "v")
    api.call("POST", "faults", {"action": "drop"})
    before = api.call("GET", "calls").json()["next"]
    assert requests.post(f"{api.url}/_fake/reset", timeout=WAIT).status_code == 200
    assert api.call("GET", "tokens").json()["tokens"] == []
    assert api.call("GET", f"tokens/{token}").status_code == 404
    assert read(api.v3.endpoint, "/other") is None
    assert api.call("GET", "faults").json() == {"faults": []}
    # The journal is empty; numbers go on (a paging client's cursor stays valid).
    calls = api.call("GET", "calls", params={"since": before}).json()["calls"]
    assert [c["method"] for c in calls] == ["Range"]  # the _get above, after the reset


def test_the_same_host_origin_and_token_checks() -> None:
    stack = FakeStack(control_token="tok-v3").start()
    v3 = V3Discovery(stack.clock)
    stack.control.v3 = v3
    auth = {"Authorization": "Bearer tok-v3"}
    try:
        url = f"{stack.url}/_fake/v3/tokens"
        assert requests.post(url, timeout=WAIT).status_code == 401
        assert requests.get(f"{stack.url}/_fake/v3/calls", timeout=WAIT).status_code == 401
        evil = {**auth, "Origin": "http://evil.example"}
        assert requests.post(url, headers=evil, timeout=WAIT).status_code == 403
        host = {**auth, "Host": "evil.example"}
        assert (
            requests.get(f"{stack.url}/_fake/v3/faults", headers=host, timeout=WAIT).status_code
            == 403
        )
        assert v3.tokens() == []
        assert requests.post(url, headers=auth, timeout=WAIT).status_code == 201
    finally:
        v3.close()
        assert stack.close() == []


def test_without_v3_port_the_new_routes_name_the_flag() -> None:
    stack = FakeStack().start()
    try:
        for method, path in [
            ("POST", "tokens"),
            ("GET", "tokens/t"),
            ("DELETE", "tokens/t"),
            ("POST", "tokens/t/members"),
            ("GET", "calls"),
            ("GET", "faults"),
            ("POST", "faults"),
            ("DELETE", "faults"),
            ("GET", "faults/1"),
        ]:
            reply = requests.request(method, f"{stack.url}/_fake/v3/{path}", json={}, timeout=WAIT)
            assert reply.status_code == 409, (method, path)
            assert "--v3-port" in reply.json()["message"]
        # The listing keeps its empty answer.
        listed = requests.get(f"{stack.url}/_fake/v3/tokens", timeout=WAIT).json()
        assert listed == {"endpoints": None, "tokens": []}
    finally:
        assert stack.close() == []


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_V3_KEYS = [
    "action",
    "code",
    "message",
    "seconds",
    "service",
    "method",
    "key_prefix",
    "times",
    "size",
    "token",
    "name",
    "peer_urls",
    "member_id",
    "other",
]
_VALUES = st.one_of(
    _ANY_JSON,
    st.sampled_from(["fail", "delay", "drop", "UNAVAILABLE", "KV", "Range", "http://a:1", "ab", 3]),
)


@pytest.fixture(scope="module")
def shared_api() -> Iterator[Api]:
    stack = FakeStack().start()
    v3 = V3Discovery(stack.clock)
    stack.control.v3 = v3
    try:
        v3.new_token(2, token="t")
        yield Api(stack.url, v3)
    finally:
        v3.close()
        assert stack.close() == []


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=st.dictionaries(st.sampled_from(_V3_KEYS), _VALUES, max_size=4) | _ANY_JSON,
    name=st.text(max_size=10).filter(lambda s: "/" not in s and s not in (".", "..")),
    query=st.lists(
        st.tuples(st.sampled_from(["since", "limit", "x"]), st.text(max_size=6)), max_size=3
    ),
)
def test_any_input_gets_a_json_answer_never_a_crash(
    shared_api: Api, body: Any, name: str, query: list[tuple[str, str]]
) -> None:
    from urllib.parse import quote

    segment = quote(name, safe="")
    for method, path, params in (
        ("POST", "tokens", None),
        ("POST", "tokens/t/members", None),
        ("POST", f"tokens/{segment}/members", None),
        ("GET", f"tokens/{segment}", None),
        ("POST", "faults", None),
        ("GET", f"faults/{segment}", None),
        ("GET", "calls", query),
    ):
        reply = shared_api.call(method, path, body, params=params)
        assert reply.status_code in (200, 201, 400, 404, 405, 409), (method, path, reply.text)
        assert reply.headers["Content-Type"] == "application/json"
        if reply.status_code >= 400:
            assert list(reply.json()) == ["message"]
    shared_api.v3.faults.clear()  # a rule added here must not fail the next example's calls


def test_a_token_made_over_http_bootstraps_the_go_client(
    run: Callable[..., Fake], go_v3discovery: Path
) -> None:
    fake = run("--port", "0", "--v3-port", "0")
    url = fake.url()
    made = requests.post(f"{url}/_fake/v3/tokens", json={"size": 2}, timeout=WAIT)
    assert made.status_code == 201, made.text
    endpoints, token = made.json()["endpoints"], made.json()["token"]
    argv = [str(go_v3discovery), "-endpoints", endpoints.removeprefix("http://"), "-token", token]
    argv += ["-members", "3", "-peer-port", "12380", "-backoff-unit", "10ms"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    expected = "m0=http://127.0.0.1:12380,m1=http://127.0.0.1:12381"
    assert done.stdout.splitlines() == [
        f"m0 ok {expected}",
        f"m1 ok {expected}",
        "m2 error discovery: cluster is full",
    ]
    view = requests.get(f"{url}/_fake/v3/tokens/{token}", timeout=WAIT).json()
    assert (view["initial_cluster"], view["full"]) == (expected, True)
    calls = requests.get(f"{url}/_fake/v3/calls", timeout=WAIT).json()["calls"]
    assert any(
        c["method"] == "Put" and c["key"].startswith(f"{REGISTRY}/{token}/members/") for c in calls
    )
    assert fake.stop() == 0
