"""Real-service mode (``--etcd-discovery-url``): every client reaches the configured service.

Under the marker, the flag in the ini or ``intercept()``, code under test that calls
``https://discovery.etcd.io`` must reach the configured service and nothing else, with
whatever client it uses: ``requests`` in-process, the other in-process clients through
the client cover and the TLS front, child processes through ``env()``.  The configured
service here is the real original one (``RealDiscoveryService`` on loopback), so every
answer below comes from the real binaries, and each inner test proves it: the token URL
``/new`` returns is on the real service's own host, and the member a client registered at
``https://discovery.etcd.io`` is then read back from the real service directly.

Every inner test first asserts that the client cover is installed and lets no name but
loopback through to the real resolver, so a lookup of ``discovery.etcd.io`` that slipped
past the cover would fail the test instead of leaving the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dropinutil import CLIENTS, require_module, require_tool
from test_plugin import PLUGIN_ARGS

# Loaded here so the inner (in-process) runs share one copy: pytester drops the modules
# an inner run imported first.
from pytest_etcd_discovery._constants import forwarded_hosts
from pytest_etcd_discovery._transport import client_cover, forward, proxy, tls  # noqa: F401
from pytest_etcd_discovery._transport.server import DiscoveryServer

if TYPE_CHECKING:
    from pytest_etcd_discovery._real.processes import RealDiscoveryService

TESTS = Path(__file__).resolve().parent

#: Python packages each client needs beyond the standard library.
_NEEDS = {
    "httpx.Client": ("httpx",),
    "httpx.AsyncClient": ("httpx",),
    "aiohttp": ("aiohttp",),
    "aiohttp+ThreadedResolver": ("aiohttp",),
    "aiohttp+AsyncResolver (aiodns)": ("aiohttp", "aiodns"),
}

#: What every inner module starts with: the guard on name resolution.
SAFETY = '''
import json
import re
import socket
import subprocess

import pytest

from pytest_etcd_discovery._transport import client_cover

PUBLIC = "https://discovery.etcd.io"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def lookups(etcd_discovery, monkeypatch):
    """The names that reached the real resolver; only loopback may."""
    assert etcd_discovery.mode == "real" and etcd_discovery.intercepting
    # The cover is installed: discovery names never get to the real resolver ...
    assert socket.getaddrinfo is client_cover._getaddrinfo, "the client cover is not on"
    asked = []
    real = client_cover._real_getaddrinfo

    def loopback_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        asked.append(name)
        if name not in LOOPBACK:  # ... and nothing else leaves either
            raise socket.gaierror(socket.EAI_NONAME, f"test: lookup of {name!r} refused")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(client_cover, "_real_getaddrinfo", loopback_only)
    yield asked
    assert not [name for name in asked if "etcd.io" in name.lower()], asked


def check_on_the_real_service(etcd_discovery, fetch):
    """/new, a member PUT and a token GET at the public URL; each must be the configured
    service's answer, proved by reading the token there directly."""
    status, _, body = fetch("GET", f"{PUBLIC}/new?size=3", None)
    assert status == 200, body
    # The real service's token URL on its own host: forwarded, not rewritten.
    assert body.startswith(etcd_discovery.url + "/"), body
    token = body.rsplit("/", 1)[1]
    status, _, body = fetch(
        "PUT", f"{PUBLIC}/{token}/m1?prevExist=false", {"value": "m1=http://10.0.0.1:2380"}
    )
    assert status == 201, body
    assert json.loads(body)["node"]["key"] == f"/_etcd/registry/{token}/m1"
    status, _, body = fetch("GET", f"{PUBLIC}/{token}/_config/size", None)
    assert (status, json.loads(body)["node"]["value"]) == (200, "3")
    status, _, body = fetch("GET", f"{PUBLIC}/{token}", None)
    assert status == 200, body
    # etcd hides _config from listings.
    assert [n["key"] for n in json.loads(body)["node"]["nodes"]] == [
        f"/_etcd/registry/{token}/m1"
    ]
    # Read on the real service itself (its own URL: no interception on the way).
    view = etcd_discovery.token(f"{etcd_discovery.url}/{token}")
    assert (view.size, view.names) == (3, ["m1"])
