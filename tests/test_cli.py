"""The standalone fake, ``python -m pytest_etcd_discovery``, run as a real subprocess.

Every wait is bounded; every process started here is stopped by the ``run`` fixture.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

WAIT = 30.0  # generous: a loaded CI box can be slow to start Python
REPO = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)")


class Fake:
    """One CLI process and the lines of its stdout, read by a thread."""

    def __init__(self, *args: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_etcd_discovery", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def url(self) -> str:
        """The first stdout line: the base URL, printed once the server listens."""
        try:
            line = self.lines.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("the fake printed no URL in time")
        assert line is not None, f"the fake exited: {self.stop_output()}"
        assert line.endswith("\n")
        url = line.rstrip("\n")
        assert URL_LINE.fullmatch(url), url
        return url

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=WAIT)

    def stop_output(self) -> str:
        self.stop()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def finish(self) -> tuple[int, str]:
        """Exit code and stderr of a process expected to exit by itself."""
        code = self.proc.wait(timeout=WAIT)
        assert self.proc.stderr is not None
        self._reader.join(timeout=WAIT)
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def run() -> Iterator[Callable[..., Fake]]:
    started: list[Fake] = []

    def start(*args: str) -> Fake:
        fake = Fake(*args)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.kill()


def assert_one_error_line(stderr: str, expected: str) -> None:
    """argparse prints usage, then exactly one ``prog: error: ...`` line; no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.rstrip("\n").splitlines()
    errors = [line for line in lines if "error:" in line]
    assert errors == [lines[-1]]
    assert lines[-1].startswith("etcd-discovery-fake: error:")
    assert expected in lines[-1]


# -- running and stopping ---------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_prints_its_url_once_listening_and_stops_on_signal(
    run: Callable[..., Fake], sig: int
) -> None:
    fake = run("--port", "0")
    url = fake.url()
    assert int(URL_LINE.fullmatch(url).group(1)) > 0  # type: ignore[union-attr]
    # No retry: the line means the port already accepts connections.
    resp = requests.get(f"{url}/health", timeout=WAIT)
    assert (resp.status_code, resp.text) == (200, "OK")
    assert fake.stop(sig) == 0
    code, stderr = fake.finish()
    assert code == 0
    assert "Traceback" not in stderr
    assert fake.stdout == [f"{url}\n"]  # one line, nothing else


def test_a_signal_releases_a_blocked_long_poll(run: Callable[..., Fake]) -> None:
    fake = run("--port", "0", "--keys-api")
    url = fake.url()
    # The keys API flushes its headers once the watch is registered: the poll is in place.
    resp = requests.get(f"{url}/v2/keys/foo?wait=true", stream=True, timeout=WAIT)
    assert resp.status_code == 200
    done = threading.Event()
    body: list[bytes] = []

    def read_body() -> None:
        # A closed connection ends it too.
        with contextlib.suppress(requests.RequestException, OSError, ValueError):
            body.append(resp.raw.read())
        done.set()

    thread = threading.Thread(target=read_body, daemon=True)
    thread.start()
    assert fake.stop() == 0
    assert done.wait(WAIT), "the long poll still blocks after the fake stopped"
    assert body in ([], [b""])
    resp.close()


def test_public_url_is_what_new_hands_out(run: Callable[..., Fake]) -> None:
    fake = run("--port", "0", "--public-url", "https://disco.example:9443")
    url = fake.url()
    text = requests.get(f"{url}/new?size=1", timeout=WAIT).text
    assert re.fullmatch(r"https://disco\.example:9443/[0-9a-f]{32}", text)
    token = text.rsplit("/", 1)[1]
    # The token works on the server itself.
    size = requests.get(f"{url}/{token}/_config/size", timeout=WAIT).json()
    assert size["node"]["value"] == "1"


def test_default_new_hands_out_the_servers_own_url(run: Callable[..., Fake]) -> None:
    fake = run("--port", "0")
    url = fake.url()
    assert re.fullmatch(
        rf"{re.escape(url)}/[0-9a-f]{{32}}", requests.get(f"{url}/new", timeout=WAIT).text
    )


def test_profile_discoveryserver(run: Callable[..., Fake]) -> None:
    fake = run("--port", "0", "--profile", "discoveryserver")
    url = fake.url()
    token = requests.get(f"{url}/new", timeout=WAIT).text.rsplit("/", 1)[1]
    put = requests.put(f"{url}/{token}/m1?prevExist=false", data={"value": "v"}, timeout=WAIT)
    assert put.status_code == 200 and put.json()["action"] == "set"
    assert put.json()["node"]["key"] == f"/{token}/m1"
    assert requests.get(f"{url}/v2/keys/", timeout=WAIT).status_code == 404
    home = requests.get(url, allow_redirects=False, timeout=WAIT)
    assert home.status_code == 301
    assert home.headers["Location"] == "https://etcd.io/docs/v3.5/dev-internal/discovery_protocol"


