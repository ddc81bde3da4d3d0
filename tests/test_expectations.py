"""Expectations on the journal: ``calls.filter``, the routes it names, requests in flight.

The helpers' failure messages are tested from the outside in ``test_plugin_expect.py``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.wrappers import Request

from pytest_etcd_discovery._etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._expectations import CallFilter, CallList, route_names, token_of
from pytest_etcd_discovery._service.faults import ROUTES, FaultPlan
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.store import Store

PUBLIC = "https://discovery.etcd.io"
OTHER = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def disco() -> Iterator[EtcdDiscovery]:
    clock = ControllableClock(frozen=True)
    with DiscoveryServer() as server:
        server.app.reset(Store(clock))
        yield EtcdDiscovery(server.url, app=server.app, server=server, clock=clock)


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_route_names_are_the_fault_rules_names() -> None:
    assert set(route_names()) == set(ROUTES)


def test_every_route_is_named_as_the_fault_rules_route_it(disco: EtcdDiscovery) -> None:
    # Differential: a "callback" rule per route records what fault routing saw; the journal's
    # filter must pick exactly the same requests.
    token = disco.new_token(3).rsplit("/", 1)[-1]
    seen: dict[str, list[str]] = {}
    plan = FaultPlan.of(disco.app)
    for route in route_names():
        if route not in ("*", "watch"):

            def record(request: Request, route: str = route) -> None:
                seen.setdefault(route, []).append(request.path)

            plan.add(action="callback", route=route, on_match=record)
    base = disco.url
    for path in (
        "/",
        "/new?size=5",
        "/health",
        "/robots.txt",
        "/metrics",
        f"/{token}",
        f"/{token}/",
        f"/{token}/m1",
        f"/{token}/_config/size",
        f"/{token}/_config",
        "/v2/keys/a",
        "/nope",
        f"/{token.upper()}",
        "//new",
    ):
        get(base + path, allow_redirects=False)
    requests.put(f"{base}/{token}/m2", data={"value": "x"}, timeout=10)
    calls = disco.calls
    assert len(calls) == 15
    for route in route_names():
        if route in ("*", "watch"):
            continue
        filtered = [c.path for c in calls.filter(route=route)]
        assert filtered == seen.get(route, []), route
    routed = {c.path for c in calls if c.route is not None}
    assert "/nope" not in routed and f"/{token.upper()}" not in routed
    assert calls.filter(route="*") == calls


def test_watch_is_any_get_with_a_go_true_wait(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(1)
    requests.put(f"{token_url}/m1", data={"value": "x"}, timeout=10)  # index 2
    for query in ("wait=false", "wait=nope", "recursive=true"):
        get(f"{token_url}?{query}")
    # Not a GET: etcd refuses it, and it is no watch.
    requests.put(f"{token_url}/m1?wait=true", data={"value": "x"}, timeout=10)
    watched = ("wait=true&", "wait=1&", "wait=T&")
    for query in watched:
        assert get(f"{token_url}?{query}recursive=true&waitIndex=2").status_code == 200
    watches = disco.calls.filter(route="watch")
    assert [c.query for c in watches] == [f"{q}recursive=true&waitIndex=2" for q in watched]
    assert all(c.route == "token" for c in watches)


def test_token_filter_takes_a_token_or_any_url_of_it(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(3)
    token = token_url.rsplit("/", 1)[-1]
    get(token_url)
    get(f"{token_url}/_config/size")
    get(f"{disco.url}/{OTHER}")
    get(f"{disco.url}/new")
    with disco.intercept():
        get(f"{PUBLIC}/{token}/")
    mine = disco.calls.filter(token=token)
    assert [c.path for c in mine] == [f"/{token}", f"/{token}/_config/size", f"/{token}/"]
    for spelling in (token_url, token_url + "/", f"{PUBLIC}/{token}", f"/{token}"):
        assert disco.calls.filter(token=spelling) == mine
    assert token_of(f"{PUBLIC}/{token}?x=1") == token


def test_filters_combine_and_keep_the_journal_order(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(1)
    requests.put(f"{token_url}/m1", data={"value": "a"}, timeout=10)
    requests.put(f"{token_url}/m1?prevExist=false", data={"value": "a"}, timeout=10)
    get(f"{token_url}/m1")
    with disco.intercept():
        get(f"{PUBLIC}/{token_url.rsplit('/', 1)[-1]}/m1")
    calls = disco.calls
    assert [c.status for c in calls] == [201, 412, 200, 200]
    assert calls.filter(method="put") == calls[:2]
    assert calls.filter(method=["GET", "DELETE"]) == calls[2:]
    assert calls.filter(status=201) == calls[:1]
    assert calls.filter(status=range(400, 500)) == [calls[1]]
    assert calls.filter(status={200, 201}, transport="live") == [calls[0], calls[2]]
    assert calls.filter(transport="inprocess") == [calls[3]]
    assert calls.filter(path="/*/m1", method="GET") == calls[2:]
    assert calls.filter(path=re.compile(r"/m\d$"), status=412) == [calls[1]]
    assert calls.filter(path="/m1") == []
    # Still a list: slices are journals too, and filters chain.
    assert isinstance(calls[1:], CallList)
    assert calls[1:].filter(method="GET").filter(transport="live") == [calls[2]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": "tokens"}, "unknown route 'tokens' (one of: *, home, new"),
        ({"token": ""}, "token: expected a token or a token URL"),
        ({"token": "https://discovery.etcd.io/"}, "token: the URL has no token"),
        ({"status": "200"}, "status: expected a status or a collection"),
        ({"status": [200, "201"]}, "status: expected integers"),
        ({"status": True}, "status: expected a status"),
        ({"method": []}, "method: expected a name or several"),
        ({"transport": [""]}, "transport: expected a name or several"),
        ({"path": 3}, "path: expected a path, a glob or a compiled regex"),
    ],
)
def test_a_bad_filter_says_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CallFilter.make(**kwargs)  # type: ignore[arg-type]


def test_describe_spells_the_criteria() -> None:
    flt = CallFilter.make(
        method=["get", "put"], route="size", token=OTHER, status=range(500, 600), transport="live"
    )
    assert flt.describe() == f"GET|PUT route=size token={OTHER} status=500..599 transport=live"
    assert CallFilter.make().describe() == "any request"
    assert CallFilter.make(path=re.compile("^/x"), status={503, 500}).describe() == (
        "path~^/x status=500|503"
    )


def test_a_long_poll_is_in_flight_until_its_reply_is_complete(disco: EtcdDiscovery) -> None:
    # etcd-v2 answers 200 at once and streams the body later: `status` alone would say
    # it is done.  The entry says it is still streaming until the body has ended.
    token_url = disco.new_token(1)
    replies: list[requests.Response] = []
    waiter = threading.Thread(target=lambda: replies.append(get(f"{token_url}/m1?wait=true")))
    waiter.start()
    try:
        assert disco.app.store.wait_for_watchers(1, timeout=10)
        (call,) = disco.calls
        assert (call.status, call.streaming, call.in_flight) == (200, True, True)
        requests.put(f"{token_url}/m1", data={"value": "x"}, timeout=10)
    finally:
        waiter.join(10)
    assert replies[0].json()["node"]["value"] == "x"
    # No wait: the entry is complete before the client can have the whole reply.
    assert not disco.calls[0].in_flight and not disco.calls[0].streaming


def test_an_in_process_long_poll_is_in_flight_until_answered(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(1)
    public = f"{PUBLIC}/{token_url.rsplit('/', 1)[-1]}"
    with disco.intercept():
        replies: list[requests.Response] = []
        waiter = threading.Thread(
            target=lambda: replies.append(get(f"{public}?wait=true&recursive=true"))
        )
        waiter.start()
        try:
            assert disco.app.store.wait_for_watchers(1, timeout=10)
            assert disco.calls[0].in_flight
            disco.register(token_url, "m1", "http://10.0.0.1:2380")
        finally:
            waiter.join(10)
    assert replies[0].status_code == 200
    assert [c.in_flight for c in disco.calls] == [False]
    assert str(disco.calls[0]).endswith("-> 200 (inprocess)")


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real)])
def either(request: pytest.FixtureRequest) -> Iterator[EtcdDiscovery]:
    """An EtcdDiscovery on the fake (a server of its own, on a frozen clock) or on the
    real service."""
    if request.param == "real":
        service = request.getfixturevalue("real_service")
        yield EtcdDiscovery(service.url)
        return
    with DiscoveryServer(clock=ControllableClock(frozen=True)) as server:
        yield EtcdDiscovery(server.url, app=server.app, server=server)


def _normalized(message: str, token_url: str) -> str:
    # What differs between services by nature: the URL, member ids, indexes.
    message = message.replace(token_url, "<token>")
    message = re.sub(r"id=[0-9a-f]{1,16}(?=\s)", "id=<id>", message)  # %x: no leading 0s
    message = re.sub(r"ttl \d+s left", "ttl <s> left", message)  # a second may pass
    return re.sub(r"(createdIndex|index)=\d+", r"\1=<n>", message)


def test_assert_registered_reads_real_and_fake_alike(either: EtcdDiscovery) -> None:
    # Differential: etcd 3.4 keys a member by its id and puts the name in the value; etcd
    # 0.4 keys it by name.  Both services must give the same names, order and verdicts.
    token_url = either.new_token(3)
    either.register(token_url, "infra1", "http://10.0.0.2:2380")
    either.register(token_url, "infra0", ["http://10.0.0.1:2380", "http://10.0.0.9:2380"])
    either.register_v04(token_url, "core-1", "http://10.0.0.3:7001")
    view = either.assert_registered(token_url, ["infra1", "infra0", "core-1"], state="started")
    assert view.state == "started"
    with pytest.raises(AssertionError) as failed:
        either.assert_registered(token_url, ["infra0", "infra1", "core-2"], state="stopped")
    assert _normalized(str(failed.value), token_url) == "\n".join(
        [
            "etcd discovery: token <token> holds members infra1, infra0, core-1; expected "
            "infra0, infra1, core-2 (in registration order) with _state 'stopped'",
            "  missing: core-2",
            "  not expected: core-1",
            "  _state is 'started', expected 'stopped'",
            "  the token now:",
            "    <token>  size=3  members=3/3  _state=started  index=<n>",
            "      1. infra1       id=<id>  createdIndex=<n>  no ttl  http://10.0.0.2:2380",
            "      2. infra0       id=<id>  createdIndex=<n>  no ttl  "
            "http://10.0.0.1:2380,http://10.0.0.9:2380",
            "      3. core-1       id=core-1  createdIndex=<n>  ttl <s> left  "
            "http://10.0.0.3:7001",
        ]
    )


def test_mismatches_name_each_missed_criterion(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(1)
    get(token_url + "/m1")
    get(f"{disco.url}/{OTHER}")
    get(f"{disco.url}/health")
    flt = CallFilter.make(method="PUT", route="machine", token=token_url, status=201)
    assert [flt.mismatches(c) for c in disco.calls] == [
        ["method GET, not PUT", "status 404, not 201"],
        ["method GET, not PUT", "route token, not machine", "another token", "status 404, not 201"],
        ["method GET, not PUT", "route health, not machine", "no token", "status 200, not 201"],
    ]
    assert CallFilter.make(route="watch", path=re.compile("^/x")).mismatches(disco.calls[0]) == [
        "not a watch",
        "path does not match ~^/x",
    ]


def test_an_escaped_wait_is_a_watch_too(disco: EtcdDiscovery) -> None:
    # Go unescapes parameter names: etcd waits on "w%61it=true", so it is a watch.
    token_url = disco.new_token(1)
    requests.put(f"{token_url}/m1", data={"value": "x"}, timeout=10)
    assert get(f"{token_url}?w%61it=true&recursive=true&waitIndex=2").status_code == 200
    assert [c.watch for c in disco.calls] == [False, True]
    assert disco.calls.filter(route="watch") == disco.calls[1:]


def test_the_helpers_work_on_what_fake_discovery_hands_out() -> None:
    from pytest_etcd_discovery import fake_discovery

    with fake_discovery() as disco:
        disco.faults.fail(503, route="new", times=1)
        assert get(f"{PUBLIC}/new?size=3").status_code == 503
        token_url = get(f"{PUBLIC}/new?size=3").text
        disco.register(token_url, "infra0", "http://10.0.0.1:2380")
        disco.faults.assert_all_fired()
        (call,) = disco.assert_requested(1, route="new", status=200)
        assert call.fault is None and call.transport == "inprocess"
        disco.assert_not_requested(method="PUT")  # the handle's own register is left out
        disco.assert_registered(token_url, ["infra0"])
        with pytest.raises(AssertionError, match=r"expected no request matching route=new"):
            disco.assert_not_requested(route="new")
        disco.faults.fail(500, route="size")
        with pytest.raises(AssertionError, match=r"1 of 2 fault rules never fired:\n  500 size"):
            disco.faults.assert_all_fired()
