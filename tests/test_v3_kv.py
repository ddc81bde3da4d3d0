"""The v3 KV service (Range, Put, DeleteRange, Txn, Compact) against a real etcd 3.4:
the same requests to both, the same answers apart from ids and a revision offset; bad
input refused with etcd's gRPC status and message."""

from __future__ import annotations

from typing import Any

import pytest
from v3util import Side, lockstep

from pytest_etcd_discovery._v3.messages import MESSAGES as M

#: The fixtures: real_etcd, fake_server, side (each in turn), sides (both at once).
pytest_plugins = ["v3fixtures"]

INVALID = "INVALID_ARGUMENT"
OUT_OF_RANGE = "OUT_OF_RANGE"


def put(key: bytes, value: bytes = b"", **fields: Any) -> Any:
    return M["RequestOp"](request_put=M["PutRequest"](key=key, value=value, **fields))


def get(key: bytes, **fields: Any) -> Any:
    return M["RequestOp"](request_range=M["RangeRequest"](key=key, **fields))


def delete(key: bytes, **fields: Any) -> Any:
    return M["RequestOp"](request_delete_range=M["DeleteRangeRequest"](key=key, **fields))


def cmp(key: bytes, target: str, result: str, **value: Any) -> Any:
    compare = M["Compare"]
    return compare(
        key=key,
        target=compare.CompareTarget.Value(target),
        result=compare.CompareResult.Value(result),
        **value,
    )


def test_put_and_range_options(sides: tuple[Side, Side]) -> None:
    for key, value in [(b"/k/a", b"3"), (b"/k/b", b"1"), (b"/k/a", b"2"), (b"/k/c", b"2")]:
        lockstep(sides, "KV", "Put", key=key, value=value, prev_kv=True)
    ranges: list[dict[str, Any]] = [
        {"key": b"/k/a"},
        {"key": b"/k/", "range_end": b"/k0"},
        {"key": b"/k/", "range_end": b"/k0", "limit": 2},
        {"key": b"/k/", "range_end": b"/k0", "count_only": True},
        {"key": b"/k/", "range_end": b"/k0", "keys_only": True},
        {"key": b"/k/b", "range_end": b"\x00", "limit": 1},
        {"key": b"/k/", "range_end": b"/k0", "sort_order": 2},
        {"key": b"/k/", "range_end": b"/k0", "sort_target": 4},
        {"key": b"/k/", "range_end": b"/k0", "sort_target": 1, "sort_order": 2, "limit": 2},
        {"key": b"/k/", "range_end": b"/k0", "sort_target": 2, "sort_order": 1},
        {"key": b"/k/", "range_end": b"/k0", "min_mod_revision": lambda s: s.base + 3},
        {"key": b"/k/", "range_end": b"/k0", "max_create_revision": lambda s: s.base + 1},
        {"key": b"/k/a", "revision": lambda s: s.base + 1},
        {"key": b"/k/a", "revision": -4},
        {"key": b"/k/z", "range_end": b"/k/a"},  # an end before the key: nothing, no error
        {"key": b"/nothing"},
    ]
    for fields in ranges:
        lockstep(sides, "KV", "Range", **fields)


def test_put_flags_and_delete(sides: tuple[Side, Side]) -> None:
    lockstep(sides, "KV", "Put", key=b"/d/a", value=b"1")
    lockstep(sides, "KV", "Put", key=b"/d/a", ignore_value=True, prev_kv=True)
    lockstep(sides, "KV", "Put", key=b"/d/b", value=b"2")
    lockstep(sides, "KV", "Put", key=b"/d/c", value=b"3")
    lockstep(sides, "KV", "DeleteRange", key=b"/d/nothing")
    lockstep(sides, "KV", "DeleteRange", key=b"/d/a", prev_kv=True)
    lockstep(sides, "KV", "DeleteRange", key=b"/d/", range_end=b"/d0", prev_kv=True)
    lockstep(sides, "KV", "Range", key=b"/d/", range_end=b"/d0")
    lockstep(sides, "KV", "Put", key=b"/d/a", value=b"again")  # a new generation
    lockstep(sides, "KV", "Range", key=b"/d/a", revision=lambda s: s.base + 2)


def test_txn_compares_branches_and_nesting(sides: tuple[Side, Side]) -> None:
    lockstep(sides, "KV", "Put", key=b"/x/a", value=b"1")
    compares = [
        [cmp(b"/x/a", "VERSION", "EQUAL", version=1)],
        [cmp(b"/x/a", "VALUE", "GREATER", value=b"0")],
        [cmp(b"/x/missing", "CREATE", "EQUAL", create_revision=0)],
        [cmp(b"/x/missing", "VALUE", "NOT_EQUAL", value=b"x")],  # a missing key's value: false
        [cmp(b"/x/a", "MOD", "LESS", mod_revision=1)],
        [cmp(b"/x/", "VERSION", "GREATER", version=0, range_end=b"/x0")],
        [cmp(b"/x/a", "LEASE", "EQUAL", lease=0)],
    ]
    for compare in compares:
        lockstep(
            sides,
            "KV",
            "Txn",
            compare=compare,
            success=[put(b"/x/ok", b"y"), get(b"/x/ok"), get(b"/x/a")],
            failure=[get(b"/x/", range_end=b"/x0", count_only=True), delete(b"/x/ok")],
        )
    nested = M["TxnRequest"](
        compare=[cmp(b"/x/a", "VERSION", "EQUAL", version=1)],
        success=[put(b"/x/inner", b"1"), get(b"/x/", range_end=b"/x0")],
    )
    lockstep(
        sides,
        "KV",
        "Txn",
        success=[
            delete(b"/x/ok", prev_kv=True),
            M["RequestOp"](request_txn=nested),
            get(b"/x/inner"),
        ],
    )
    lockstep(sides, "KV", "Txn", success=[delete(b"/x/nope"), get(b"/x/a")])  # no change
    lockstep(sides, "KV", "Txn")


