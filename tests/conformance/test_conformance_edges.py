"""Edges of routing and form parsing, sent byte for byte: fake vs real.

Go's router cleans paths (redirecting ``//new`` and ``/T/./m``), matches the decoded
path (so ``%2F`` is a slash), and ``net/http`` merges query and form body with the body
first; these are the places a re-implementation on another stack is most likely to differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from conformance_harness import Discovery, Recorder

if TYPE_CHECKING:
    from pytest_etcd_discovery._service.faults import FaultRule
    from pytest_etcd_discovery._transport.server import DiscoveryServer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def path_shapes(d: Recorder) -> None:
    t = d.new_token()
    d.put(f"/{t}/m1", data={"value": "v"}, expect=201)
    # Paths that are not clean are redirected to their clean form (301).
    for target in (f"/{t}/./m1", f"/{t}/x/../m1", f"/{t}//m1", "/./new", "/new/./"):
        d.raw("GET", target, expect=301)
    # An encoded slash is a slash to the router: two segments, no route.
    d.raw("GET", f"/{t}/a%2Fb")
    # Encoded ordinary characters are decoded before the token/machine match.
    d.raw("GET", f"/{t}/%6d1")
    d.raw("PUT", f"/{t}/sp%20ace", body=b"value=1", headers=FORM, expect=201)
    d.raw("GET", f"/{t}/sp%20ace", expect=200)
    d.raw("PUT", f"/{t}/caf%C3%A9", body=b"value=1", headers=FORM, expect=201)
    d.raw("GET", f"/{t}?sorted=true", expect=200)
    # A trailing slash after the machine is not the {machine} route.
    d.raw("GET", f"/{t}/m1/")
    d.raw("GET", f"/{t}/_config/size/")
    # Query strings on fixed routes are ignored.
    d.raw("GET", "/robots.txt?x=1", expect=200)
    d.raw("GET", "/health?size=abc", expect=200)


def test_path_shapes(discovery: Discovery) -> None:
    discovery.check(path_shapes)


def leading_double_slash(d: Recorder) -> None:
    """Go's ServeMux redirects any unclean path, leading "//" included."""
    t = d.new_token()
    for target in ("//new", "///new", "//health", "//robots.txt", f"//{t}", "//nope"):
        d.raw("GET", target, expect=301)
    d.get(f"/{t}", expect=200)  # nothing was created meanwhile


def test_leading_double_slash(discovery: Discovery) -> None:
    discovery.check(leading_double_slash)


def test_unclean_paths_redirect_before_any_fault(
    discovery: Discovery, request: pytest.FixtureRequest
) -> None:
    """Go's ServeMux answers an unclean path with its 301 before any handler runs. The
    fake applies faults after that: on its side, rules on every route the paths clean
    to are in place and must neither fire nor change the redirect (the real side has
    no faults; both transcripts must match)."""
    fake: DiscoveryServer = request.getfixturevalue("fake_service")

    def faults_after_path_cleaning(d: Recorder) -> None:
        t = d.new_token()
        d.put(f"/{t}/m1", data={"value": "v"}, expect=201)
        rules: list[FaultRule] = []
        if d.side.name == "fake":
            plan = fake.app.faults
            for route in ("new", "health", "robots", "token", "machine"):
                rules.append(plan.fail(503, route=route))
            rules.append(plan.drop(route="size"))
        try:
            for target in (
                "//new",
                "/./new",
                "/x/../new",
                "//health",
                "//robots.txt",
                f"//{t}",
                f"/{t}/./m1",
                f"/{t}//_config/size",
            ):
                d.raw("GET", target, expect=301)
                d.raw("PUT", target, body=b"value=x", headers=FORM, expect=301)
        finally:
            for rule in rules:
                fake.app.faults.remove(rule)
        assert [rule.fired for rule in rules] == [0] * len(rules)
        d.get(f"/{t}", expect=200)  # nothing was created meanwhile

    discovery.check(faults_after_path_cleaning)


