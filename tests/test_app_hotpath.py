"""The app's per-request shortcuts give exactly what the general werkzeug path gives.

Each shortcut in ``app.py`` skips work werkzeug would do for every request (binding the
URL map, copying headers for the WSGI reply, building an input stream to read nothing,
cleaning a clean path); these tests hold each one to the general path's result.
"""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import pytest
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from pytest_etcd_discovery.service import app as appmod
from pytest_etcd_discovery.service.app import (
    URL_MAP,
    DiscoveryApp,
    KeyParams,
    bare_response,
    go_clean_path,
    http_error,
)
from pytest_etcd_discovery.service.forms import Form, parse_form
from pytest_etcd_discovery.v2store.store import clean_path

TOKEN = "0123456789abcdef0123456789abcdef"


def environ(
    method: str = "GET",
    path: str = "/",
    *,
    host: str | None = "discovery.etcd.io",
    body: bytes = b"",
    **extra: Any,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "discovery.etcd.io",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if host is not None:
        env["HTTP_HOST"] = host
    env.update(extra)
    return env


def wsgi(reply: Iterable[bytes], started: list[Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    body = b"".join(reply)
    close = getattr(reply, "close", None)
    if close is not None:
        close()
    return started[0], list(started[1]), body


def both_ways(
    response_factory: Any, env_factory: Any
) -> tuple[tuple[str, list[tuple[str, str]], bytes], tuple[str, list[tuple[str, str]], bytes]]:
    """(werkzeug's own reply, the shortcut's reply) for fresh copies of one response."""
    general: list[Any] = []
    short: list[Any] = []
    expected = wsgi(
        response_factory()(env_factory(), lambda s, h, e=None: general.extend((s, h))), general
    )
    got = wsgi(
        appmod._wsgi_reply(
            response_factory(), env_factory(), lambda s, h, e=None: short.extend((s, h))
        ),
        short,
    )
    return expected, got


def _stream() -> Iterator[bytes]:
    yield b"a"
    yield b"b"


RESPONSES = {
    "json": lambda: Response(
        b'{"action":"get"}\n', status=200, headers=[("Content-Type", "application/json")]
    ),
    "created": lambda: Response(b"{}\n", status=201, headers=[("X-Etcd-Index", "3")]),
    "http_error": lambda: http_error("404 page not found", 404),
    "empty 200": lambda: bare_response(200),
    "empty 405": lambda: bare_response(405),
    "204": lambda: Response(b"", status=204),
    "304": lambda: Response(b"x", status=304, headers=[("Content-Type", "text/plain")]),
    "1xx": lambda: Response(b"x", status=103),
    "redirect": lambda: appmod._redirect("/new?a=<b c>&d=\xe9", "GET"),
    "redirect HEAD": lambda: appmod._redirect("/x", "HEAD"),
    "content-location": lambda: Response(b"x", headers=[("Content-Location", "/a b")]),
    "stream": lambda: Response(_stream(), status=200, direct_passthrough=True),
    "str list": lambda: Response(["a", "b"], status=200),
    "odd status": lambda: Response(b"x", status="299 Whatever"),
}


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "get"])
@pytest.mark.parametrize("kind", sorted(RESPONSES))
def test_wsgi_reply_is_what_werkzeug_sends(kind: str, method: str) -> None:
    expected, got = both_ways(RESPONSES[kind], lambda: environ(method, "/x"))
    assert got == expected


def test_wsgi_reply_without_content_length_lets_werkzeug_add_it() -> None:
    def no_length() -> Response:
        resp = Response(b"abc")
        del resp.headers["Content-Length"]
        return resp

    expected, got = both_ways(no_length, environ)
    assert got == expected
    assert ("Content-Length", "3") in got[1]


def test_wsgi_reply_runs_close_callbacks() -> None:
    closed: list[bool] = []

    def with_callback() -> Response:
        resp = Response(b"abc")
        resp.call_on_close(lambda: closed.append(True))
        return resp

    expected, got = both_ways(with_callback, environ)
    assert got == expected
    assert closed == [True, True]


def _reference_clean(path: str) -> str:
    cleaned = clean_path(path)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def test_go_clean_path_matches_the_general_cleaning() -> None:
    # Every path of up to 7 characters over the characters that matter to cleaning.
    for length in range(8):
        for chars in itertools.product("/.a", repeat=length):
            path = "/" + "".join(chars)
            assert go_clean_path(path) == _reference_clean(path), path


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/new",
        f"/{TOKEN}",
        f"/{TOKEN}/",
        f"/{TOKEN}/m1",
        f"/{TOKEN}/m1/",
        f"/{TOKEN}/_config/size",
        "/v2/keys",
        "/v2/keys/",
        "/v2/keys/a/b",
        "/v2/keys/\xc3\xa9",  # UTF-8 bytes as WSGI hands them over
        "/v2/keys/\xff",  # invalid UTF-8
        "/nope",
        "",
        "relative",
    ],
)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http"},
        {"HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket"},
        {"SCRIPT_NAME": "/prefix"},
    ],
)
def test_host_matches_like_bind_to_environ(path: str, extra: dict[str, str]) -> None:
    def outcome(match: Any) -> object:
        try:
            return match()
        except HTTPException as exc:
            return type(exc)

    env = environ("PUT", path, **extra)
    expected = outcome(lambda: URL_MAP.bind_to_environ(env).match(method=None))
    # Twice: the first call binds and matches, the second reuses both.
    for method in ("PUT", "GET"):
        got = outcome(partial(appmod._host(env).match, appmod._werkzeug_path(env), method))
        assert got == expected


