"""The base of every error this package raises."""

from __future__ import annotations

__all__ = ["Error"]


class Error(Exception):
    """The base of every error pytest-etcd-discovery raises: ``except Error`` catches
    them all.  Each also keeps the built-in base its callers expect (``ValueError``,
    ``RuntimeError``, :class:`socket.gaierror` ...)."""
