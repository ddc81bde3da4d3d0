"""Seeded random request sequences sent to a real etcd 3.4 and the fake in lockstep: after
every request the two normalised answers (or errors) must be equal.

Keys come from a small set under the test's own prefix so requests collide; revisions are
drawn relative to the current one (past, present, future, compacted); Txns get random
compares and branches (duplicate keys included: both must refuse them alike).  The number
of steps per seed: ``ETCD_DISCOVERY_V3_RANDOM_STEPS`` (default 60).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from v3util import Side, lockstep, new_prefix

from pytest_etcd_discovery._v3.messages import MESSAGES as M

pytest_plugins = ["v3fixtures"]

STEPS = int(os.environ.get("ETCD_DISCOVERY_V3_RANDOM_STEPS", "60"))
NAMES = [b"a", b"b", b"ab", b"c/1", b"c/2"]


class Draw:
    def __init__(self, rnd: random.Random, prefix: bytes) -> None:
        self.rnd = rnd
        self.prefix = prefix
        self.current = 0  # the current revision, relative to the sides' bases

    def key(self) -> bytes:
        return self.prefix + self.rnd.choice(NAMES)

    def span(self) -> dict[str, Any]:
        """A key alone, a prefix, or a range (an empty one now and then)."""
        kind = self.rnd.choice(["key", "key", "prefix", "range", "all-from"])
        if kind == "key":
            return {"key": self.key()}
        if kind == "prefix":
            return {"key": self.prefix + b"c/", "range_end": self.prefix + b"c0"}
        if kind == "range":
            return {"key": self.key(), "range_end": self.key()}
        return {"key": self.key(), "range_end": self.prefix[:-1] + b"0"}

    def revision(self) -> Any:
        offset = self.rnd.choice([0, 0, 0, -1, -2, -4, 1, 3])
        if offset == 0:
            return 0
        rel = self.current + offset
        return lambda s: max(s.base + rel, 1)

    def range(self) -> dict[str, Any]:
        fields = self.span()
        if self.rnd.random() < 0.3:
            fields["revision"] = self.revision()
        for flag in ("count_only", "keys_only"):
            if self.rnd.random() < 0.15:
                fields[flag] = True
        if self.rnd.random() < 0.3:
            fields["limit"] = self.rnd.randint(1, 3)
        if self.rnd.random() < 0.3:
            fields["sort_order"] = self.rnd.randint(0, 2)
            fields["sort_target"] = self.rnd.randint(0, 4)
        return fields

    def put(self) -> dict[str, Any]:
        return {
            "key": self.key(),
            "value": self.rnd.choice([b"", b"x", b"y", b"zz"]),
            "prev_kv": self.rnd.random() < 0.5,
        }

    def delete(self) -> dict[str, Any]:
        return {**self.span(), "prev_kv": self.rnd.random() < 0.5}

    def compare(self) -> Any:
        target = self.rnd.randint(0, 3)
        value: dict[str, Any]
        if target == 3:
            value = {"value": self.rnd.choice([b"", b"x", b"y"])}
        else:
            name = ("version", "create_revision", "mod_revision")[target]
            value = {name: self.rnd.randint(0, 3)}  # small: absolute numbers are fine here
        return M["Compare"](key=self.key(), target=target, result=self.rnd.randint(0, 3), **value)

    def op(self, depth: int = 0) -> Any:
        kind = self.rnd.choice(["range", "put", "put", "delete"] + (["txn"] if depth < 1 else []))
        if kind == "range":
            fields = self.range()
            fields.pop("revision", None)  # relative revisions only at the top level
            return M["RequestOp"](request_range=M["RangeRequest"](**fields))
        if kind == "put":
            return M["RequestOp"](request_put=M["PutRequest"](**self.put()))
        if kind == "delete":
            return M["RequestOp"](request_delete_range=M["DeleteRangeRequest"](**self.delete()))
        return M["RequestOp"](request_txn=M["TxnRequest"](**self.txn(depth + 1)))

    def txn(self, depth: int = 0) -> dict[str, Any]:
        n = self.rnd.randint
        return {
            "compare": [self.compare() for _ in range(n(0, 2))],
            "success": [self.op(depth) for _ in range(n(0, 3))],
            "failure": [self.op(depth) for _ in range(n(0, 2))],
        }

    def request(self) -> tuple[str, dict[str, Any]]:
        kind = self.rnd.choices(
            ["Range", "Put", "DeleteRange", "Txn", "Compact"], weights=[4, 5, 2, 3, 1]
        )[0]
        if kind == "Range":
            return kind, self.range()
        if kind == "Put":
            return kind, self.put()
        if kind == "DeleteRange":
            return kind, self.delete()
        if kind == "Txn":
            return kind, self.txn()
        offset = self.rnd.choice([0, -1, -3, 2])
        return kind, {"revision": lambda s, o=offset: max(s.base + self.current + o, 1)}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_sequence(sides: tuple[Side, Side], seed: int) -> None:
    draw = Draw(random.Random(seed), new_prefix())
    for step in range(STEPS):
        method, fields = draw.request()
        answer = lockstep(sides, "KV", method, **fields)
        assert answer is not None, f"step {step}"
        if isinstance(answer, dict):
            rev = answer.get("header", {}).get("revision")
            if isinstance(rev, str):  # "R+n"
                draw.current = int(rev[1:])