def test_host_still_rejects_a_bad_host_every_time() -> None:
    env = environ(host="a..b")
    for _ in range(2):
        with pytest.raises(HTTPException):
            appmod._host(env)


def test_hosts_and_routes_stay_bounded() -> None:
    for i in range(3 * appmod._MAX_HOSTS):
        appmod._host(environ(host=f"host{i}.example"))
    assert len(appmod._HOSTS) <= appmod._MAX_HOSTS
    host = appmod._host(environ())
    for i in range(3 * appmod._MAX_ROUTES):
        assert host.match(f"/{TOKEN}/m{i}", "PUT") == (
            "machine",
            {"token": TOKEN, "machine": f"m{i}"},
        )
    assert len(host.routes) <= appmod._MAX_ROUTES


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http"},
        {"HTTP_HOST": "Example.COM:443"},
        {"HTTP_HOST": "xn--bcher-kva.example"},
        {"SERVER_NAME": "10.0.0.1", "SERVER_PORT": "8080", "wsgi.url_scheme": "http"},
    ],
)
def test_host_url_is_the_requests_own(extra: dict[str, str]) -> None:
    env = environ(**extra)
    if "SERVER_NAME" in extra:
        del env["HTTP_HOST"]
    for _ in range(2):
        assert appmod._host_url(Request(env)) == Request(env).host_url


def start(started: list[Any], status: str, headers: Any, exc_info: Any = None) -> None:
    started.extend((status, headers))


def test_new_hands_out_each_hosts_own_url() -> None:
    app = DiscoveryApp()
    for host in ("discovery.etcd.io", "127.0.0.1:8080", "discovery.etcd.io"):
        started: list[Any] = []
        env = environ("GET", "/new", host=host)
        status, _, body = wsgi(app(env, partial(start, started)), started)
        assert status == "200 OK"
        assert body.decode().rsplit("/", 1)[0] == f"https://{host}"


@pytest.mark.parametrize(
    "extra",
    [
        {"CONTENT_LENGTH": "0"},
        {"CONTENT_LENGTH": ""},
        {"CONTENT_LENGTH": "5"},
        {"CONTENT_LENGTH": "3"},
        {"CONTENT_LENGTH": "-1"},
        {"CONTENT_LENGTH": "x"},
        {"HTTP_TRANSFER_ENCODING": "chunked"},
        {"wsgi.input_terminated": True},
        {"CONTENT_LENGTH": "0", "wsgi.input_terminated": True},
    ],
)
def test_request_body_is_get_data(extra: dict[str, Any]) -> None:
    def make() -> dict[str, Any]:
        env = environ("PUT", "/v2/keys/a", body=b"value")
        del env["CONTENT_LENGTH"]
        env.update(extra)
        return env

    assert appmod._request_body(Request(make())) == Request(make()).get_data(cache=True)


