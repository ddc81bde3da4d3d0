"""Routes of the discovery server (spec section 2): fake vs real, same requests."""

from __future__ import annotations

import re

from conformance_harness import Discovery, Recorder

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def new_sizes(d: Recorder) -> None:
    t = d.new_token()  # default size 3
    d.get(f"/{t}/_config/size", expect=200)
    for size in (1, 5, -2, 0, ""):
        tok = d.new_token(size)
        d.get(f"/{tok}/_config/size", expect=200)
    # /new takes its size from a form body too, and answers any method.
    tok = d.new_token(7, method="POST", form=True)
    d.get(f"/{tok}/_config/size", expect=200)
    tok = d.new_token(4, method="PUT")
    d.get(f"/{tok}/_config/size", expect=200)
    tok = d.new_token(None, method="DELETE")
    d.get(f"/{tok}/_config/size", expect=200)
    # The body of /new is "<public url>/<token>", no trailing newline.
    reply = d.get("/new")
    assert re.fullmatch(re.escape(d.side.url) + r"/[a-f0-9]{32}", reply.text), reply.text


def test_new_sizes(discovery: Discovery) -> None:
    discovery.check(new_sizes)


def new_errors(d: Recorder) -> None:
    d.new_token()
    # Not an integer: 400 text/plain with Go's strconv message.
    for bad in ("abc", "1.5", " 3", "0x10", "99999999999999999999"):
        d.get("/new", params={"size": bad}, expect=400)
    d.request("POST", "/new", data={"size": "abc"}, expect=400)


def test_new_errors(discovery: Discovery) -> None:
    discovery.check(new_errors)


def static_routes(d: Recorder) -> None:
    d.new_token()
    for method in ("GET", "POST", "HEAD"):
        d.request(method, "/", expect=301)
    d.get("/robots.txt", expect=200)
    d.request("POST", "/robots.txt", expect=200)
    # /health creates and deletes a token: two writes, visible in the next X-Etcd-Index.
    d.get("/health", expect=200)
    d.request("PUT", "/health", expect=200)
    t = d.new_token()
    d.get(f"/{t}", expect=200)


def test_static_routes(discovery: Discovery) -> None:
    discovery.check(static_routes)


METRIC_LINE = re.compile(r'^(endpoint_\w+)\{code="(\d+)",method="(\w+)"\} (\d+)$', re.M)


def _metric_samples(d: Recorder) -> dict[tuple[str, str, str], int]:
    reply = d.send(d.session, "GET", "/metrics")
    assert reply.status == 200, reply.status
    return {(m[0], m[1], m[2]): int(m[3]) for m in METRIC_LINE.findall(reply.text)}


def metrics(d: Recorder) -> None:
    t = d.new_token()
    # Counter values depend on the whole session: compare what this scenario adds.
    before = _metric_samples(d)
    d.get("/new", expect=200)
    d.request("POST", "/new", data={"size": "5"}, expect=200)
    d.get("/new", params={"size": "abc"}, expect=400)
    d.get("/health", expect=200)
    d.get(f"/{t}", expect=200)
    d.put(f"/{t}/m1", data={"value": "v"}, expect=201)
    d.put(f"/{t}/m1", params={"prevExist": "false"}, data={"value": "v"}, expect=412)
    d.delete(f"/{t}/m1", expect=200)
    d.get(f"/{t}/m1", expect=404)
    d.request("POST", f"/{t}", expect=405)  # refused by the router: not counted
    after = _metric_samples(d)
    deltas = sorted((k, after[k] - before.get(k, 0)) for k in after if after[k] != before.get(k))
    d.note("endpoint_* counter increments (name, code, method)", deltas)
    reply = d.send(d.session, "GET", "/metrics")
    d.note("GET /metrics content type", reply.headers.get("Content-Type"))
    families = sorted(set(re.findall(r"^# TYPE (endpoint_\w+) (\w+)$", reply.text, re.M)))
    d.note("endpoint_* metric families", families)
    reply = d.send(d.session, "POST", "/metrics")
    d.note("POST /metrics status", reply.status)


def test_metrics(discovery: Discovery) -> None:
    discovery.check(metrics)


