"""A test certificate authority for the discovery hosts, made once per process.

The fake answers ``https://discovery.etcd.io`` over real TLS.  Its certificate comes from
a throwaway CA (made with ``trustme``) that exists only in this process and in the files
it writes to a private temporary directory:

- ``ca_cert_file``: the test CA alone (for ``NODE_EXTRA_CA_CERTS``);
- ``bundle_file``: the system's roots plus the test CA (for ``SSL_CERT_FILE`` and
  friends), so a child process still verifies every other host it talks to.

The CA's private key never leaves memory; the files go when the process ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

__all__ = ["TestCA", "session_ca", "system_roots_file"]


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


class TestCA:
    """A per-process test CA that issues one server certificate for the discovery hosts.

    :param directory: where to write the PEM files; a private temporary directory (removed
        by :meth:`close`) when None.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise RuntimeError(
                "the fake's TLS front needs the 'trustme' package: pip install trustme"
            ) from exc
        self._ca: trustme.CA = trustme.CA(organization_name="pytest-etcd-discovery test CA")
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="etcd-discovery-ca-"))
        #: The CA certificate in PEM form (what a client must trust).
        self.ca_pem: str = self._ca.cert_pem.bytes().decode("ascii")
        self.ca_cert_file = self.directory / "test-ca.pem"
        self.ca_cert_file.write_text(self.ca_pem)
        roots = system_roots_file()
        system = roots.read_text(encoding="utf-8", errors="replace") if roots else ""
        self.bundle_file = self.directory / "ca-bundle.pem"
        # System roots first, the test CA last: both verify, each for its own hosts.
        self.bundle_file.write_text(f"{system.rstrip()}\n{self.ca_pem}" if system else self.ca_pem)
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._lock = threading.Lock()

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
                self._ca.issue_cert(*names).configure_cert(context)
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


_session: TestCA | None = None
_session_lock = threading.Lock()


def session_ca() -> TestCA:
    """The process's test CA, made on first use and removed at exit.

    One per process: a pytest session (each xdist worker is its own process), a
    ``fake_discovery()`` user or the ``etcd-discovery-fake`` command.
    """
    global _session
    with _session_lock:
        if _session is None:
            _session = TestCA()
            atexit.register(_session.close)
        return _session
