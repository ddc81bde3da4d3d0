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
    ("GET", "/_fake/calls?since=0"),
    ("GET", "/_fake/static/dashboard.js"),
]
#: Next to the prefix: what the control API leaves to the service even when it is on.
AROUND = [("GET", "/_fake"), ("GET", "/_fake/../new"), ("GET", "/_fakes/state")]


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
