"""Request checks etcd's gRPC layer makes before a request reaches the store
(``v3rpc/key.go``): empty keys, too many operations, duplicate keys in a Txn."""

from __future__ import annotations

from typing import Any

from . import errors

__all__ = ["MAX_TXN_OPS", "check_delete", "check_put", "check_range", "check_txn"]

#: etcd's ``--max-txn-ops`` default.
MAX_TXN_OPS = 128


def check_range(req: Any) -> None:
    if not req.key:
        raise errors.empty_key()


def check_put(req: Any) -> None:
    if not req.key:
        raise errors.empty_key()
    if req.ignore_value and req.value:
        raise errors.value_provided()
    if req.ignore_lease and req.lease:
        raise errors.lease_provided()


def check_delete(req: Any) -> None:
    if not req.key:
        raise errors.empty_key()


def check_txn(req: Any, max_ops: int = MAX_TXN_OPS) -> None:
    """``checkTxnRequest`` and then ``checkIntervals``, in etcd's order."""
    _check_txn(req, max_ops)
    _intervals(list(req.success))  # puts of the two branches may overlap each other
    _intervals(list(req.failure))


def _check_txn(req: Any, max_ops: int) -> None:
    count = max(len(req.compare), len(req.success), len(req.failure))
    if count > max_ops:
        raise errors.too_many_ops()
    for compare in req.compare:
        if not compare.key:
            raise errors.empty_key()
    for op in (*req.success, *req.failure):
        _check_op(op, max_ops - count)


def _check_op(op: Any, max_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn(op.request_txn, max_ops)
    else:  # an empty RequestOp
        raise errors.key_not_found()


_Interval = tuple[bytes, bytes | None]


def _hits(intervals: list[_Interval], key: bytes) -> bool:
    for start, end in intervals:
        if end is None:
            if key == start:
                return True
        elif start <= key < end:
            return True
    return False


def _intervals(ops: list[Any]) -> tuple[set[bytes], list[_Interval]]:
    """etcd's ``checkIntervals``: no key put twice, nor put and deleted, on one path."""
    dels: list[_Interval] = []
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            # Taken literally: etcd does not read "\x00" as "to the end" here.
            end = d.range_end or None
            dels.append((d.key, end))
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = _intervals(list(op.request_txn.success))
        puts_else, dels_else = _intervals(list(op.request_txn.failure))
        for key in puts_then:
            if key in puts or _hits(dels, key):
                raise errors.duplicate_key()
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or _hits(dels, key):
                raise errors.duplicate_key()
            puts.add(key)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        key = op.request_put.key
        if key in puts or _hits(dels, key):
            raise errors.duplicate_key()
        puts.add(key)
    return puts, dels
