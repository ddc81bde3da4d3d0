"""A test certificate authority for the discovery hosts, made once per process and set of
hosts.

The fake answers ``https://discovery.etcd.io`` over real TLS.  Its certificate comes from
a throwaway CA (made with ``cryptography``) that exists only in this process and in the
files it writes to a private temporary directory:

- ``ca_cert_file``: the test CA alone (for ``NODE_EXTRA_CA_CERTS``);
- ``bundle_file``: the system's roots plus the test CA (for ``SSL_CERT_FILE`` and
  friends), so a child process still verifies every other host it talks to.

The CA is scoped to what it serves, so trusting it costs nothing beyond the fake:

- **name constraints** (critical): DNS names and IP addresses under the discovery hosts
  only, every other IP address excluded.  OpenSSL, Go and GnuTLS enforce them, so a
  context that trusts the test CA (the client cover adds it to a context that connects to
  a discovery host) still refuses a certificate from it for ``localhost`` or any other
  name;
- **a validity of hours** (:data:`LIFETIME` from an hour before it was made);
- **path length 0** (it can sign no other CA) and the leaf's extended key usage is
  server authentication alone.

The keys never touch disk: the leaf's key reaches OpenSSL through a memory file.  The
files go when the process ends, also on SIGTERM or SIGHUP where no other handler is
installed; a process killed outright (SIGKILL) leaves its folder, which the next start
sweeps (the folder's name carries the PID that owns it).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import os
import re
import shutil
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["LIFETIME", "TestCA", "session_ca", "sweep_stale", "system_roots_file"]

#: How long the CA and its certificates are valid after they are made.  A fake that
#: runs longer than this (the standalone command for a day) must be restarted.
LIFETIME = datetime.timedelta(hours=24)
#: How far back the validity starts: a child's clock a little behind still verifies.
_BACKDATE = datetime.timedelta(hours=1)
#: The folder name: prefix, PID namespace, PID (what :func:`sweep_stale` reads).
_PREFIX = "etcd-discovery-ca-"
_FOLDER = re.compile(rf"{_PREFIX}(\d+)-(\d+)-")


def system_roots_file() -> Path | None:
    """The file of trusted roots OpenSSL uses here, or certifi's when there is none."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    try:
        import certifi  # requests depends on it, so it is nearly always there
    except ImportError:  # pragma: no cover - requests is a dependency
        return None
    return Path(certifi.where())


def _now() -> datetime.datetime:
    # The real wall clock, as OpenSSL reads it: freezegun patches time.time() and
    # datetime, not clock_gettime(), and a CA made in a frozen test must still verify.
    seconds = time.clock_gettime(time.CLOCK_REALTIME)
    return datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        seconds=int(seconds)
    )


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _pid_namespace() -> int:
    """This process's PID namespace (0 where there is none to read): a PID means a
    process only within its namespace, and containers may share a temporary folder."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return 0
    match = re.search(r"\[(\d+)\]", link)
    return int(match[1]) if match else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_stale(parent: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the CA folders in ``parent`` (the temporary directory) left by processes of
    this user and PID namespace that are gone (killed outright); returns what it removed."""
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    namespace, uid = _pid_namespace(), os.getuid()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _FOLDER.match(entry.name)
        if match is None or int(match[1]) != namespace or _alive(int(match[2])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False) and entry.stat().st_uid == uid:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    return removed


