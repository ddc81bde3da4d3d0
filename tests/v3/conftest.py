"""Fixtures for the v3 discovery tests (etcd 3.6+ ``--discovery-endpoints``).

``v3_endpoint`` is the discovery store under test, parametrized over a real etcd 3.4's v3
API and the fake's (``etcd_discovery.v3``), so that every test is a differential one.
``go_v3discovery`` is the Go client of etcd's v3 discovery steps
(``tests/realclients/v3discovery``), built once per session from Debian's etcd sources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from realutil import SKIP_PREFIX, require_real, skip_or_fail
from v3disc_util import FAKE, REAL, Endpoint

from pytest_etcd_discovery._real.processes import EtcdProcess

GO_SOURCE = Path(__file__).resolve().parent.parent / "realclients" / "v3discovery" / "main.go"
#: Debian's golang-etcd-server-dev puts etcd 3.4's sources (clientv3 included) here.
GOCODE = Path("/usr/share/gocode")


@pytest.fixture(scope="session")
def real_v3_etcd() -> Iterator[str]:
    """A real etcd 3.4 (its v3 API) on free loopback ports for the session: ``host:port``.

    Its data directory (a 64 MB preallocated WAL) is removed when it stops, not left in
    pytest's kept tmp_path trees.
    """
    require_real("etcd")
    with tempfile.TemporaryDirectory(prefix="etcd-v3-") as data:
        etcd = EtcdProcess("v3store", data)
        etcd.start()
        try:
            etcd.wait_ready()
            yield f"{etcd.host}:{etcd.client_port}"
        finally:
            etcd.stop()


@pytest.fixture(params=[REAL, FAKE])
def v3_endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """The real etcd's v3 API, then the fake's."""
    if request.param == REAL:
        return Endpoint(REAL, request.getfixturevalue("real_v3_etcd"))
    face = request.getfixturevalue("etcd_discovery").v3
    return Endpoint(FAKE, face.endpoint)


def go_missing() -> str | None:
    """Why the Go client cannot be built here, or ``None``."""
    if shutil.which("go") is None:
        return f"{SKIP_PREFIX}: go (Debian package golang-go)"
    if not (GOCODE / "src/go.etcd.io/etcd/clientv3").is_dir():
        return f"{SKIP_PREFIX}: etcd's clientv3 sources (Debian package golang-etcd-server-dev)"
    return None


@pytest.fixture(scope="session")
def go_v3discovery() -> Iterator[Path]:
    """The Go client, built once per session in GOPATH mode without network (its 15 MB
    binary removed at the end of the session)."""
    reason = go_missing()
    if reason is not None:
        skip_or_fail(reason)
    with tempfile.TemporaryDirectory(prefix="go-v3discovery-") as tmp:
        yield _build(Path(tmp))


def _build(work: Path) -> Path:
    """`go build` the client into `work`; fails the session on a build error."""
    binary = work / "v3discovery"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        # Our own dir first (the build writes nothing there), then Debian's sources.
        "GOPATH": f"{work / 'gopath'}:{GOCODE}",
        "GOPROXY": "off",
        "GOFLAGS": "",
    }
    if "GOCACHE" not in env and "HOME" not in env:  # go needs one of them
        env["GOCACHE"] = str(work / "gocache")
    built = subprocess.run(
        ["go", "build", "-o", str(binary), str(GO_SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0:
        pytest.fail(f"building the Go v3 discovery client failed:\n{built.stderr}")
    return binary
