"""The command's control options (``--no-control``, ``--seed``, ``--state``), run as a real
subprocess, and the reserved prefix compared with the real service."""

from __future__ import annotations

import http.client
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from test_cli import WAIT, Fake, assert_one_error_line

from pytest_etcd_discovery._real.processes import RealDiscoveryService

#: Requests under the reserved prefix (and next to it) that neither real service routes.
RESERVED = [
    ("GET", "/_fake/"),
    ("HEAD", "/_fake/"),
    ("GET", "/_fake"),
    ("GET", "/_fake/state"),
    ("PUT", "/_fake/state"),
    ("POST", "/_fake/reset"),
    ("POST", "/_fake/tokens"),
    ("GET", "/_fake/clock"),
    ("POST", "/_fake/clock/advance"),
    ("DELETE", "/_fake/faults"),
    ("DELETE", "/_fake/faults/1"),
    ("GET", "/_fake/health"),
    ("GET", "/_fake/openapi.json"),
    ("POST", "/_fake/calls/count"),
    ("GET", "/_fake/calls?route=new"),
    ("GET", "/_fake/calls?since=0"),
    ("GET", "/_fake/changes?since=1.2.3.4.ab"),
    ("GET", "/_fake/static/dashboard.js"),
]
#: Next to the prefix: what the control API leaves to the service even when it is on.
AROUND = [("GET", "/_fake"), ("GET", "/_fake/../new"), ("GET", "/_fakes/state")]


#: A state whose one key expires past int64 nanoseconds (2^63): no instant etcd has.
_FAR_STATE = json.dumps(
    {
        "store": {
            "index": 1,
            "root": {
                "path": "/",
                "createdIndex": 0,
                "modifiedIndex": 0,
                "children": [
                    {
                        "path": "/k",
                        "createdIndex": 1,
                        "modifiedIndex": 1,
                        "value": "v",
                        "expireNs": 2**63,
                    }
                ],
            },
        }
    }
)


@pytest.fixture
def run() -> Iterator[Callable[..., Fake]]:
    """Start the command with arguments; every process is killed after the test."""
    started: list[Fake] = []

    def start(*args: str) -> Fake:
        started.append(Fake(*args))
        return started[-1]

    yield start
    for fake in started:
        fake.kill()


