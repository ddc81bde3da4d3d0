"""The one base of this package's errors: :class:`Error`.

Kept in a module of its own, importing nothing, so that every layer (the store, the
service, the transports, the real binaries, the fixture's handle) can derive from it
without importing another.
"""

from __future__ import annotations

__all__ = ["Error"]


class Error(Exception):
    """The base of every error this package raises.

    ``except pytest_etcd_discovery.Error`` catches any of them. Each error keeps the
    standard base it had before (``ValueError``, ``RuntimeError``, ``ConnectionError``,
    :class:`socket.gaierror` ...), so code catching those is not affected.
    """
