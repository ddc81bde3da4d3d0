"""Plain records of the MVCC store: a key's value at a revision, and a change event.

They stay protobuf-free (the server converts them with :func:`kv_to_pb`); a tombstone is a
:class:`KV` with ``version == 0``, as etcd's own key index marks one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["DELETE", "KV", "PUT", "Event", "in_range", "kv_to_pb"]

PUT = 0
DELETE = 1


class KV(NamedTuple):
    """One revision of a key (``mvccpb.KeyValue``)."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes
    lease: int

    @property
    def tombstone(self) -> bool:
        return self.version == 0


class Event(NamedTuple):
    """A change (``mvccpb.Event``): ``prev`` is the key's value before it, if any."""

    type: int
    kv: KV
    prev: KV | None


def in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    """Whether ``key`` is in etcd's interval: ``end`` None is ``start`` alone, ``b""``
    (``"\\x00"`` on the wire) is every key from ``start`` on, else ``[start, end)``."""
    if end is None:
        return key == start
    if end == b"":
        return key >= start
    return start <= key < end


def kv_to_pb(kv: KV, cls: Any, *, keys_only: bool = False) -> Any:
    """``kv`` as a ``KeyValue`` message of class ``cls``."""
    return cls(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=b"" if keys_only else kv.value,
        lease=kv.lease,
    )