def form_parsing(d: Recorder) -> None:
    t = d.new_token()
    m = f"/{t}/m1"
    # Repeated keys: the first value counts; the body comes before the query.
    d.raw("PUT", f"{m}?value=q1&value=q2", expect=201)
    d.raw("PUT", f"{m}?value=q1", body=b"value=b1&value=b2", headers=FORM, expect=200)
    d.raw("PUT", f"{m}?prevExist=true&prevExist=false", body=b"value=pe", headers=FORM)
    # A charset parameter on the form type is fine; other types leave the body alone.
    d.raw(
        "PUT",
        m,
        body=b"value=cs",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        expect=200,
    )
    d.raw("PUT", m, body=b'{"value":"json"}', headers={"Content-Type": "application/json"})
    d.raw("PUT", m, body=b"value=none")
    # Percent-encoding and "+" in the body and the query.
    d.raw("PUT", m, body=b"value=a+b%26c%3Dd", headers=FORM, expect=200)
    d.raw("PUT", f"{m}?value=a+b%26c", expect=200)
    d.raw("PUT", m, body=b"value=%zz", headers=FORM)
    d.raw("PUT", m, body=b"value=ok&ttl=", headers=FORM, expect=200)
    # GET and DELETE read the query only (net/http parses bodies of POST/PUT/PATCH).
    d.raw("GET", m, body=b"wait=true", headers=FORM, expect=200)
    d.raw("DELETE", m, body=b"prevValue=nope", headers=FORM, expect=200)
    d.raw("GET", m, expect=404)
    # /new: the body wins over the query, the first value over the others.
    for target, body in (
        ("/new?size=5", b"size=2"),
        ("/new?size=4&size=6", None),
        ("/new", b"size=x&size=2"),
    ):
        reply = d.raw("POST", target, body=body, headers=FORM if body else None)
        if reply.status == 200:
            d.raw("GET", f"/{reply.text.rsplit('/', 1)[-1]}/_config/size", expect=200)
    # A GET body is not read, so the default size applies.
    reply = d.raw("GET", "/new", body=b"size=9", headers=FORM, expect=200)
    d.raw("GET", f"/{reply.text.rsplit('/', 1)[-1]}/_config/size", expect=200)


def test_form_parsing(discovery: Discovery) -> None:
    discovery.check(form_parsing)


def odd_ttls_and_indexes(d: Recorder) -> None:
    t = d.new_token()
    m = f"/{t}/m1"
    d.put(m, data={"value": "v"}, expect=201)
    # TTL 0 gives an expiration at once (no ttl field) and the key expires right away.
    d.put(f"/{t}/z", params={"ttl": "0"}, data={"value": "z"})
    # (real etcd expires keys on a 500 ms tick, so the poll's X-Etcd-Index, the index when
    # it was registered, may be before or after the expiry: compare the event only.)
    event = d.watch(f"/{t}/z", {"waitIndex": d.idx(3)}).result(record=False).json()
    expired = (event["action"], d.rel(event["node"]["modifiedIndex"]))
    d.note("ttl=0 key: event action, index", expired)
    d.get(f"/{t}/z", expect=404)
    # Indexes far in the future, and prevIndex beyond the current index.
    d.put(m, params={"prevIndex": d.idx(1000)}, data={"value": "x"}, expect=412)
    d.put(m, params={"prevIndex": "18446744073709551615"}, data={"value": "x"})
    d.put(m, params={"prevIndex": "18446744073709551616"}, data={"value": "x"})
    d.get(m, params={"wait": "true", "waitIndex": "18446744073709551616"})
    d.put(m, params={"ttl": "+5"}, data={"value": "x"})
    d.put(m, params={"ttl": "007"}, data={"value": "x"})
    d.put(m, params={"prevExist": "true", "ttl": ""}, data={"value": "final"}, expect=200)
    d.get(m, expect=200)


def test_odd_ttls_and_indexes(discovery: Discovery) -> None:
    discovery.check(odd_ttls_and_indexes)


