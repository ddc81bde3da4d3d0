"""Run the real binaries (etcd, discovery.etcd.io) for tests that compare the fake with them.

Everything here is about process hygiene: free loopback ports, captured output, bounded
readiness checks that fail with the process's own words, and a guarantee that nothing is
left running (explicit ``stop`` in ``finally`` plus an ``atexit`` safety net).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from .._errors import Error

__all__ = [
    "EtcdProcess",
    "ManagedProcess",
    "ProcessError",
    "RealDiscoveryService",
    "find_binary",
    "free_port",
    "missing_binaries",
    "real_stack_missing",
]

#: Directories searched after ``PATH``; the Debian packages install there and a test
#: runner's ``PATH`` may not include ``/usr/sbin``.
_EXTRA_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin")

#: How often readiness loops look again; the rules ask for 10-50 ms.
_POLL_INTERVAL = 0.02

#: Characters of captured output quoted in error messages.
_TAIL_CHARS = 2000

#: Environment variables etcd reads as flags; an inherited one would change the test setup.
_ETCD_ENV_PREFIX = "ETCD_"


class ProcessError(Error, RuntimeError):
    """A managed process died, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The port is released before returning, so another process could take it in the
    meantime; callers that start a server on it should be ready to retry.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str) -> str | None:
    """Return the full path of executable ``name`` (``PATH``, then the usual system dirs)."""
    found = shutil.which(name)
    if found is not None:
        return found
    for directory in _EXTRA_BIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


#: The Debian package that installs each binary (etcdctl comes apart from etcd).
DEBIAN_PACKAGES = {
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "discovery.etcd.io": "etcd-discovery",
}


def missing_binaries(*names: str) -> str | None:
    """Return ``None`` when every binary is found, else a reason fit for ``pytest.skip``.

    The reason always starts with ``"real binaries missing"`` so that
    ``ETCD_DISCOVERY_REQUIRE_REAL=1`` can turn such skips into failures.
    """
    missing = [name for name in names if find_binary(name) is None]
    if not missing:
        return None
    dirs = ", ".join(("PATH", *_EXTRA_BIN_DIRS))
    packages = [DEBIAN_PACKAGES[name] for name in missing if name in DEBIAN_PACKAGES]
    which = f"Debian package {', '.join(packages)}; " if packages else ""
    return (
        f"real binaries missing: {', '.join(missing)} (searched {dirs}; {which}"
        f"everything the real tests use: apt-get install {' '.join(DEBIAN_PACKAGES.values())})"
    )


#: discovery.etcd.io reads this at start and exits without it (the Debian package ships it).
DISCOVERY_CONFIG = Path("/etc/etcd-discovery/etcd-discovery.conf")


def real_stack_missing() -> str | None:
    """Like :func:`missing_binaries` for everything :class:`RealDiscoveryService` needs:
    ``etcd``, ``discovery.etcd.io`` and the latter's config file."""
    reason = missing_binaries("etcd", "discovery.etcd.io")
    if reason is None and not DISCOVERY_CONFIG.is_file():
        reason = (
            f"real binaries missing: {DISCOVERY_CONFIG} (discovery.etcd.io exits without "
            "it; install the Debian package etcd-discovery)"
        )
    return reason


