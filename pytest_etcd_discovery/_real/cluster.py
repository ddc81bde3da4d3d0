"""Start real etcd 3.4 members that bootstrap through a discovery URL.

This is the end-to-end check of the fake: the clients that matter are real etcd
processes, so these helpers start N of them with ``--discovery <url>`` on free loopback
ports and temporary data directories, wait until they form a cluster, and ask the cluster
(through ``etcdctl``) who its members are.

Facts measured against etcd 3.4.23 (and read from its source) that the API relies on:

* A member's id is ``sha1(sorted peer URLs joined + discovery URL)``, first 8 bytes big
  endian, printed in lowercase hex without leading zeros (:func:`etcd_member_id`).  With
  ``--discovery`` the discovery URL *is* the cluster token (``embed.Config.PeerURLsMapAndToken``),
  so restarting a member with the same peer URL and discovery URL registers the same key.
* The client and peer ports are bound *before* discovery runs, so an open port says
  nothing; readiness is ``/health`` answering ``{"health":"true"}`` (needs a leader).
* Members block in discovery until all ``size`` have registered, so they must be started
  together (:meth:`DiscoveryCluster.start` starts every process before waiting on any).
* An extra member of a full token fails fast without registering: with
  ``--discovery-fallback=exit`` it exits 1 ("cluster is full"); with the default
  ``proxy`` it keeps running as a v2-only HTTP proxy on its client URL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pytest_etcd_discovery._real.processes import (
    EtcdProcess,
    ProcessError,
    find_binary,
    free_port,
    missing_binaries,
)

from .._errors import Error

# Re-exported: the rule lives with the other etcd rules (service/ needs it, not real/).
from .._etcd_rules import etcd_member_id

__all__ = [
    "DUPLICATE_ID_PATTERN",
    "FULL_CLUSTER_PATTERN",
    "PORT_TAKEN_PATTERN",
    "PROXY_FALLBACK_PATTERN",
    "PROXY_STARTED_PATTERN",
    "READY_PATTERN",
    "ClusterError",
    "DiscoveryCluster",
    "EtcdMember",
    "MemberInfo",
    "etcd_member_id",
]

# Log lines of etcd 3.4; each pattern matches both the zap (JSON) and capnslog wording.
#: Printed once the member serves client requests.
READY_PATTERN = re.compile(r"ready to serve client requests")
#: An extra member of a full token (both fallbacks print the error itself).
FULL_CLUSTER_PATTERN = re.compile(r"discovery: cluster is full")
#: The default ``--discovery-fallback=proxy`` decided to run as a proxy.
PROXY_FALLBACK_PATTERN = re.compile(r"discovery cluster (is )?full, falling back to proxy")
#: The fallback proxy listens on its client URL.
PROXY_STARTED_PATTERN = re.compile(r"v2 proxy started listening on client requests")
#: A member whose id is already registered (its data dir was wiped): PUT answered 412.
DUPLICATE_ID_PATTERN = re.compile(
    r"discovery: found duplicate id|has previously registered with discovery service"
    r"|member has been registered with discovery service"
)

#: etcd could not bind a port (another process took it after free_port chose it).
PORT_TAKEN_PATTERN = re.compile(r"bind: address already in use")

#: Raft timings that let a loopback cluster elect a leader in well under a second while
#: leaving room for a loaded 2-core machine (heartbeat 25 ms, election 250 ms).
FAST_RAFT_ARGS: tuple[str, ...] = ("--heartbeat-interval", "25", "--election-timeout", "250")

_POLL_INTERVAL = 0.05
#: The member serves clients (zap, then capnslog wording): only then does it answer.
_SERVING_PATTERN = re.compile(r"serving client traffic|ready to serve client requests")
#: A peer the member counts as connected, in its Prometheus ``/metrics``.
_ACTIVE_PEER = re.compile(rb"^etcd_network_active_peers\{[^}]*\} 1$", re.MULTILINE)
#: SIGKILL after this long when a whole cluster stops (see DiscoveryCluster.stop).
_CLUSTER_STOP_TIMEOUT = 2.0
_TAIL_CHARS = 3000


class ClusterError(Error, RuntimeError):
    """The cluster did not come up (or ``etcdctl`` failed); the message quotes the logs."""


@dataclass(frozen=True)
class MemberInfo:
    """One entry of ``etcdctl member list -w json``."""

    id: str  # hex, as etcd prints and registers it
    name: str  # empty while the member has not started (published its attributes)
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        """etcdctl's "started" column: a member that published its name has started."""
        return bool(self.name)