'''


def _run(pytester: pytest.Pytester, url: str, *args: str) -> pytest.RunResult:
    pytester.syspathinsert(TESTS)
    return pytester.runpytest(
        *PLUGIN_ARGS, "--etcd-discovery-url", url, "-p", "no:cacheprovider", *args
    )


@pytest.mark.real
@pytest.mark.parametrize("client", list(CLIENTS))
def test_in_process_client_reaches_the_real_service(
    client: str, pytester: pytest.Pytester, real_service: RealDiscoveryService
) -> None:
    for module in _NEEDS.get(client, ()):
        require_module(module)  # imported out here, so the inner run keeps one copy
    pytester.makepyfile(
        SAFETY
        + f"""
from dropinutil import CLIENTS

@pytest.mark.etcd_discovery
def test_client(etcd_discovery, lookups):
    check_on_the_real_service(etcd_discovery, CLIENTS[{client!r}])
"""
    )

    result = _run(pytester, real_service.url)

    result.assert_outcomes(passed=1)


@pytest.mark.real
@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_child_process_with_env_reaches_the_real_service(
    tool: str, pytester: pytest.Pytester, real_service: RealDiscoveryService
) -> None:
    path = require_tool(tool)
    fetch = "curl_fetch" if tool == "curl" else "wget_fetch"
    pytester.makepyfile(
        SAFETY
        + f"""
TOOL = {path!r}

def curl_fetch(env):
    def fetch(method, url, form):
        argv = [TOOL, "-sS", "-X", method, "-w", "\\n%{{http_code}}", url]
        for key, value in (form or {{}}).items():
            argv += ["--data-urlencode", f"{{key}}={{value}}"]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        body, _, status = out.stdout.rpartition("\\n")
        return int(status), {{}}, body
    return fetch

def wget_fetch(env):
    def fetch(method, url, form):
        argv = [TOOL, "-q", "-S", "-O", "-", "--content-on-error", f"--method={{method}}", url]
        if form:
            argv.append("--body-data=" + "&".join(f"{{k}}={{v}}" for k, v in form.items()))
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        # -S prints the reply's head on stderr: the status is on its last status line.
        statuses = re.findall(r"^\\s*HTTP/1\\.[01] (\\d{{3}})", out.stderr, re.MULTILINE)
        assert statuses, (out.returncode, out.stderr)
        return int(statuses[-1]), {{}}, out.stdout
    return fetch

@pytest.mark.etcd_discovery
def test_child(etcd_discovery, lookups, tmp_path):
    env = etcd_discovery.env({{"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}})
    assert env["HTTPS_PROXY"] == etcd_discovery.front.proxy_url
    assert env["SSL_CERT_FILE"] == etcd_discovery.ca_file
    check_on_the_real_service(etcd_discovery, {fetch}(env))
"""
    )

    result = _run(pytester, real_service.url)

    result.assert_outcomes(passed=1)


@pytest.mark.real
def test_forwarded_long_polls_end_with_their_test(
    pytester: pytest.Pytester, real_service: RealDiscoveryService
) -> None:
    curl = require_tool("curl")
    pytester.makepyfile(
        SAFETY
        + f"""
import threading
import urllib.request

import requests

CURL = {curl!r}
#: (client, how to wait for it, what it ended with)
POLLS = []


def _in_thread(call):
    ended = {{}}

    def run():
        try:
            ended["reply"] = call()
        except Exception as exc:  # what the client saw when its poll was cut
            ended["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, ended


@pytest.mark.etcd_discovery
@pytest.mark.parametrize("client", ["requests", "urllib", "curl"])
def test_leaves_a_long_poll_waiting(etcd_discovery, lookups, client):
    token = etcd_discovery.new_token(3).rsplit("/", 1)[1]
    poll = f"{{PUBLIC}}/{{token}}?wait=true"  # nothing ever writes: it waits for good
    if client == "requests":
        POLLS.append((client, *_in_thread(lambda: requests.get(poll).text)))
    elif client == "urllib":
        POLLS.append((client, *_in_thread(lambda: urllib.request.urlopen(poll).read())))
    else:
        child = subprocess.Popen(
            [CURL, "-sS", poll], env=etcd_discovery.env(), stderr=subprocess.PIPE
        )
        POLLS.append((client, child, None))
    # Under way on the configured service when the test ends.
    assert etcd_discovery._backend.forward.wait_in_flight(1, timeout=30)


def test_each_poll_was_cut_when_its_test_ended():
    assert [client for client, _, _ in POLLS] == ["requests", "urllib", "curl"]
    for client, waiting, ended in POLLS:
        if ended is None:  # curl: exits with an error once its connection is closed
            assert waiting.wait(timeout=30) not in (0, None), client
            continue
        waiting.join(timeout=30)
        assert not waiting.is_alive(), f"{{client}}: its long poll still waits"
        assert "error" in ended, (client, ended)
    requests_error = POLLS[0][2]["error"]
    assert isinstance(requests_error, requests.ConnectionError)
    assert "the test ended while GET /" in str(requests_error)
"""
    )

    result = _run(pytester, real_service.url, "-v")

    result.assert_outcomes(passed=4)


GUARDED = """
import socket
import urllib.error
import urllib.request

import pytest
import requests
import responses

from pytest_etcd_discovery import DiscoveryHostGuardError
from pytest_etcd_discovery._transport import client_cover


@pytest.fixture(autouse=True)
def cover_on(etcd_discovery):
    # Before any call to the public name: nothing may resolve it but the cover.
    assert socket.getaddrinfo is client_cover._getaddrinfo


@pytest.mark.etcd_discovery
def test_the_guard_still_refuses_what_cannot_be_served(etcd_discovery):
    with pytest.raises(DiscoveryHostGuardError, match="'discovery.etcd.io'"):
        socket.gethostbyname("discovery.etcd.io")
    with pytest.raises(urllib.error.URLError, match="discovery.etcd.io:8443"):
        urllib.request.urlopen("https://discovery.etcd.io:8443/new", timeout=10)


@pytest.mark.etcd_discovery
def test_a_tests_own_responses_mock_passes_the_public_host_through(etcd_discovery):
    @responses.activate
    def code_under_test():
        responses.add(responses.GET, "https://api.example/thing", json={"ok": True})
        assert requests.get("https://api.example/thing", timeout=10).json() == {"ok": True}
        return requests.get("https://discovery.etcd.io/new?size=2", timeout=10).text

    assert code_under_test().startswith(etcd_discovery.url + "/")
"""


def test_guard_and_responses_mocks_in_real_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GUARDED)
    with DiscoveryServer() as configured:
        result = _run(pytester, configured.url)

        result.assert_outcomes(passed=2)
        # The mock's /new went through the cover and the front to the configured service.
        assert [(c.path, c.query, c.transport) for c in configured.app.calls] == [
            ("/new", "size=2", "live")
        ]


def test_a_configured_service_on_a_discovery_host_is_not_forwarded_to_itself(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import urllib.request

        def test_direct(etcd_discovery):
            assert etcd_discovery.intercepting
            assert etcd_discovery.hosts == ("https://discovery.etcd.io",)
            # Its own URL reaches it directly: no loop through the front and back.
            with urllib.request.urlopen(etcd_discovery.url + "/new", timeout=10) as reply:
                assert reply.read().decode().startswith(etcd_discovery.url + "/")
        """
    )
    with DiscoveryServer() as configured:
        pytester.makeini(
            f"[pytest]\netcd_discovery_fake = true\netcd_discovery_hosts = {configured.url}\n"
        )
        result = _run(pytester, configured.url)

        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                f"etcd-discovery: mode=real, url={configured.url}, "
                "forwarding https://discovery.etcd.io"
            ]
        )
        assert [c.transport for c in configured.app.calls] == ["live"]


def test_an_unreachable_service_is_a_connection_error(
    pytester: pytest.Pytester, unused_port: int
) -> None:
    pytester.makepyfile(
        """
        import http.client
        import socket
        import urllib.error
        import urllib.request

        import pytest
        import requests

        from pytest_etcd_discovery._transport import client_cover

        @pytest.mark.etcd_discovery
        def test_unreachable(etcd_discovery, caplog):
            assert socket.getaddrinfo is client_cover._getaddrinfo  # the cover is on
            with pytest.raises(requests.ConnectionError, match="forwarding to http://127"):
                requests.get("https://discovery.etcd.io/new", timeout=10)
            # Through the front: the connection closes, as the service's would not open.
            with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
                urllib.request.urlopen("https://discovery.etcd.io/new", timeout=10)
            assert "forwarding to http://127" in caplog.text
        """
    )

    result = _run(pytester, f"http://127.0.0.1:{unused_port}")

    result.assert_outcomes(passed=1)


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (closed again at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("hosts", "url", "expected"),
    [
        (["https://discovery.etcd.io"], "http://127.0.0.1:8087", ["https://discovery.etcd.io"]),
        (["https://discovery.etcd.io"], "https://discovery.etcd.io", []),
        (
            ["https://discovery.etcd.io", "http://Disco.Internal:8087", "disco.internal"],
            "https://disco.internal./prefix",
            ["https://discovery.etcd.io"],
        ),
    ],
)
def test_forwarded_hosts_leave_out_the_configured_services_own_name(
    hosts: list[str], url: str, expected: list[str]
) -> None:
    assert list(forwarded_hosts(hosts, url)) == expected