# Processes still running at interpreter exit are stopped here, whatever the tests did.
_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE):
        proc.stop(timeout=5)


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ManagedProcess:
    """A subprocess whose combined stdout/stderr is captured by a reader thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (idempotent)
    yourself. Waiting methods have a deadline and raise :class:`ProcessError` quoting
    the tail of the output when the process died or did not get ready.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.argv: list[str] = [str(a) for a in argv]
        self.name = name
        self.env: dict[str, str] | None = dict(env) if env is not None else None
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._chunks: list[str] = []
        # The reader thread appends output and notifies; waiters block on it instead of
        # sleeping in a loop.
        self._cond = threading.Condition()
        self._eof = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and its output reader thread."""
        if self._proc is not None:
            raise ProcessError(f"{self.name} was already started")
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            # Its own session: a Ctrl-C aimed at pytest does not hit it before we stop it.
            start_new_session=True,
        )
        _LIVE.add(self)
        self._reader = threading.Thread(
            target=self._read_output, name=f"{self.name}-output", daemon=True
        )
        self._reader.start()

    def _read_output(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        # os.read hands over whatever is available, so partial lines reach waiters too.
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            text = chunk.decode("utf-8", errors="replace")
            with self._cond:
                self._chunks.append(text)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stop(self, timeout: float = 10) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``); return its exit code.

        Calling it again, or on a process never started, is harmless.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            except ProcessLookupError:  # it exited between poll and signal
                proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
        _LIVE.discard(self)
        return proc.returncode

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to exit; ``None`` if it still runs."""
        proc = self._require_started()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------

    @property
    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr interleaved)."""
        with self._cond:
            return "".join(self._chunks)

    @property
    def returncode(self) -> int | None:
        """The exit code, or ``None`` while running or before :meth:`start`."""
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id once started."""
        return None if self._proc is None else self._proc.pid

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise ProcessError(f"{self.name} was not started")
        return self._proc

    def _failure(self, what: str) -> ProcessError:
        tail = self.output[-_TAIL_CHARS:]
        code = self.returncode
        state = "running" if code is None else f"exited with {code}"
        cmd = " ".join(self.argv)
        return ProcessError(
            f"{self.name}: {what} ({state}; command: {cmd})\n--- output tail ---\n{tail}"
        )

    # -- readiness -------------------------------------------------------------------

    def wait_for_port(self, port: int, host: str = "127.0.0.1", timeout: float = 20) -> None:
        """Block until ``host:port`` accepts TCP connections.

        :raises ProcessError: the process exited first, or ``timeout`` passed.
        """
        self._require_started()
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise self._failure(f"exited before {host}:{port} accepted connections")
            if _port_accepts(host, port):
                return
            if time.monotonic() >= deadline:
                raise self._failure(f"{host}:{port} did not accept connections in {timeout} s")
            time.sleep(_POLL_INTERVAL)

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float = 20) -> re.Match[str]:
        """Block until the captured output matches ``pattern`` (a regex); return the match.

        :raises ProcessError: the output ended (process exited) or ``timeout`` passed.
        """
        self._require_started()
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search("".join(self._chunks))
                if match is not None:
                    return match
                remaining = deadline - time.monotonic()
                if self._eof:
                    break
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        if self._eof:
            # Output ends just before the exit; give it a moment so the message has the code.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._require_started().wait(2)
            raise self._failure(f"exited without printing {regex.pattern!r}")
        raise self._failure(f"timed out after {timeout} s without printing {regex.pattern!r}")


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url``; return (status, body) for any HTTP answer, raise OSError otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback URLs only
            status: int = resp.status
            return status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _clean_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment for etcd: no inherited ETCD_* flags, no proxies for loopback."""
    base = dict(os.environ if env is None else env)
    for key in list(base):
        if key.startswith(_ETCD_ENV_PREFIX):
            del base[key]
    return base