def test_request_body_without_content_length_is_get_data() -> None:
    env = environ("PUT", "/v2/keys/a", body=b"value")
    del env["CONTENT_LENGTH"]
    assert appmod._request_body(Request(env)) == b""


def test_key_params_of_no_parameters_are_the_defaults() -> None:
    assert KeyParams.parse("GET", Form()) == KeyParams()
    assert KeyParams.parse("GET", parse_form("GET", "", "", b"")) == KeyParams()


def test_key_params_still_fail_on_a_bad_form() -> None:
    from pytest_etcd_discovery.v2store.errors import EtcdError

    with pytest.raises(EtcdError) as info:
        KeyParams.parse("GET", Form(error='invalid URL escape "%zz"'))
    assert info.value.cause == 'invalid URL escape "%zz"'


def test_a_plain_get_through_the_app_is_unchanged() -> None:
    """The whole request with the shortcuts: status, header order and body."""
    app = DiscoveryApp()
    token = app.new_token(3)
    started: list[Any] = []
    reply = app(environ("GET", f"/{token}"), lambda s, h, e=None: started.extend((s, h)))
    status, headers, body = wsgi(reply, started)
    assert status == "200 OK"
    assert [name for name, _ in headers] == [
        "Content-Type",
        "X-Etcd-Cluster-Id",
        "X-Etcd-Index",
        "X-Raft-Index",
        "X-Raft-Term",
        "Content-Length",
        "Access-Control-Allow-Methods",
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Headers",
    ]
    assert dict(headers)["Content-Length"] == str(len(body))
    assert body.startswith(b'{"action":"get"')


def test_in_process_body_is_taken_whole_and_equals_the_stream() -> None:
    from pytest_etcd_discovery.transport.wsgicall import make_environ

    form = [("Content-Type", "application/x-www-form-urlencoded")]
    env = make_environ("PUT", "https://discovery.etcd.io/v2/keys/a", form, b"value=v", "t")
    assert env[appmod.BODY_KEY] == b"value=v"
    assert appmod._request_body(Request(env)) == Request(dict(env)).get_data()
    # A header that claims another length: werkzeug reads what it says, as before.
    lying = make_environ(
        "PUT",
        "https://discovery.etcd.io/v2/keys/a",
        [*form, ("Content-Length", "3")],
        b"value=v",
        "t",
    )
    assert appmod.BODY_KEY not in lying
    assert appmod._request_body(Request(lying)) == b"val"


def test_a_put_reads_its_form_from_the_body_key() -> None:
    from pytest_etcd_discovery.transport.wsgicall import call_app

    app = DiscoveryApp()
    token = app.new_token(3)
    status, _, body = call_app(
        app, "PUT", f"https://discovery.etcd.io/{token}/m1?prevExist=false", form={"value": "x=1"}
    )
    assert status == 201
    assert b'"value":"x=1"' in body
    assert app.calls[-1].form == {"prevExist": ["false"], "value": ["x=1"]}


def test_make_environ_maps_header_names_as_pep_3333_says() -> None:
    from pytest_etcd_discovery.transport.wsgicall import make_environ

    headers = [
        ("X-Custom-Thing", "1"),
        ("x-custom-thing", "2"),
        ("Content-Type", "text/plain"),
        ("Host", "ignored.example"),
        ("Accept", "*/*"),
    ]
    for _ in range(2):  # the second time from the name cache
        env = make_environ("GET", "https://discovery.etcd.io/x", headers, b"", "t")
        assert env["HTTP_X_CUSTOM_THING"] == "2"
        assert env["CONTENT_TYPE"] == "text/plain"
        assert env["HTTP_HOST"] == "discovery.etcd.io"
        assert env["HTTP_ACCEPT"] == "*/*"
        assert "HTTP_CONTENT_TYPE" not in env