# -- bad arguments and a busy port --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--port", "99999"), "port out of range 0-65535: 99999"),
        (("--port", "-1"), "port out of range"),
        (("--port", "abc"), "not a port number: 'abc'"),
        (("--profile", "nope"), "invalid choice: 'nope'"),
        (("--public-url", "ftp://x"), "not an http(s) URL"),
    ],
)
def test_bad_arguments_give_one_error_line_and_a_non_zero_exit(
    run: Callable[..., Fake], args: tuple[str, ...], expected: str
) -> None:
    code, stderr = run(*args).finish()
    assert code != 0
    assert_one_error_line(stderr, expected)


def test_a_busy_port_exits_1_with_an_error(run: Callable[..., Fake], busy_port: int) -> None:
    fake = run("--port", str(busy_port))
    code, stderr = fake.finish()
    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.rstrip("\n").splitlines()[-1] == (
        f"etcd-discovery-fake: error: cannot listen on 127.0.0.1:{busy_port}: "
        "address already in use"
    )
    assert fake.stdout == []


def test_a_busy_port_error_is_one_line(run: Callable[..., Fake], busy_port: int) -> None:
    _, stderr = run("--port", str(busy_port)).finish()
    assert stderr == (
        f"etcd-discovery-fake: error: cannot listen on 127.0.0.1:{busy_port}: "
        "address already in use\n"
    )


def test_help_exits_0(run: Callable[..., Fake]) -> None:
    fake = run("--help")
    code, stderr = fake.finish()
    assert code == 0 and stderr == ""
    assert "--public-url" in "".join(fake.stdout)


# -- the keys API ------------------------------------------------------------------------------


def test_keys_api_is_off_by_default_and_on_with_the_flag(run: Callable[..., Fake]) -> None:
    off = run("--port", "0")
    on = run("--port", "0", "--keys-api")
    off_url, on_url = off.url(), on.url()
    assert requests.get(f"{off_url}/v2/keys/", timeout=WAIT).text == "404 page not found\n"
    put = requests.put(f"{on_url}/v2/keys/a", data={"value": "1"}, timeout=WAIT)
    assert put.status_code == 201 and put.json()["node"]["key"] == "/a"
    # On loopback, the keys API comes without a warning.
    assert "warning" not in on.stop_output()


def test_keys_api_beyond_loopback_warns(run: Callable[..., Fake]) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails at once, so
    # nothing listens beyond loopback; the warning comes first.
    fake = run("--port", "0", "--host", "192.0.2.1", "--keys-api")
    code, stderr = fake.finish()
    assert code == 1
    lines = stderr.splitlines()
    assert lines[0].startswith("etcd-discovery-fake: warning: --keys-api on 192.0.2.1:")
    assert "list and delete every token" in lines[0]
    assert lines[-1].startswith("etcd-discovery-fake: error: cannot listen on 192.0.2.1:")


# -- --env-file: the drop-in for shell suites ---------------------------------------------


def test_env_file_points_a_shell_at_the_fake(run: Callable[..., Fake], tmp_path: Path) -> None:
    env_file = tmp_path / "fake.env"
    fake = run("--port", "0", "--env-file", str(env_file), "--host-url", "http://disco.test:8087")
    fake.url()  # printed after the env file is written: both ports accept connections now
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert values["HTTPS_PROXY"] == values["https_proxy"] == values["HTTP_PROXY"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", values["HTTPS_PROXY"])
    assert {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"} <= set(
        values
    )
    assert "127.0.0.1" in values["NO_PROXY"].split(",")
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("real binaries missing: curl")
    # What a shell suite does: `set -a; . fake.env; set +a`, then plain curl.
    for url, expected in (
        ("https://discovery.etcd.io/new?size=3", r"https://discovery\.etcd\.io/[a-f0-9]{32}"),
        ("http://disco.test:8087/new?size=3", r"http://disco\.test:8087/[a-f0-9]{32}"),
    ):
        script = f'set -a; . "{env_file}"; set +a; "{curl}" -sS --fail-with-body "{url}"'
        done = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env={"PATH": os.environ["PATH"]},
        )
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(expected, done.stdout)
    bundle_dir = Path(values["SSL_CERT_FILE"]).parent
    assert fake.stop() == 0
    fake.finish()
    # The CA files go with the process.
    assert not bundle_dir.exists()


# -- configuration that cannot work: one line, exit 2, before anything starts --------------


def _usage_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return [
        (["--env-file", "/nonexistent/env"], "--env-file /nonexistent/env: cannot write there"),
        (["--env-file", str(a_file / "env")], "cannot write there: Not a directory"),
        (["--env-file", str(tmp_path)], f"--env-file {tmp_path}: is a directory"),
        (["--state", "/nonexistent/state.json"], "--state /nonexistent/state.json: cannot write"),
        (["--state", str(a_file / "state.json")], "cannot write there: Not a directory"),
        (["--host-url", "https://disco.example:443"], "--host-url needs --env-file"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_unusable_files_and_options_are_one_line_usage_errors(
    case: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_etcd_discovery.__main__ import main

    args, expected = _usage_cases(tmp_path)[case]
    assert main([*args, "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # never started: no URL printed
    assert len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("etcd-discovery-fake: error: ")
    assert expected in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # the check left nothing