def _raw(url: str, method: str, path: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """One request exactly as written (no client-side path cleaning), one connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        body = b"{}" if method in ("PUT", "POST") else None
        conn.request(method, path, body=body)
        reply = conn.getresponse()
        data = reply.read()
        # Sorted: Go's header order is the live server's own concern (test_server.py).
        headers = sorted((k, v) for k, v in reply.getheaders() if k != "Date")
        return reply.status, reply.reason, headers, data
    finally:
        conn.close()


def test_no_control_answers_the_prefix_as_the_real_service_does(
    real_service: RealDiscoveryService, run: Callable[..., Fake]
) -> None:
    fake = run("--port", "0", "--no-control")
    url = fake.url()
    for method, path in RESERVED + AROUND:
        real = _raw(real_service.url, method, path)
        assert real[0] in (301, 404), (method, path, real)
        assert _raw(url, method, path) == real, (method, path)


def test_with_control_on_the_paths_around_the_prefix_stay_the_services(
    real_service: RealDiscoveryService, run: Callable[..., Fake]
) -> None:
    fake = run("--port", "0")
    url = fake.url()
    for method, path in AROUND:
        assert _raw(url, method, path) == _raw(real_service.url, method, path), (method, path)
    # ...while the prefix itself is the control API.
    status, _, headers, body = _raw(url, "GET", "/_fake/clock")
    assert status == 200 and ("Content-Type", "application/json") in headers
    assert json.loads(body)["controllable"] is True


def _tokens(url: str, count: int) -> list[str]:
    return [requests.get(f"{url}/new", timeout=WAIT).text.rsplit("/", 1)[1] for _ in range(count)]


def test_seed_hands_out_the_same_tokens_on_every_run(run: Callable[..., Fake]) -> None:
    first = run("--port", "0", "--seed", "1234")
    tokens = _tokens(first.url(), 3)
    assert len(set(tokens)) == 3
    assert first.stop() == 0
    again = run("--port", "0", "--seed", "1234")
    url = again.url()
    requests.get(f"{url}/health", timeout=WAIT)  # a health check does not shift them
    assert _tokens(url, 3) == tokens
    other = run("--port", "0", "--seed", "99")
    assert set(_tokens(other.url(), 3)).isdisjoint(tokens)
    unseeded = run("--port", "0")
    assert set(_tokens(unseeded.url(), 3)).isdisjoint(tokens)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_state_is_written_at_a_clean_stop_and_loaded_at_start(
    run: Callable[..., Fake], tmp_path: Path, sig: int
) -> None:
    state = tmp_path / "fake-state.json"
    first = run("--port", "0", "--state", str(state))
    url = first.url()
    token_url = requests.get(f"{url}/new?size=1", timeout=WAIT).text
    token = token_url.rsplit("/", 1)[1]
    put = requests.put(f"{url}/{token}/m1", data={"value": "m1=http://a:2380"}, timeout=WAIT)
    assert put.status_code == 201
    assert not state.exists()  # written at the stop, not before
    assert first.stop(sig) == 0
    saved = json.loads(state.read_text())
    assert list(saved) == ["store"]

    second = run("--port", "0", "--state", str(state))
    url = second.url()
    members = requests.get(f"{url}/{token}", timeout=WAIT).json()["node"]["nodes"]
    assert [(m["key"].rsplit("/", 1)[1], m["value"]) for m in members] == [
        ("m1", "m1=http://a:2380")
    ]
    assert requests.get(f"{url}/_fake/state", timeout=WAIT).json() == saved
    # The index goes on from where it stood.
    assert requests.get(f"{url}/new", timeout=WAIT).status_code == 200
    assert second.stop() == 0
    assert json.loads(state.read_text())["store"]["index"] == saved["store"]["index"] + 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "cannot parse state"),
        ('{"store": {"index": "x"}}', "store.index must be an integer"),
        ("[]", 'a state is {"store": ...}'),
        (_FAR_STATE, "expireNs out of range"),
    ],
)
def test_a_bad_state_file_is_one_error_line(
    run: Callable[..., Fake], tmp_path: Path, content: str, expected: str
) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    code, stderr = run("--port", "0", "--state", str(state)).finish()
    assert code == 2
    assert_one_error_line(stderr, expected)
    assert state.read_text() == content  # left as it was


def test_a_state_file_that_is_not_utf8_is_one_error_line(
    run: Callable[..., Fake], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(b'{"store": "\xff\xfe"}')
    code, stderr = run("--port", "0", "--state", str(state)).finish()
    assert code == 2
    assert_one_error_line(stderr, "not UTF-8")
    assert state.read_bytes() == b'{"store": "\xff\xfe"}'


@pytest.mark.parametrize("content", ["", "\n", "  \n\n"])
def test_an_empty_state_file_is_a_first_run(
    run: Callable[..., Fake], tmp_path: Path, content: str
) -> None:
    # What `STATE=$(mktemp)` hands a script: an empty file.
    state = tmp_path / "state.json"
    state.write_text(content)
    fake = run("--port", "0", "--state", str(state))
    url = fake.url()
    assert requests.get(f"{url}/_fake/tokens", timeout=WAIT).json()["tokens"] == []
    requests.get(f"{url}/new", timeout=WAIT)
    assert fake.stop() == 0
    assert json.loads(state.read_text())["store"]["index"] == 1


def test_a_state_file_in_a_missing_directory_fails_at_start(
    run: Callable[..., Fake], tmp_path: Path
) -> None:
    state = tmp_path / "no-such-dir" / "state.json"
    code, stderr = run("--port", "0", "--state", str(state)).finish()
    assert code == 2
    assert_one_error_line(stderr, "cannot write there: No such file or directory")
    assert not state.parent.exists()


def test_a_control_token_from_the_command_line(run: Callable[..., Fake]) -> None:
    fake = run("--port", "0", "--control-token", "s3cret")
    url = fake.url()
    refused = requests.post(f"{url}/_fake/reset", timeout=WAIT)
    assert refused.status_code == 401
    assert "Bearer" in refused.json()["message"]
    auth = {"Authorization": "Bearer s3cret"}
    assert requests.post(f"{url}/_fake/reset", headers=auth, timeout=WAIT).status_code == 200
    # The service itself needs no token.
    assert requests.get(f"{url}/new", timeout=WAIT).status_code == 200
    assert fake.stop() == 0


@pytest.mark.parametrize("token", ["", "two words"])
def test_a_bad_control_token_is_a_usage_error(run: Callable[..., Fake], token: str) -> None:
    code, stderr = run("--port", "0", "--control-token", token).finish()
    assert code == 2
    assert_one_error_line(stderr, "visible ASCII")


# A wildcard bind is not made here (tests bind loopback only): a fault plan that cannot be
# read stops the command after the warning and before it listens.
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "box.example"])
def test_a_non_loopback_host_warns_about_the_control_api(
    run: Callable[..., Fake], tmp_path: Path, host: str
) -> None:
    missing = str(tmp_path / "no-faults.toml")
    code, stderr = run("--host", host, "--port", "0", "--faults", missing).finish()
    assert code == 2
    (warning,) = [line for line in stderr.splitlines() if "warning:" in line]
    assert warning.startswith(f"etcd-discovery-fake: warning: listening on {host}:")
    for power in ("reset the store", "overwrite the state", "inject faults", "--control-token"):
        assert power in warning


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "127.0.0.1"],
        ["--host", "localhost"],
        ["--host", "::1"],
        ["--host", "0.0.0.0", "--no-control"],
    ],
)
def test_no_warning_on_loopback_or_without_the_control_api(
    run: Callable[..., Fake], tmp_path: Path, args: list[str]
) -> None:
    missing = str(tmp_path / "no-faults.toml")
    code, stderr = run(*args, "--port", "0", "--faults", missing).finish()
    assert code == 2
    assert "warning:" not in stderr


def test_a_wildcard_bind_is_named_by_a_loopback_url() -> None:
    from pytest_etcd_discovery._transport.server import connect_host, url_host

    assert (url_host("0.0.0.0"), url_host("::"), url_host("")) == (
        "127.0.0.1",
        "[::1]",
        "127.0.0.1",
    )
    assert (connect_host("::"), connect_host("::1"), url_host("::1")) == ("::1", "::1", "[::1]")
    assert url_host("192.0.2.1") == "192.0.2.1"