def head_and_options(d: Recorder) -> None:
    t = d.new_token()
    # /new, /health and friends answer any method; HEAD gets headers only (and still
    # creates a token / runs the health check, visible in the index).
    for path in ("/new", "/health", "/robots.txt", "/metrics", "/nope", "/"):
        d.raw("HEAD", path)
    for path in ("/new", "/health", "/robots.txt"):
        d.raw("OPTIONS", path, expect=200)
    d.raw("HEAD", f"/{t}", expect=405)
    d.raw("OPTIONS", f"/{t}/_config/size", expect=405)
    d.get(f"/{t}", expect=200)


def test_head_and_options(discovery: Discovery) -> None:
    discovery.check(head_and_options)


def new_size_spellings(d: Recorder) -> None:
    d.new_token()
    # Go's Atoi takes a sign and leading zeros; the size key holds Itoa of the number.
    for size in ("+3", "007", "-0", "9223372036854775807", "-9223372036854775808"):
        reply = d.get("/new", params={"size": size}, expect=200)
        d.get(f"/{reply.text.rsplit('/', 1)[-1]}/_config/size", expect=200)
    for size in ("9223372036854775808", "3 ", "1e3", "", "٣"):
        d.get("/new", params={"size": size})


def test_new_size_spellings(discovery: Discovery) -> None:
    discovery.check(new_size_spellings)


def case_sensitive_options(d: Recorder) -> None:
    t = d.new_token()
    m = f"/{t}/m1"
    d.put(m, data={"value": "v"}, expect=201)
    # Option names are case-sensitive: these are ignored.
    d.put(m, params={"PrevExist": "false"}, data={"value": "w"}, expect=200)
    d.put(m, params={"prevexist": "false", "TTL": "5"}, data={"Value": "x"}, expect=200)
    d.get(m, params={"Wait": "true"}, expect=200)
    d.get(f"/{t}", params={"Sorted": "true", "Recursive": "true"}, expect=200)
    # Boolean values are not: Go's ParseBool spellings only.
    d.get(m, params={"wait": "TRUE", "waitIndex": d.idx(1)}, expect=200)
    d.get(m, params={"wait": "yes"}, expect=400)
    # An empty boolean is not "false" either: 209.
    d.get(m, params={"wait": ""}, expect=400)
    d.get(f"/{t}", params={"recursive": "", "sorted": ""}, expect=400)
    d.put(m, params={"prevExist": ""}, data={"value": "e"}, expect=400)
    d.put(m, params={"dir": ""}, data={"value": "f"}, expect=400)
    d.get(m, expect=200)


def test_case_sensitive_options(discovery: Discovery) -> None:
    discovery.check(case_sensitive_options)


def odd_bytes(d: Recorder) -> None:
    t = d.new_token()
    # Control characters, DEL, U+2029 and invalid UTF-8 in values (JSON escaping).
    d.raw("PUT", f"/{t}/ctl", body=b"value=%01%1f%7f%e2%80%a9x", headers=FORM, expect=201)
    d.raw("PUT", f"/{t}/bad", body=b"value=%ff%fe%c3", headers=FORM, expect=201)
    d.raw("PUT", f"/{t}/nul", body=b"value=a%00b", headers=FORM, expect=201)
    # ... and in key names.
    d.raw("PUT", f"/{t}/%ffkey", body=b"value=1", headers=FORM)
    d.raw("PUT", f"/{t}/%3Cb%3E", body=b"value=1", headers=FORM)
    d.raw("PUT", f"/{t}/_", body=b"value=1", headers=FORM)
    d.raw("PUT", f"/{t}/.dot", body=b"value=1", headers=FORM)
    d.raw("GET", f"/{t}?sorted=true&recursive=true", expect=200)
    # A large value comes back whole.
    big = "v" * 200_000
    d.put(f"/{t}/big", data={"value": big}, expect=201)
    reply = d.send(d.session, "GET", f"/{t}/big")
    d.note("200 kB value round trip", reply.json()["node"]["value"] == big)


def test_odd_bytes(discovery: Discovery) -> None:
    discovery.check(odd_bytes)
