"""Hypothesis fuzzing of the WSGI app (werkzeug's test client) and the live server.

Random request sequences (every route, odd methods, odd and escaped path segments,
valid and invalid parameter values, form and raw bodies, past watches) must never get
a 5xx or raise, and the store must stay consistent after each step:

1. the store index never goes down, and ``X-Etcd-Index`` never runs ahead of it;
2. replaying the event history gives exactly the files the store holds (listings match
   the history), with their values and modifiedIndex;
3. the service still answers ``/health`` with ``OK``.
"""

from __future__ import annotations

import dataclasses
import http.client
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.profiles import get_profile
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._v2store.clock import ControllableClock

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "FOO"]
PARAM_NAMES = [
    "value",
    "ttl",
    "prevExist",
    "prevValue",
    "prevIndex",
    "wait",
    "waitIndex",
    "recursive",
    "sorted",
    "dir",
    "refresh",
    "noValueOnSuccess",
    "quorum",
    "stream",
    "size",
]
ODD_VALUES = [
    "",
    "true",
    "false",
    "1",
    "0",
    "t",
    "yes",
    "-1",
    "1.5",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "%zz",
    "%ff",
    "\u2603",
    "a;b",
    "<script>",
]
SEGMENTS = st.one_of(
    st.sampled_from(["m1", "m2", "_state", "_config", "size", "..", ".", "%2F", "%zz", "%ff"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
        min_size=1,
        max_size=8,
    ),
)


def quiet_app(profile: str) -> DiscoveryApp:
    # Long polls give up after 50 ms, so a watch with no event cannot stall the fuzzer.
    fast = dataclasses.replace(get_profile(profile), watch_timeout=0.05)
    return DiscoveryApp(profile=fast, clock=ControllableClock(frozen=True), keys_api=True)


@st.composite
def requests_(draw: st.DrawFn, tokens: list[str]) -> dict[str, Any]:
    token = draw(
        st.one_of(
            st.sampled_from(tokens) if tokens else st.just("0" * 32),
            st.just("f" * 32),
            st.text(alphabet="0123456789abcdefABCDEF", min_size=30, max_size=33),
        )
    )
    segments = draw(st.lists(SEGMENTS, max_size=3))
    kind = draw(st.sampled_from(["token", "machine", "size", "keys", "fixed", "random"]))
    if kind == "token":
        path = f"/{token}" + draw(st.sampled_from(["", "/"]))
    elif kind == "machine":
        path = f"/{token}/" + "/".join(quote(s, safe="%") for s in segments or ["m1"])
    elif kind == "size":
        path = f"/{token}/_config/size"
    elif kind == "keys":
        path = "/v2/keys/" + "/".join(quote(s, safe="%") for s in segments)
    elif kind == "fixed":
        path = draw(st.sampled_from(["/", "/new", "/health", "/robots.txt", "/metrics", "//new"]))
    else:
        path = "/" + "/".join(quote(s, safe="%") for s in segments)
    params = draw(
        st.dictionaries(
            st.sampled_from(PARAM_NAMES),
            st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=6)),
            max_size=4,
        )
    )
    if params.get("wait") not in (None, "false", "0", "f"):
        # Past watches only (a future one would wait out the 50 ms timeout, harmless).
        params["waitIndex"] = str(draw(st.integers(0, 40)))
    as_body = draw(st.booleans())
    raw_body = draw(st.one_of(st.none(), st.binary(max_size=20)))
    return {
        "method": draw(st.sampled_from(METHODS)),
        "path": path,
        "params": params,
        "as_body": as_body,
        "raw_body": raw_body,
    }


def store_files(app: DiscoveryApp) -> dict[str, tuple[str, int]]:
    """Every file in the store, hidden ones included: key -> (value, modifiedIndex).

    Read from the tree itself: listings leave out ``_`` names such as ``/_etcd``.
    """
    app.store.expire_due()
    out: dict[str, tuple[str, int]] = {}
    stack = [app.store.root]
    while stack:
        node = stack.pop()
        if node.children is None:
            out[node.path] = (node.value, node.modified_index)
        else:
            stack.extend(node.children.values())
    return out