def _etcdctl_env() -> dict[str, str]:
    # Inherited ETCDCTL_* settings (endpoints, TLS, API version) would change the query.
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only
            status: int = resp.status
            return status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _http_post_json(url: str, body: dict[str, object], timeout: float) -> dict[str, Any]:
    """POST a JSON body; return the decoded JSON object (raises OSError/ValueError)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # loopback only
        data = json.loads(resp.read())
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object: {data!r}")
    return data


def _healthy(client_url: str) -> bool:
    """Whether ``/health`` says the member has a leader and can serve a read."""
    try:
        status, body = _http_get(f"{client_url}/health", timeout=1)
    except OSError:
        return False
    return status == 200 and b'"true"' in body


class EtcdMember:
    """One real etcd member configured to bootstrap through ``discovery_url``.

    Ports are chosen once, so :meth:`start` after :meth:`stop` (or after
    :meth:`wipe_data`) comes back with the same peer URL and therefore the same member id.
    Each start runs a fresh :class:`~pytest_etcd_discovery._real.processes.EtcdProcess`.
    """

    def __init__(
        self,
        name: str,
        data_dir: Path,
        discovery_url: str,
        *,
        host: str = "127.0.0.1",
        fallback: str | None = None,
        enable_v2: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        #: The process environment (default: this one's); ``etcd_discovery.env()`` points
        #: the member at the fake's TLS front.
        self.env = dict(env) if env is not None else None
        self.data_dir = Path(data_dir)
        self.discovery_url = discovery_url
        self.host = host
        self.fallback = fallback
        self.enable_v2 = enable_v2
        self.extra_args = tuple(str(a) for a in extra_args)
        self.client_port = free_port(host)
        self.peer_port = free_port(host)
        self.process: EtcdProcess | None = None
        #: Output of earlier runs (a restart replaces :attr:`process`).
        self.previous_output = ""

    # -- addresses -------------------------------------------------------------------

    @property
    def client_url(self) -> str:
        """``http://host:client_port``."""
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """``http://host:peer_port``."""
        return f"http://{self.host}:{self.peer_port}"

    @property
    def member_id(self) -> str:
        """The id this member registers under the token (see :func:`etcd_member_id`)."""
        return etcd_member_id([self.peer_url], self.discovery_url)

    # -- lifecycle -------------------------------------------------------------------

    def argv_extra(self) -> list[str]:
        """The etcd flags this class adds to :class:`EtcdProcess`'s own."""
        args = ["--discovery", self.discovery_url, *FAST_RAFT_ARGS]
        if self.fallback is not None:
            args.append(f"--discovery-fallback={self.fallback}")
        return [*args, *self.extra_args]

    def start(self) -> None:
        """Start etcd (returns at once; it blocks in discovery until the token fills)."""
        if self.process is not None and self.process.running:
            raise ClusterError(f"{self.name} is already running")
        if self.process is not None:
            self.previous_output += self.process.output
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = EtcdProcess(
            self.name,
            self.data_dir,
            host=self.host,
            client_port=self.client_port,
            peer_port=self.peer_port,
            enable_v2=self.enable_v2,
            extra_args=self.argv_extra(),
            env=self.env,
        )
        self.process.start()

    def stop(self, timeout: float = 10) -> int | None:
        """Stop the process (idempotent); return its exit code.

        SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds.
        """
        if self.process is None:
            return None
        return self.process.stop(timeout)

    def wipe_data(self) -> None:
        """Delete the data directory, as an operator re-provisioning a machine would."""
        if self.running:
            raise ClusterError(f"stop {self.name} before wiping its data dir")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def lost_port_race(self) -> bool:
        """Whether the last run exited because one of its ports was taken meanwhile.

        etcd binds its ports before it talks to the discovery service, so such a run
        registered nothing and may simply be started again on new ports.
        """
        return (
            self.process is not None
            and not self.process.running
            and PORT_TAKEN_PATTERN.search(self.process.output) is not None
        )

    def repick_ports(self) -> None:
        """Choose new free ports (this changes :attr:`peer_url` and :attr:`member_id`)."""
        if self.running:
            raise ClusterError(f"stop {self.name} before changing its ports")
        self.client_port = free_port(self.host)
        self.peer_port = free_port(self.host)

    # -- state -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the current process runs."""
        return self.process is not None and self.process.running

    @property
    def returncode(self) -> int | None:
        """Exit code of the current process, ``None`` while it runs or before start."""
        return None if self.process is None else self.process.returncode

    @property
    def output(self) -> str:
        """Captured output of the current process."""
        return "" if self.process is None else self.process.output

    def _proc(self) -> EtcdProcess:
        if self.process is None:
            raise ClusterError(f"{self.name} was not started")
        return self.process

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 30) -> re.Match[str]:
        """Block until the current run's log matches ``pattern``; return the match.

        :raises ProcessError: etcd exited first, or ``timeout`` passed.
        """
        return self._proc().wait_for_output(pattern, timeout)

    def wait_exit(self, timeout: float = 30) -> int:
        """Block until etcd exits; return its exit code.

        :raises ClusterError: it still runs after ``timeout`` seconds.
        """
        code = self._proc().wait(timeout)
        if code is None:
            raise ClusterError(f"{self.name} still runs after {timeout} s\n{self.describe()}")
        return code

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until ``/health`` is healthy (a leader exists and reads succeed).

        :raises ClusterError: etcd exited, or was not healthy within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while not _healthy(self.client_url):
            if not self.running:
                raise ClusterError(f"{self.name} exited before it was healthy\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise ClusterError(f"{self.name} not healthy in {timeout} s\n{self.describe()}")
            time.sleep(_POLL_INTERVAL)

    def describe(self) -> str:
        """A few lines for failure messages: urls, state and the tail of the log."""
        state = "running" if self.running else f"exit code {self.returncode}"
        return (
            f"--- {self.name} ({state}; client {self.client_url}, peer {self.peer_url}, "
            f"id {self.member_id}) log tail ---\n{self.output[-_TAIL_CHARS:]}"
        )


class DiscoveryCluster:
    """``size`` real etcd members bootstrapping through one discovery URL.

    Use as a context manager: members are stopped on exit whatever happened. Member
    names are ``<name_prefix>1`` .. ``<name_prefix><size>``; data dirs live under
    ``base_dir``. ``fallback`` sets ``--discovery-fallback`` (``None`` = etcd's default,
    ``proxy``). ``enable_v2`` turns on the v2 API on the members (the fallback proxy only
    forwards v2 requests, so tests of it need that).

    :meth:`stop` removes every member's data dir (etcd preallocates 64 MB of WAL per
    member, which adds up to gigabytes over a suite), unless ``keep_data`` is true;
    ``keep_data="on-error"`` keeps them only when the ``with`` block raised (a failing
    test), for a post-mortem. ``base_dir`` itself stays. A cluster that is to start
    again after :meth:`stop` needs ``keep_data=True``: with its data gone a member
    registers anew and the discovery service refuses it as a duplicate.
    """

    def __init__(
        self,
        discovery_url: str,
        size: int,
        *,
        base_dir: Path,
        name_prefix: str = "m",
        extra_args: Sequence[str] = (),
        fallback: str | None = None,
        enable_v2: bool = False,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        keep_data: bool | Literal["on-error"] = False,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.discovery_url = discovery_url
        self.size = size
        self.base_dir = Path(base_dir)
        self.name_prefix = name_prefix
        self.extra_args = tuple(extra_args)
        self.fallback = fallback
        self.enable_v2 = enable_v2
        self.host = host
        self.env = env
        if keep_data not in (True, False, "on-error"):
            raise ValueError(f"keep_data must be True, False or 'on-error', got {keep_data!r}")
        self.keep_data = keep_data
        self._failed = False  # the with block raised (keep_data="on-error")
        self.members: list[EtcdMember] = [
            self._new_member(f"{name_prefix}{i}", fallback) for i in range(1, size + 1)
        ]
        #: Members added by :meth:`add_extra_member` (not counted in :attr:`size`).
        self.extras: list[EtcdMember] = []

    def _new_member(
        self, name: str, fallback: str | None, extra_args: Sequence[str] = ()
    ) -> EtcdMember:
        return EtcdMember(
            name,
            self.base_dir / f"{name}.etcd",
            self.discovery_url,
            host=self.host,
            fallback=fallback,
            enable_v2=self.enable_v2,
            extra_args=(*self.extra_args, *extra_args),
            env=self.env,
        )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start every member without waiting: each blocks in discovery until all
        ``size`` have registered, so waiting on one before starting the next deadlocks.
        """
        reason = missing_binaries("etcd", "etcdctl")
        if reason is not None:
            raise ProcessError(reason)
        for member in self.members:
            member.start()

    def wait_healthy(self, timeout: float = 60) -> None:
        """Block until every member's ``/health`` is healthy in two passes in a row.

        A member serves ``/health`` only after its own "publish attributes" entry is
        committed, so after one all-healthy pass every member has published; ``/health``
        is a quorum read, so in the second pass each member proves it applied everything
        committed before, including the others' publishes: ``member_list`` from any
        endpoint then shows all of them started (etcd 3.4's member list is a local read).
        An unhealthy answer starts over (bounded by ``timeout``, polling every 50 ms).

        A member that exited because another process took one of its ports meanwhile
        is restarted on new ports (it had not registered yet); any other exit fails at
        once, quoting every member's log.

        :raises ClusterError: a member exited, or not all were healthy in ``timeout``.
        """
        deadline = time.monotonic() + timeout
        healthy_passes = 0
        port_retries = 3 * len(self.members)
        while True:
            for member in self.members:
                if member.lost_port_race() and port_retries > 0:
                    port_retries -= 1
                    member.repick_ports()
                    member.start()
                    healthy_passes = 0
                if not member.running:
                    raise ClusterError(
                        f"member {member.name} exited while the cluster bootstrapped\n"
                        + self.describe()
                    )
            unhealthy = [m for m in self.members if not _healthy(m.client_url)]
            healthy_passes = 0 if unhealthy else healthy_passes + 1
            if healthy_passes == 2:
                return
            if not unhealthy:
                continue  # the confirming pass, at once
            if time.monotonic() >= deadline:
                names = ", ".join(m.name for m in unhealthy)
                raise ClusterError(f"not healthy after {timeout} s: {names}\n{self.describe()}")
            time.sleep(_POLL_INTERVAL)

    def add_extra_member(
        self,
        name: str | None = None,
        *,
        fallback: str | None = None,
        extra_args: Sequence[str] = (),
        start: bool = True,
    ) -> EtcdMember:
        """Create (and by default start) one more member with the same discovery URL.

        It is not waited for: against a full token it either exits (``fallback="exit"``)
        or turns into a proxy (default); use :meth:`EtcdMember.wait_exit` or
        :meth:`EtcdMember.wait_for_log` to observe which. It is stopped with the cluster.
        """
        if name is None:
            name = f"{self.name_prefix}{self.size + len(self.extras) + 1}"
        member = self._new_member(name, fallback, extra_args)
        self.extras.append(member)
        if start:
            member.start()
        return member

    def stop(self) -> None:
        """Stop every member, extras first and the raft leader last; safe to call twice.

        Why the order: a stopping leader hands leadership to its best-connected peer and
        waits for the handover up to etcd's request timeout (5 s + 2 election timeouts,
        measured 5.5 s) when that peer is itself going away; a leader whose peers are all
        gone skips the handover at once. Followers stop in ~20 ms. Any member still
        running 2 s after SIGTERM gets SIGKILL (data dirs of test clusters are disposable).

        Then each stopped member's data dir is removed, as ``keep_data`` says (see the
        class).
        """
        leader = self.leader()
        order = [*reversed(self.extras), *(m for m in reversed(self.members) if m is not leader)]
        if leader is not None:
            order.append(leader)
        errors: list[BaseException] = []
        for member in order:
            if member is leader:
                self._wait_peers_inactive(leader, _CLUSTER_STOP_TIMEOUT)
            try:
                # A leader may still pick a peer that just died (its stream not yet seen
                # as broken) and wait out the handover: cut that short with SIGKILL.
                member.stop(_CLUSTER_STOP_TIMEOUT)
            except Exception as err:  # keep stopping the others, report all at the end
                errors.append(err)
        if not (self.keep_data is True or (self.keep_data == "on-error" and self._failed)):
            for member in order:
                if not member.running:  # never pull the data from under a live process
                    shutil.rmtree(member.data_dir, ignore_errors=True)
        if errors:
            raise ClusterError(f"stopping members failed: {errors!r}")

    @staticmethod
    def _wait_peers_inactive(leader: EtcdMember, timeout: float) -> None:
        """Wait (at most ``timeout``) until ``leader`` sees none of its peers as active.

        On SIGTERM a leader hands over to its longest-connected *active* peer; one that
        has just stopped (or crashed) may still count as active for a moment, and then the
        handover waits until it times out. Its ``/metrics`` say when they are all gone.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and leader.running:
            try:
                status, body = _http_get(f"{leader.client_url}/metrics", timeout=1)
            except OSError:
                return
            if status != 200 or _ACTIVE_PEER.search(body) is None:
                return
            time.sleep(_POLL_INTERVAL)

    def __enter__(self) -> DiscoveryCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._failed = exc_type is not None
        self.stop()

    # -- queries ---------------------------------------------------------------------

    @property
    def client_urls(self) -> list[str]:
        """Client URLs of the ``size`` bootstrap members."""
        return [m.client_url for m in self.members]

    def leader(self) -> EtcdMember | None:
        """The member a running member names as raft leader, or ``None`` if none answers.

        Asks the v3 HTTP gateway (``POST /v3/maintenance/status``), which is cheaper than
        running ``etcdctl``; the ids there are decimal strings.
        """
        by_id = {int(m.member_id, 16): m for m in self.members}
        for member in self.members:
            # One that never said it serves has no leader to name, and its client port
            # may hold the request for the whole timeout (a member still in discovery).
            if not member.running or _SERVING_PATTERN.search(member.output) is None:
                continue
            try:
                status = _http_post_json(f"{member.client_url}/v3/maintenance/status", {}, 1)
                return by_id.get(int(status.get("leader", 0)))
            except (OSError, ValueError):
                continue
        return None

    def etcdctl(self, *args: str, timeout: float = 15) -> str:
        """Run ``etcdctl --endpoints <members> <args>`` (API v3); return its stdout.

        :raises ClusterError: non-zero exit or timeout, quoting etcdctl's stderr.
        """
        exe = find_binary("etcdctl")
        if exe is None:
            raise ProcessError(missing_binaries("etcdctl") or "etcdctl not found")
        argv = [
            exe,
            "--endpoints",
            ",".join(self.client_urls),
            "--dial-timeout",
            "3s",
            "--command-timeout",
            f"{max(1, int(timeout) - 2)}s",
            *args,
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=_etcdctl_env()
            )
        except subprocess.TimeoutExpired as err:
            raise ClusterError(f"{' '.join(argv)} timed out after {timeout} s") from err
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def member_list(self) -> list[MemberInfo]:
        """The cluster's view of its members (``etcdctl member list -w json``), sorted by name."""
        data = json.loads(self.etcdctl("member", "list", "-w", "json"))
        members = [
            MemberInfo(
                id=format(int(m["ID"]), "x"),
                name=str(m.get("name", "")),
                peer_urls=tuple(m.get("peerURLs", ())),
                client_urls=tuple(m.get("clientURLs", ())),
                is_learner=bool(m.get("isLearner", False)),
            )
            for m in data.get("members", [])
        ]
        return sorted(members, key=lambda m: m.name)

    def describe(self) -> str:
        """Every member's state and log tail, for failure messages."""
        parts = [f"discovery URL: {self.discovery_url}"]
        parts += [m.describe() for m in (*self.members, *self.extras)]
        return "\n".join(parts)
