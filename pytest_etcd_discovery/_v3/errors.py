"""The errors the etcd v3 API answers with: a gRPC status code and etcd's own message.

The store raises :class:`V3Error`; the server turns it into the gRPC status (by the code's
name, so this module needs no ``grpc``).  Messages are etcd 3.4's (``rpctypes``), with
the ``etcdserver: `` prefix its gRPC layer adds.
"""

from __future__ import annotations

from .._errors import Error

__all__ = ["V3Error"]


class V3Error(Error, Exception):
    """A request etcd refuses: ``code`` is a ``grpc.StatusCode`` name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"V3Error({self.code!r}, {self.message!r})"


def _err(code: str, message: str) -> V3Error:
    return V3Error(code, message)


def empty_key() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: key is not provided")


def key_not_found() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: key not found")


def value_provided() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: value is provided")


def lease_provided() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: lease is provided")


def too_many_ops() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: too many operations in txn request")


def duplicate_key() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request")


def compacted() -> V3Error:
    return _err("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")


def future_rev() -> V3Error:
    return _err("OUT_OF_RANGE", "etcdserver: mvcc: required revision is a future revision")


def lease_not_found() -> V3Error:
    return _err("NOT_FOUND", "etcdserver: requested lease not found")


def lease_exists() -> V3Error:
    return _err("FAILED_PRECONDITION", "etcdserver: lease already exists")


def lease_ttl_too_large() -> V3Error:
    return _err("OUT_OF_RANGE", "etcdserver: too large lease TTL")


def request_too_large() -> V3Error:
    return _err("INVALID_ARGUMENT", "etcdserver: request is too large")