@pytest.mark.parametrize(
    ("method", "fields", "code", "message"),
    [
        ("Put", {"key": b""}, INVALID, "etcdserver: key is not provided"),
        ("Range", {"key": b""}, INVALID, "etcdserver: key is not provided"),
        ("DeleteRange", {"key": b""}, INVALID, "etcdserver: key is not provided"),
        ("Put", {"key": b"/e/none", "ignore_value": True}, INVALID, "etcdserver: key not found"),
        (
            "Put",
            {"key": b"/e", "value": b"v", "ignore_value": True},
            INVALID,
            "etcdserver: value is provided",
        ),
        (
            "Put",
            {"key": b"/e", "lease": 5, "ignore_lease": True},
            INVALID,
            "etcdserver: lease is provided",
        ),
        ("Put", {"key": b"/e", "lease": 5}, "NOT_FOUND", "etcdserver: requested lease not found"),
        (
            "Range",
            {"key": b"/e", "revision": 10**9},
            OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            "Compact",
            {"revision": 10**9},
            OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            "Txn",
            {"success": [get(b"/e")] * 129},
            INVALID,
            "etcdserver: too many operations in txn request",
        ),
        (
            "Txn",
            {"compare": [cmp(b"", "VERSION", "EQUAL")]},
            INVALID,
            "etcdserver: key is not provided",
        ),
        ("Txn", {"success": [M["RequestOp"]()]}, INVALID, "etcdserver: key not found"),
        (
            "Txn",
            {"success": [put(b"/e"), put(b"/e")]},
            INVALID,
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "Txn",
            {"success": [delete(b"/e", range_end=b"/f"), put(b"/e/x")]},
            INVALID,
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "Txn",
            {"success": [get(b"/e", revision=10**9)]},
            OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            "Txn",
            {"success": [get(b"/e", revision=-3)]},
            OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        (
            "Txn",
            {"success": [put(b"/e", lease=5)]},
            "NOT_FOUND",
            "etcdserver: requested lease not found",
        ),
        (
            "Put",
            {"key": b"/e", "value": b"x" * (1536 * 1024)},
            INVALID,
            "etcdserver: request is too large",
        ),
        (
            "Put",
            {"key": b"/e", "value": b"x" * (2 * 1024 * 1024)},
            "RESOURCE_EXHAUSTED",
            "grpc: received message larger than max (2097161 vs. 2097152)",
        ),
    ],
)
def test_bad_input(
    side: Side, method: str, fields: dict[str, Any], code: str, message: str
) -> None:
    assert side.call("KV", method, **fields) == ("error", code, message)


def test_a_txn_below_the_limit_and_a_large_read_only_txn_are_served(side: Side) -> None:
    ok = side.call("KV", "Txn", success=[get(b"/e")] * 128)
    assert ok["succeeded"] and len(ok["responses"]) == 128
    # Only a write goes through etcd's request-size check.
    assert side.call("KV", "Put", key=b"/e", value=b"x" * (1536 * 1024 - 64))["header"]


def test_compaction(sides: tuple[Side, Side]) -> None:
    for value in (b"1", b"2", b"3"):
        lockstep(sides, "KV", "Put", key=b"/c/a", value=value)
    lockstep(sides, "KV", "Put", key=b"/c/b", value=b"1")
    lockstep(sides, "KV", "DeleteRange", key=b"/c/b")
    lockstep(sides, "KV", "Compact", revision=lambda s: s.base + 2)
    for rev in (1, 2, 3, 5):
        at = lambda s, r=rev: s.base + r  # noqa: E731
        lockstep(sides, "KV", "Range", key=b"/c/", range_end=b"/c0", revision=at)
    lockstep(sides, "KV", "Compact", revision=lambda s: s.base + 2)  # again: compacted
    lockstep(sides, "KV", "Compact", revision=lambda s: s.base + 1)
    lockstep(sides, "KV", "Txn", success=[get(b"/c/a", revision=1)])


def test_maintenance_and_cluster(sides: tuple[Side, Side]) -> None:
    lockstep(sides, "Maintenance", "Alarm")  # no alarm on either
    lockstep(sides, "Maintenance", "Alarm", action=0, memberID=0, alarm=1)
    real, fake = (s.call("Maintenance", "Status") for s in sides)
    # a real member's own ids, raft history and database size (after this module's
    # 1.5 MiB puts) are its own
    for answer in (real, fake):
        for name in ("leader", "raftIndex", "raftAppliedIndex", "dbSize", "dbSizeInUse"):
            del answer[name]
    assert fake == real
    real, fake = (s.call("Cluster", "MemberList") for s in sides)
    assert [set(m) for m in fake["members"]] == [set(m) for m in real["members"]]
    assert fake["header"] == real["header"]
