"""Trust and exposure (issue 24): the test CA trusts only the discovery hosts, the front
is no relay beyond loopback, and the CA folder does not outlive its process.

Every server here binds loopback (or 0.0.0.0, reached through 127.0.0.1 only)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_dropin_proxy import _connect_line, _read_reply, echo

from pytest_etcd_discovery._transport.proxy import DiscoveryFront
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._transport.tls import LIFETIME, TestCA, load_cert_chain, sweep_stale

__all__ = ["echo"]  # the fixture, imported for these tests

HOSTS = ("https://discovery.etcd.io", "http://discovery.internal:8087")
NAMES = {"discovery.etcd.io", "discovery.internal"}


def _validity(cert: x509.Certificate) -> tuple[datetime.datetime, datetime.datetime]:
    """(not before, not after) in UTC, on old cryptography (naive) and new (aware)."""
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    utc = datetime.timezone.utc
    return cert.not_valid_before.replace(tzinfo=utc), cert.not_valid_after.replace(tzinfo=utc)


@pytest.fixture(scope="module")
def ca() -> Iterator[TestCA]:
    ca = TestCA(NAMES)
    yield ca
    ca.close()


def test_the_ca_is_scoped_to_the_discovery_hosts(ca: TestCA) -> None:
    cert = x509.load_pem_x509_certificate(ca.ca_pem.encode())
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees or []
    assert {n.value for n in permitted if isinstance(n, x509.DNSName)} == NAMES
    assert not [n for n in permitted if isinstance(n, x509.IPAddress)]
    # No discovery host is an IP address, so no IP address is allowed at all.
    excluded = {n.value for n in constraints.value.excluded_subtrees or []}
    assert excluded == {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and not usage.digital_signature
    start, end = _validity(cert)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert start < now < end
    # Hours, not centuries: a day and the hour it is backdated by.
    assert end - start == LIFETIME + datetime.timedelta(hours=1) <= datetime.timedelta(hours=25)


def test_an_ip_discovery_host_is_permitted_alone() -> None:
    ca = TestCA({"10.1.2.3"})
    try:
        constraints = ca.certificate.extensions.get_extension_for_class(x509.NameConstraints)
        permitted = {n.value for n in constraints.value.permitted_subtrees}
        assert permitted == {ipaddress.ip_network("10.1.2.3/32"), "invalid"}
        assert constraints.value.excluded_subtrees is None
    finally:
        ca.close()


def test_the_front_presents_a_server_auth_leaf_for_the_discovery_hosts() -> None:
    with DiscoveryServer() as server, DiscoveryFront(server, HOSTS) as front:
        raw = socket.create_connection(("127.0.0.1", front.port), timeout=30)
        with front.ca.client_context().wrap_socket(raw, server_hostname="discovery.etcd.io") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not basic.ca
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == NAMES
    ca_cert = front.ca.certificate
    assert leaf.issuer == ca_cert.subject
    assert _validity(leaf)[1] <= _validity(ca_cert)[1]


def _handshake(ca: TestCA, issued_for: str, server_hostname: str) -> None:
    """Serve a certificate for ``issued_for`` from ``ca`` on loopback and connect to it
    with a client that trusts ``ca`` (and the system roots) as the cover makes one."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    load_cert_chain(server_context, *ca.issue(issued_for))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.create_default_context()
    ca.trust(client)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        with client.wrap_socket(raw, server_hostname=server_hostname):
            pass
    finally:
        thread.join(30)
        listener.close()


@pytest.mark.parametrize("name", ["discovery.etcd.io", "discovery.internal"])
def test_a_client_that_trusts_the_ca_takes_a_discovery_name(ca: TestCA, name: str) -> None:
    _handshake(ca, name, name)


@pytest.mark.parametrize("name", ["localhost", "example.com", "127.0.0.1", "etcd.io"])
def test_a_client_that_trusts_the_ca_refuses_any_other_name(ca: TestCA, name: str) -> None:
    # Signed by the same CA and named as the client asks: only the name constraints
    # stand in the way.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ca, name, name)


# -- the front beyond loopback ------------------------------------------------------------