def token_routes(d: Recorder) -> None:
    t = d.new_token()
    d.get(f"/{t}", expect=200)
    d.get(f"/{t}/", expect=200)
    d.get(f"/{t}/_config/size", expect=200)
    # The token directory itself is not a file.
    d.put(f"/{t}", data={"value": "x"}, expect=403)
    d.put(f"/{t}/", data={"value": "x"}, expect=403)
    # Methods the router does not allow: 405 with an empty body.
    for method in ("DELETE", "POST", "PATCH", "OPTIONS"):
        d.request(method, f"/{t}", expect=405)
    d.request("DELETE", f"/{t}/", expect=405)
    for method in ("POST", "PATCH", "OPTIONS", "HEAD"):
        d.request(method, f"/{t}/m1", expect=405)
    # _config/size is GET only (PUT/DELETE hit the 405 of the size route, not {machine}).
    d.put(f"/{t}/_config/size", data={"value": "9"}, expect=405)
    d.delete(f"/{t}/_config/size", expect=405)
    d.get(f"/{t}/_config/size", expect=200)
    # Deeper paths and other shapes are not routes at all.
    d.get(f"/{t}/a/b", expect=404)
    d.put(f"/{t}/a/b", data={"value": "x"}, expect=404)
    d.get(f"/{t}/_config", expect=200)
    d.get(f"/{t.upper()}", expect=404)
    d.get(f"/{t[:31]}", expect=404)
    d.get(f"/{t}0", expect=404)


def test_token_routes(discovery: Discovery) -> None:
    discovery.check(token_routes)


def member_routes(d: Recorder) -> None:
    t = d.new_token()
    d.get(f"/{t}/m1", expect=404)
    d.put(f"/{t}/m1", data={"value": "http://10.0.0.1:2380"}, expect=201)
    d.get(f"/{t}/m1", expect=200)
    d.put(f"/{t}/m1", data={"value": "http://10.0.0.1:2381"}, expect=200)
    d.delete(f"/{t}/m1", expect=200)
    d.delete(f"/{t}/m1", expect=404)
    d.get(f"/{t}/m1", expect=404)
    d.get(f"/{t}", expect=200)


def test_member_routes(discovery: Discovery) -> None:
    discovery.check(member_routes)


def unknown_paths(d: Recorder) -> None:
    d.new_token()
    for path in ("/nope", "/0123", "/new/", "/health/", "/robots", "/metricsx", "/a/b/c"):
        d.get(path, expect=404)
    d.request("POST", "/nope", expect=404)
    d.put("/nope", data={"value": "x"}, expect=404)


def test_unknown_paths(discovery: Discovery) -> None:
    discovery.check(unknown_paths)


def never_issued(d: Recorder) -> None:
    d.new_token()
    n = d.never_issued()
    d.get(f"/{n}", expect=404)
    d.get(f"/{n}/", expect=404)
    d.get(f"/{n}/_config/size", expect=404)
    d.get(f"/{n}/m1", expect=404)
    d.delete(f"/{n}/m1", expect=404)
    # The proxy does not check that the token exists: a PUT creates it on the fly.
    d.put(f"/{n}/m1", data={"value": "x"}, expect=201)
    d.get(f"/{n}", expect=200)


def test_never_issued_tokens(discovery: Discovery) -> None:
    discovery.check(never_issued)


def test_no_server_header(discovery: Discovery) -> None:
    """The Go servers send no ``Server`` header (dropped from the transcripts, checked here)."""
    with discovery.session as session:
        token = session.get(f"{discovery.url}/new", timeout=5).text.rsplit("/", 1)[-1]
        for path in ("/new", "/health", "/robots.txt", f"/{token}", "/nope"):
            reply = session.get(discovery.url + path, timeout=5, allow_redirects=False)
            assert "Server" not in reply.headers, (path, reply.headers["Server"])


def no_keys_api(d: Recorder) -> None:
    """The discovery service serves no etcd API: every /v2 path is Go's 404 (the fake
    serves its keys API there only when switched on)."""
    d.new_token()
    for path in ("/v2/keys", "/v2/keys/", "/v2/keys/_etcd/registry", "/v2/machines", "/v2/"):
        for method in ("GET", "HEAD", "DELETE", "OPTIONS"):
            d.request(method, path, expect=404)
        d.request("PUT", path, data={"value": "x"}, expect=404)
    d.request("GET", "/v2/keys/foo", params={"wait": "true"}, expect=404)
    d.request("DELETE", "/v2/keys/_etcd", params={"recursive": "true", "dir": "true"}, expect=404)


def test_no_keys_api(discovery: Discovery) -> None:
    discovery.check(no_keys_api)