class TestCA:
    """A test CA scoped to ``names`` that issues the server certificate for them.

    :param names: the discovery host names (or IP addresses) it may sign for.
    :param directory: where to write the PEM files; a private temporary directory (removed
        by :meth:`close`) when None.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self, names: Iterable[str], directory: str | os.PathLike[str] | None = None
    ) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.names = frozenset(n.lower().rstrip(".") for n in names)
        if not self.names:
            raise ValueError("a test CA needs at least one host name")
        self._own_dir = directory is None
        self.not_before = _now() - _BACKDATE
        self.not_after = self.not_before + _BACKDATE + LIFETIME
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pytest-etcd-discovery"),
                x509.NameAttribute(NameOID.COMMON_NAME, "pytest-etcd-discovery test CA"),
            ]
        )
        ips = [ip for ip in map(_ip, self.names) if ip is not None]
        dns = sorted(n for n in self.names if _ip(n) is None)
        permitted: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        permitted += [x509.IPAddress(ipaddress.ip_network(ip)) for ip in ips]
        # A type with no permitted subtree is unconstrained (RFC 5280): exclude every IP
        # address when no discovery host is one, and keep DNS to a reserved name when
        # every discovery host is an IP address.
        excluded: list[x509.GeneralName] | None = None
        if not ips:
            excluded = [
                x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
                x509.IPAddress(ipaddress.ip_network("::/0")),
            ]
        if not dns:
            permitted.append(x509.DNSName("invalid"))  # RFC 6761: never resolves
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.NameConstraints(permitted, excluded), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        self._key = key
        self._ski = ski
        self._serialization = serialization
        #: The CA certificate in PEM form (what a client must trust).
        self.ca_pem: str = self._ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self.directory = Path(
            directory or tempfile.mkdtemp(prefix=f"{_PREFIX}{_pid_namespace()}-{os.getpid()}-")
        )
        self.ca_cert_file = self.directory / "test-ca.pem"
        self.ca_cert_file.write_text(self.ca_pem)
        roots = system_roots_file()
        system = roots.read_text(encoding="utf-8", errors="replace") if roots else ""
        self.bundle_file = self.directory / "ca-bundle.pem"
        # System roots first, the test CA last: both verify, each for its own hosts.
        self.bundle_file.write_text(f"{system.rstrip()}\n{self.ca_pem}" if system else self.ca_pem)
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    @property
    def certificate(self) -> Any:
        """The CA certificate (a ``cryptography`` ``x509.Certificate``)."""
        return self._ca_cert

    def issue(self, *hostnames: str) -> tuple[bytes, bytes]:
        """A server certificate for ``hostnames`` signed by this CA: (certificate PEM,
        private key PEM).  Any names: the CA's constraints decide whether clients take it."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ip) if (ip := _ip(h)) is not None else x509.DNSName(h) for h in hostnames
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pytest-etcd-discovery")])
            )
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        enc = self._serialization
        key_pem = key.private_bytes(enc.Encoding.PEM, enc.PrivateFormat.PKCS8, enc.NoEncryption())
        return cert.public_bytes(enc.Encoding.PEM), key_pem

    def server_context(self, hostnames: Iterable[str]) -> ssl.SSLContext:
        """A server-side context whose certificate names every host in ``hostnames``.

        One certificate with all names as SANs: no SNI callback to get wrong.  Made once
        per set of names.
        """
        names = tuple(sorted({h.lower().rstrip(".") for h in hostnames}))
        with self._lock:
            context = self._contexts.get(names)
            if context is None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                # HTTP/1.1 only: the live server speaks nothing else.
                context.set_alpn_protocols(["http/1.1"])
                cert_pem, key_pem = self.issue(*names)
                load_cert_chain(context, cert_pem, key_pem)
                self._contexts[names] = context
            return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the system roots and the test CA."""
        return ssl.create_default_context(cafile=str(self.bundle_file))

    def trust(self, context: ssl.SSLContext) -> None:
        """Add the test CA to ``context``'s trusted roots (documented ``cadata`` form)."""
        context.load_verify_locations(cadata=self.ca_pem)

    def close(self) -> None:
        """Remove the files (a private directory goes whole)."""
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            for path in (self.ca_cert_file, self.bundle_file):
                path.unlink(missing_ok=True)


def load_cert_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``context.load_cert_chain`` from memory: ``ssl`` reads only files, so the key goes
    through an anonymous memory file (Linux), or a private temporary file elsewhere."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("etcd-discovery-leaf", os.MFD_CLOEXEC)
        try:
            os.write(fd, cert_pem + key_pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as private:  # pragma: no cover - not Linux
        path = Path(private) / "leaf.pem"
        path.write_bytes(cert_pem + key_pem)
        context.load_cert_chain(str(path))


_sessions: dict[frozenset[str], TestCA] = {}
_session_lock = threading.Lock()
_handled: dict[int, Any] = {}


def _close_sessions() -> None:
    with _session_lock:
        cas = list(_sessions.values())
    for ca in cas:
        ca.close()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Remove the CA folders, then die of the signal as the default action would."""
    _close_sessions()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_cleanup() -> None:
    """Clean up on SIGTERM and SIGHUP, but only where nobody handles them (their default
    kills the process without atexit); a handler of pytest's or the command's stays, and
    ends the process through atexit, or keeps it."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works in the main thread only; atexit still cleans up
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum in _handled:
            continue
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_signal)
                _handled[signum] = _on_signal


def session_ca(names: Iterable[str]) -> TestCA:
    """The process's test CA for the discovery host ``names``, made on first use (after a
    sweep of stale folders) and removed at exit.

    One per process and set of names: a pytest session (each xdist worker is its own
    process), a ``fake_discovery()`` user or the ``etcd-discovery-fake`` command.
    """
    key = frozenset(n.lower().rstrip(".") for n in names)
    with _session_lock:
        ca = _sessions.get(key)
        if ca is None:
            if not _sessions:
                sweep_stale()
                atexit.register(_close_sessions)
            ca = _sessions[key] = TestCA(key)
    _install_signal_cleanup()
    return ca