@pytest.fixture(params=["127.0.0.1", "0.0.0.0"])
def bound(request: pytest.FixtureRequest) -> Iterator[DiscoveryFront]:
    """A front bound to loopback or to every address; reached through 127.0.0.1 alone."""
    with (
        DiscoveryServer() as server,
        DiscoveryFront(server, HOSTS, host=request.param) as front,
    ):
        yield front


def _via_loopback(front: DiscoveryFront) -> socket.socket:
    return socket.create_connection(("127.0.0.1", front.port), timeout=30)


def test_connect_to_another_host_only_on_loopback(bound: DiscoveryFront, echo: int) -> None:
    with _via_loopback(bound) as raw:
        line = _connect_line(raw, f"127.0.0.1:{echo}")
        if bound.host == "127.0.0.1":
            assert line == "HTTP/1.1 200 Connection established"
            raw.sendall(b"ping")
            assert raw.recv(4) == b"ping"
        else:
            assert line == "HTTP/1.1 403 Forbidden"
            assert b"beyond loopback" in raw.recv(4096)


def test_absolute_form_for_another_host_only_on_loopback(bound: DiscoveryFront) -> None:
    port = bound.server.port  # the fake's plain server stands for "another host"
    with _via_loopback(bound) as raw:
        raw.sendall(
            f"GET http://127.0.0.1:{port}/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status, _ = _read_reply(raw)
    expected = "HTTP/1.1 200 OK" if bound.host == "127.0.0.1" else "HTTP/1.1 403 Forbidden"
    assert status == expected


def test_the_discovery_hosts_are_served_on_every_bind(bound: DiscoveryFront) -> None:
    with _via_loopback(bound) as raw:
        assert _connect_line(raw, "discovery.etcd.io:443").startswith("HTTP/1.1 200")
        with bound.ca.client_context().wrap_socket(raw, server_hostname="discovery.etcd.io") as tls:
            tls.sendall(
                b"GET /health HTTP/1.1\r\nHost: discovery.etcd.io\r\nConnection: close\r\n\r\n"
            )
            assert _read_reply(tls)[0] == "HTTP/1.1 200 OK"
    with _via_loopback(bound) as raw:
        raw.sendall(
            b"GET http://discovery.internal:8087/health HTTP/1.1\r\n"
            b"Host: discovery.internal:8087\r\nConnection: close\r\n\r\n"
        )
        assert _read_reply(raw)[0] == "HTTP/1.1 200 OK"


def test_a_port_beyond_65535_is_refused_not_wrapped(bound: DiscoveryFront, echo: int) -> None:
    # 65536 + N would reach port N if it were passed on.
    for target in (f"127.0.0.1:{65536 + echo}", f"discovery.etcd.io:{65536 + 443}"):
        with _via_loopback(bound) as raw:
            raw.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert _read_reply(raw)[0] == "HTTP/1.1 400 Bad Request"
    with _via_loopback(bound) as raw:
        raw.sendall(
            f"GET http://127.0.0.1:{65536 + bound.server.port}/health HTTP/1.1\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        assert _read_reply(raw)[0] == "HTTP/1.1 400 Bad Request"


def test_the_front_warns_when_bound_beyond_loopback(caplog: pytest.LogCaptureFixture) -> None:
    with DiscoveryServer() as server:
        for host in ("127.0.0.1", "0.0.0.0"):
            caplog.clear()
            with DiscoveryFront(server, HOSTS, host=host):
                pass
            warned = [r for r in caplog.records if "beyond loopback" in r.getMessage()]
            assert len(warned) == (host == "0.0.0.0")


# -- the CA folder ------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import signal, sys
    from pytest_etcd_discovery._transport.tls import session_ca
    # A program with the default actions: one started under nohup inherits SIGHUP
    # ignored, and the cleanup rightly leaves an ignored signal alone.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    if sys.argv[1] == "handled":  # a handler of the program's own: it stays
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    print(session_ca(["discovery.etcd.io"]).directory, flush=True)
    sys.stdin.read()
    """
)


def _holder(tmp_path: Path, mode: str = "plain") -> tuple[subprocess.Popen[str], Path]:
    """A process that made its test CA (in ``tmp_path``) and waits; and the CA's folder."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    folder = Path(child.stdout.readline().strip())
    assert folder.parent == tmp_path and (folder / "ca-bundle.pem").is_file()
    assert f"-{child.pid}-" in folder.name
    return child, folder


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_the_ca_folder_goes_on_sigterm_and_sighup(tmp_path: Path, signum: int) -> None:
    child, folder = _holder(tmp_path)
    child.send_signal(signum)
    assert child.wait(timeout=60) == -signum  # it still dies of the signal
    assert not folder.exists()


def test_a_handler_of_the_program_stays_and_atexit_cleans_up(tmp_path: Path) -> None:
    child, folder = _holder(tmp_path, "handled")
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 3
    assert not folder.exists()


def test_sigkill_leaves_the_folder_and_the_next_start_sweeps_it(tmp_path: Path) -> None:
    child, stale = _holder(tmp_path)
    child.kill()
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert stale.is_dir()  # nothing can run on SIGKILL
    # A live process's folder stays.
    live, kept = _holder(tmp_path)
    try:
        nxt, fresh = _holder(tmp_path)
        assert not stale.exists()
        assert kept.is_dir() and fresh.is_dir()
        nxt.communicate("", timeout=60)
        assert not fresh.exists()
    finally:
        live.communicate("", timeout=60)
    assert not kept.exists()


def test_the_sweep_takes_only_dead_owners_in_this_pid_namespace(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    link = os.readlink("/proc/self/ns/pid")
    namespace = int(link[link.index("[") + 1 : -1])
    folders = {
        "dead": tmp_path / f"etcd-discovery-ca-{namespace}-{dead}-abc",
        "alive": tmp_path / f"etcd-discovery-ca-{namespace}-{os.getpid()}-abc",
        "elsewhere": tmp_path / f"etcd-discovery-ca-{namespace + 1}-{dead}-abc",
        "old": tmp_path / "etcd-discovery-ca-abc",
    }
    for folder in folders.values():
        folder.mkdir()
    assert sweep_stale(tmp_path) == [folders["dead"]]
    assert {name for name, f in folders.items() if f.exists()} == {"alive", "elsewhere", "old"}


def test_the_command_removes_its_ca_folder_on_sighup(tmp_path: Path) -> None:
    env_file = tmp_path / "fake.env"
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest_etcd_discovery", "--port", "0", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmp_path)),
    )
    assert child.stdout is not None
    assert child.stdout.readline().startswith("http://127.0.0.1:")
    folders = [p for p in tmp_path.iterdir() if p.name.startswith("etcd-discovery-ca-")]
    assert len(folders) == 1 and f"-{child.pid}-" in folders[0].name
    child.send_signal(signal.SIGHUP)
    assert child.wait(timeout=60) == 0  # a clean stop
    assert not folders[0].exists()


def test_the_ini_beyond_loopback_warns_and_the_front_relays_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\netcd_discovery_listen_host = 0.0.0.0\n")
    pytester.makepyfile(
        """
        import socket

        def test_front(etcd_discovery):
            front = etcd_discovery.front
            # Reached through loopback; the fake's own plain port stands for another host.
            with socket.create_connection(("127.0.0.1", front.port), timeout=30) as raw:
                target = f"127.0.0.1:{front.server.port}"
                raw.sendall(f"CONNECT {target} HTTP/1.1\\r\\n\\r\\n".encode())
                assert raw.recv(4096).startswith(b"HTTP/1.1 403 Forbidden")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*etcd_discovery_listen_host = 0.0.0.0 is beyond loopback*"])


def test_a_pytest_run_stopped_by_sigterm_removes_its_ca_folder(tmp_path: Path) -> None:
    (tmp_path / "test_held.py").write_text(
        textwrap.dedent(
            """
            import threading

            def test_held(etcd_discovery):
                print("CA", etcd_discovery.front.ca.directory, flush=True)
                threading.Event().wait(600)  # until the SIGTERM
            """
        )
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", "test_held.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmp_path)),
    )
    assert child.stdout is not None
    folder = None
    for line in child.stdout:
        if "CA " in line:
            folder = Path(line.split("CA ", 1)[1].strip())
            break
    assert folder is not None and folder.is_dir()
    child.send_signal(signal.SIGTERM)
    child.stdout.read()
    assert child.wait(timeout=60) == -signal.SIGTERM
    assert not folder.exists()