class EtcdProcess(ManagedProcess):
    """One real etcd member on loopback ports with its own data directory.

    Unless ``extra_args`` bring their own ``--initial-cluster`` or ``--discovery``, the
    member forms a one-node cluster of itself.
    """

    def __init__(
        self,
        name: str,
        data_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        client_port: int | None = None,
        peer_port: int | None = None,
        enable_v2: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        binary: str | None = None,
    ) -> None:
        self.host = host
        self.data_dir = Path(data_dir)
        self.client_port = client_port if client_port is not None else free_port(host)
        self.peer_port = peer_port if peer_port is not None else free_port(host)
        self.enable_v2 = enable_v2
        self.extra_args = [str(a) for a in extra_args]
        exe = binary or find_binary("etcd")
        if exe is None:
            raise ProcessError(missing_binaries("etcd") or "etcd not found")
        argv = [
            exe,
            "--name",
            name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        if enable_v2:
            argv.append("--enable-v2=true")
        bootstraps_elsewhere = any(
            arg.split("=", 1)[0] in ("--initial-cluster", "--discovery", "--discovery-srv")
            for arg in self.extra_args
        )
        if not bootstraps_elsewhere:
            argv += ["--initial-cluster", f"{name}={self.peer_url}"]
        argv += self.extra_args
        super().__init__(argv, name=f"etcd[{name}]", env=_clean_env(env))
        self.member_name = name

    @property
    def client_url(self) -> str:
        """``http://host:client_port``."""
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """``http://host:peer_port``."""
        return f"http://{self.host}:{self.peer_port}"

    def wait_ready(self, timeout: float = 20) -> None:
        """Block until the client port accepts and ``/health`` reports a healthy member.

        :raises ProcessError: etcd exited, or was not healthy within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        self.wait_for_port(self.client_port, self.host, timeout)
        last = "no answer"
        while True:
            if not self.running:
                raise self._failure("exited before reporting healthy")
            try:
                status, body = _http_get(f"{self.client_url}/health", timeout=1)
                last = f"{status} {body!r}"
                # {"health":"true"} once a leader exists and the member serves requests.
                if status == 200 and b'"true"' in body:
                    return
            except OSError as err:
                last = repr(err)
            if time.monotonic() >= deadline:
                raise self._failure(f"/health not healthy in {timeout} s (last: {last})")
            time.sleep(_POLL_INTERVAL)


class RealDiscoveryService:
    """etcd (v2 API enabled) plus ``/usr/bin/discovery.etcd.io`` on free loopback ports.

    ``url`` is the discovery server's base URL and also its ``--host``, so ``/new`` hands
    out ``<url>/<token>``. A temporary directory holds etcd's data and is removed on stop.
    """

    #: Attempts when a chosen port was taken by someone else before a binary bound it.
    start_attempts = 3

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        etcd_args: Sequence[str] = ("--heartbeat-interval", "10", "--election-timeout", "100"),
        ready_timeout: float = 30,
    ) -> None:
        self.host = host
        # Short raft timings: a one-member cluster elects itself in ~0.1 s instead of ~1 s.
        self.etcd_args = list(etcd_args)
        self.ready_timeout = ready_timeout
        self.etcd: EtcdProcess | None = None
        self.discovery: ManagedProcess | None = None
        self._tmpdir: str | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The discovery server's base URL, ``http://127.0.0.1:PORT``."""
        if self._port is None:
            raise ProcessError("RealDiscoveryService is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def etcd_url(self) -> str:
        """The client URL of the etcd behind it."""
        if self.etcd is None:
            raise ProcessError("RealDiscoveryService is not started")
        return self.etcd.client_url

    def start(self) -> None:
        """Start etcd, then the discovery server; return once ``/health`` answers ``OK``."""
        reason = real_stack_missing()
        if reason is not None:
            raise ProcessError(reason)
        if self.discovery is not None:
            raise ProcessError("RealDiscoveryService was already started")
        last_error: ProcessError | None = None
        for _ in range(self.start_attempts):
            try:
                self._start_once()
                return
            except ProcessError as err:
                last_error = err
                self.stop()
                if "address already in use" not in str(err):
                    raise
        assert last_error is not None
        raise last_error

    def _start_once(self) -> None:
        self._tmpdir = tempfile.mkdtemp(prefix="etcd-discovery-real-")
        self.etcd = EtcdProcess(
            "discovery-backend",
            Path(self._tmpdir) / "etcd",
            host=self.host,
            enable_v2=True,
            extra_args=self.etcd_args,
        )
        self.etcd.start()
        self.etcd.wait_ready(self.ready_timeout)
        self._port = free_port(self.host)
        exe = find_binary("discovery.etcd.io")
        assert exe is not None  # checked in start()
        self.discovery = ManagedProcess(
            [
                exe,
                "--etcd",
                self.etcd.client_url,
                "--host",
                self.url,
                "--addr",
                f"{self.host}:{self._port}",
            ],
            name="discovery.etcd.io",
            env=_clean_env(None),
        )
        self.discovery.start()
        self.discovery.wait_for_port(self._port, self.host, self.ready_timeout)
        # /health creates and deletes a token through etcd: proves the whole chain works.
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while True:
            try:
                status, body = _http_get(f"{self.url}/health", timeout=2)
                last = f"{status} {body!r}"
                if status == 200 and body == b"OK":
                    return
            except OSError as err:
                last = repr(err)
            if not self.discovery.running:
                raise self.discovery._failure("exited before /health answered OK")
            if time.monotonic() >= deadline:
                raise self.discovery._failure(f"/health not OK in {self.ready_timeout} s ({last})")
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """Stop both processes and remove the data directory; safe to call twice."""
        try:
            if self.discovery is not None:
                self.discovery.stop()
        finally:
            try:
                if self.etcd is not None:
                    self.etcd.stop()
            finally:
                if self._tmpdir is not None:
                    shutil.rmtree(self._tmpdir, ignore_errors=True)
                self.discovery = None
                self.etcd = None
                self._tmpdir = None
                self._port = None

    def __enter__(self) -> RealDiscoveryService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