def replay_history(app: DiscoveryApp) -> dict[str, tuple[str, int]]:
    """The files the event history says exist (no event ever left the window here)."""
    files: dict[str, tuple[str, int]] = {}
    for event in app.store.hub.history.events():
        key = event.key
        # An update of a directory (prevExist=true, no value) changes its TTL only, as in
        # etcd's v2 store: what is below it stays.
        if not (event.action == "update" and event.node.get("dir")):
            below = key.rstrip("/") + "/"
            for k in [k for k in files if k == key or k.startswith(below)]:
                del files[k]
        if event.action in ("set", "create", "update", "compareAndSwap") and not event.node.get(
            "dir"
        ):
            files[key] = (event.node.get("value", ""), event.node["modifiedIndex"])
    return files


def check_invariants(app: DiscoveryApp, last_index: int) -> int:
    index = app.store.index
    assert index >= last_index, "the store index went down"
    capacity = app.store.hub.history.capacity  # None: all kept (the v2-over-v3 store)
    assert capacity is None or len(app.store.hub.history.events()) < capacity
    assert store_files(app) == replay_history(app), "listing and history disagree"
    return index


def send(client: Client, req: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {"method": req["method"]}
    if req["as_body"] and req["method"] in ("PUT", "POST", "PATCH"):
        kwargs["data"] = req["params"]
    else:
        kwargs["query_string"] = req["params"]
        if req["raw_body"] is not None:
            kwargs["data"] = req["raw_body"]
            kwargs["content_type"] = "application/x-www-form-urlencoded"
    return client.open(req["path"], **kwargs)


@pytest.mark.parametrize("profile", ["etcd-v2", "discoveryserver"])
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_wsgi_app(profile: str, data: st.DataObject) -> None:
    app = quiet_app(profile)
    client = Client(app)
    tokens = [app.new_token(3)]
    last_index = app.store.index
    try:
        for _ in range(data.draw(st.integers(1, 25), label="steps")):
            req = data.draw(requests_(tokens), label="request")
            reply = send(client, req)
            body = reply.get_data()
            assert reply.status_code < 500, (req, reply.status_code, body[:300])
            header = reply.headers.get("X-Etcd-Index")
            if header is not None:
                assert int(header) <= app.store.index, (req, header)
            if req["path"] == "/new" and reply.status_code == 200:
                tokens.append(body.decode().rsplit("/", 1)[-1])
            last_index = check_invariants(app, last_index)
        health = client.get("/health")
        assert (health.status_code, health.get_data()) == (200, b"OK")
    finally:
        app.close()


# -- the live server: raw request lines, then /health ------------------------------------

RAW_PATHS = st.binary(min_size=1, max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)


@pytest.fixture(scope="module")
def live() -> Any:
    app = quiet_app("etcd-v2")
    with DiscoveryServer(app=app) as server:
        yield server


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from([*METHODS, "get", "M-SEARCH"]),
    raw_path=RAW_PATHS,
    body=st.binary(max_size=64),
)
def test_fuzz_live_server_raw_requests(
    live: DiscoveryServer, method: str, raw_path: bytes, body: bytes
) -> None:
    conn = http.client.HTTPConnection(live.host, live.port, timeout=5)
    try:
        # putrequest with skip_accept_encoding; the path goes out as raw bytes.
        conn.putrequest(method, "/", skip_host=True, skip_accept_encoding=True)
        conn._buffer[0] = method.encode() + b" /" + raw_path + b" HTTP/1.1"  # type: ignore[attr-defined]
        conn.putheader("Host", "x")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        reply = conn.getresponse()
        payload = reply.read()
        assert reply.status < 500 or reply.status == 505, (raw_path, reply.status, payload)
        assert b"Traceback" not in payload
    finally:
        conn.close()
    health = http.client.HTTPConnection(live.host, live.port, timeout=5)
    try:
        health.request("GET", "/health")
        assert health.getresponse().read() == b"OK"
    finally:
        health.close()
