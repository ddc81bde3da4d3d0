"""Differential fuzzing: random operation sequences against the real stack and the fake,
side by side, compared after every step (the way fakeredis tests itself).

A hypothesis ``RuleBasedStateMachine`` drives PUTs with random preconditions, TTLs,
``dir`` and ``refresh``, GETs (recursive, sorted), DELETEs (plain, dir, recursive,
compare-and-delete), watches with past indexes, and odd methods, on one fresh token per
example.  Each operation goes to both sides through the conformance harness's
:class:`~conformance_harness.Recorder` (its normalisation: token names, indexes relative
to the token, ``~ttl``, ``<EXP>``, key-sorted listings unless ``sorted=true``), and the
two normalised replies must be equal.

Bounded: ``max_examples`` x ``stateful_step_count`` operations, every request with the
harness's 10 s timeout; watches only ask for indexes that already have a matching event,
so none blocks.  TTLs are minutes long (real etcd expires keys on a 500 ms SYNC tick,
the fake on the exact instant: a sub-second race this fuzzer does not look at).
"""

from __future__ import annotations

from typing import Any

import pytest
from conformance_harness import Recorder, Side, diff, side_for
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

KEYS = ["m1", "m2", "_state", "d"]
VALUES = ["a", "b", "http://10.0.0.1:2380", ""]
TTLS = ["300", "600", ""]
#: How many examples and steps (the closing report quotes these numbers).
MAX_EXAMPLES = 40
STEPS = 25
STATS = {"examples": 0, "operations": 0, "divergences": 0}
#: True one time in five: dir/refresh make most random PUTs fail, so keep them rare.
RARELY = st.integers(0, 4).map(lambda n: n == 0)


class Idx:
    """An index relative to the token (``I+n``), made absolute per side."""

    def __init__(self, offset: int) -> None:
        self.offset = offset


def _resolve(rec: Recorder, params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(rec.idx(v.offset)) if isinstance(v, Idx) else v) for k, v in params.items()}


class DifferentialMachine(RuleBasedStateMachine):
    sides: tuple[Side, Side] | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.sides is not None
        self.recs = (Recorder(self.sides[0]), Recorder(self.sides[1]))
        self.token = ("", "")
        #: offset (from the token's index) of the last event per key, visible ones
        self.last_event: dict[str, int] = {}
        self.top = 0  # highest offset written so far
        self.values: dict[str, str] = {}  # last value written per key (for prevValue)

    # -- plumbing ----------------------------------------------------------------------

    def both(
        self,
        method: str,
        key: str | None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> list[Any]:
        """Send the same operation to both sides; compare the normalised steps."""
        replies = []
        for rec, token in zip(self.recs, self.token, strict=True):
            path = f"/{token}" + (f"/{key}" if key else "")
            replies.append(rec.request(method, path, params=_resolve(rec, params or {}), data=data))
        STATS["operations"] += 1
        real_rec, fake_rec = self.recs
        if real_rec.steps[-1] != fake_rec.steps[-1]:
            STATS["divergences"] += 1
            raise AssertionError(
                "fake and real differ:\n"
                + diff("real", real_rec.steps[-1:], "fake", fake_rec.steps[-1:])
            )
        return replies

    def learn(self, key: str, reply: Any, *, in_history: bool = True) -> None:
        """Remember where the last event of ``key`` is (for watches that must not block)."""
        if not 200 <= reply.status < 300:
            return
        try:
            body = reply.json()
        except ValueError:
            return
        if body.get("action") == "get" or "node" not in body:
            return
        offset = int(body["node"]["modifiedIndex"]) - self.recs[0].anchor
        self.top = max(self.top, offset)
        if in_history:
            self.last_event[key] = offset
        self.values[key] = str(body["node"].get("value", ""))

    # -- rules -------------------------------------------------------------------------

    @initialize(size=st.sampled_from([1, 3, 5]))
    def new_token(self, size: int) -> None:
        self.token = (self.recs[0].new_token(size), self.recs[1].new_token(size))
        STATS["examples"] += 1

    @rule(
        key=st.sampled_from(KEYS),
        value=st.sampled_from(VALUES),
        prev_exist=st.sampled_from([None, "true", "false"]),
        prev_value=st.sampled_from([None, *VALUES[:3]]),
        prev_index=st.one_of(st.none(), st.integers(0, 12)),
        ttl=st.one_of(st.none(), st.sampled_from(TTLS)),
        is_dir=RARELY,
        refresh=RARELY,
        in_body=st.booleans(),
    )
    def put(
        self,
        key: str,
        value: str,
        prev_exist: str | None,
        prev_value: str | None,
        prev_index: int | None,
        ttl: str | None,
        is_dir: bool,
        refresh: bool,
        in_body: bool,
    ) -> None:
        params: dict[str, Any] = {}
        if prev_exist is not None:
            params["prevExist"] = prev_exist
        if prev_value is not None:
            params["prevValue"] = prev_value
        if prev_index is not None:
            params["prevIndex"] = Idx(prev_index) if prev_index else "0"
        if ttl is not None:
            params["ttl"] = ttl
        if is_dir:
            params["dir"] = "true"
        if refresh:
            params["refresh"] = "true"
        data = None
        if is_dir or refresh:
            pass  # no value: a directory has none, a refresh must not send one
        elif in_body:
            data = {"value": value}
        else:
            params["value"] = value
        real, _ = self.both("PUT", key, params, data)
        # A refresh is not in the watch history: a watch from its index would block.
        self.learn(key, real, in_history=not refresh)

    # Common, mostly successful writes (the random PUT above mostly fails a precondition).

    @rule(
        key=st.sampled_from(KEYS[:3]),
        value=st.sampled_from(VALUES),
        ttl=st.sampled_from([None, "300"]),
        mode=st.sampled_from(["set", "create", "update"]),
    )
    def write(self, key: str, value: str, ttl: str | None, mode: str) -> None:
        params: dict[str, Any] = {"value": value}
        if ttl is not None:
            params["ttl"] = ttl
        if mode != "set":
            params["prevExist"] = "false" if mode == "create" else "true"
        real, _ = self.both("PUT", key, params)
        self.learn(key, real)

    @precondition(lambda self: bool(self.last_event))
    @rule(data=st.data(), value=st.sampled_from(VALUES[:3]), by_value=st.booleans())
    def compare_and_swap_current(self, data: st.DataObject, value: str, by_value: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.last_event)), label="key")
        params: dict[str, Any] = {"value": value, "prevIndex": Idx(self.last_event[key])}
        if by_value and key in self.values:
            params = {"value": value, "prevValue": self.values[key] or "x"}
        real, _ = self.both("PUT", key, params)
        self.learn(key, real)

    @precondition(lambda self: self.values.get("d") != "<dir>")
    @rule(ttl=st.sampled_from([None, "300"]))
    def make_dir(self, ttl: str | None) -> None:
        params = {"dir": "true", **({"ttl": ttl} if ttl else {})}
        real, _ = self.both("PUT", "d", params)
        self.learn("d", real)
        if 200 <= real.status < 300:
            self.values["d"] = "<dir>"

    @rule(
        key=st.sampled_from([None, *KEYS, "_config", "_config/size", "nope"]),
        recursive=st.booleans(),
        sort=st.booleans(),
    )
    def get(self, key: str | None, recursive: bool, sort: bool) -> None:
        params = {}
        if recursive:
            params["recursive"] = "true"
        if sort:
            params["sorted"] = "true"
        self.both("GET", key, params)

    @rule(
        key=st.sampled_from(KEYS),
        how=st.sampled_from(["plain", "dir", "recursive", "prevValue", "prevIndex"]),
        value=st.sampled_from(VALUES[:3]),
        offset=st.integers(1, 12),
    )
    def delete(self, key: str, how: str, value: str, offset: int) -> None:
        params: dict[str, Any] = {
            "plain": {},
            "dir": {"dir": "true"},
            "recursive": {"recursive": "true"},
            "prevValue": {"prevValue": value},
            "prevIndex": {"prevIndex": Idx(offset)},
        }[how]
        real, _ = self.both("DELETE", key, params)
        self.learn(key, real)
        if 200 <= real.status < 300:
            self.values.pop(key, None)

    @precondition(lambda self: any(not k.startswith("_") for k in self.last_event))
    @rule(data=st.data())
    def watch_token_from_the_past(self, data: st.DataObject) -> None:
        visible = [o for k, o in self.last_event.items() if not k.startswith("_")]
        offset = data.draw(st.integers(1, max(visible)), label="waitIndex offset")
        self.both("GET", None, {"wait": "true", "recursive": "true", "waitIndex": Idx(offset)})

    @precondition(lambda self: bool(self.last_event))
    @rule(data=st.data())
    def watch_key_from_the_past(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.last_event)), label="key")
        offset = data.draw(st.integers(1, self.last_event[key]), label="waitIndex offset")
        self.both("GET", key, {"wait": "true", "waitIndex": Idx(offset)})

    @rule(method=st.sampled_from(["POST", "PATCH", "HEAD", "OPTIONS"]), key=st.sampled_from(KEYS))
    def odd_method(self, method: str, key: str) -> None:
        self.both(method, key)

    @invariant()
    def same_length(self) -> None:
        assert len(self.recs[0].steps) == len(self.recs[1].steps)

    def teardown(self) -> None:
        for rec in self.recs:
            rec.close()


@pytest.mark.real
def test_differential_fuzz(request: pytest.FixtureRequest) -> None:
    """Random sequences, real vs fake, compared step by step (see the module doc)."""
    DifferentialMachine.sides = (side_for(request, "real"), side_for(request, "fake"))
    try:
        run_state_machine_as_test(
            DifferentialMachine,
            settings=settings(
                max_examples=MAX_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        DifferentialMachine.sides = None
        print(
            f"differential fuzz: {STATS['examples']} examples, {STATS['operations']} "
            f"operations compared, {STATS['divergences']} divergent"
        )


def test_the_comparison_catches_a_divergence() -> None:
    """The machine is not vacuous: two fakes, one answering 503 to member requests,
    must be told apart (no real binaries needed)."""
    from hypothesis import Phase

    from pytest_etcd_discovery._service.faults import FaultPlan
    from pytest_etcd_discovery._transport.server import DiscoveryServer

    with DiscoveryServer() as good, DiscoveryServer() as bad:
        FaultPlan.of(bad.app).fail(503, route="machine")
        DifferentialMachine.sides = (
            Side("real", good.url, lambda: 0),
            Side("fake", bad.url, lambda: 0),
        )
        before = dict(STATS)
        try:
            with pytest.raises(AssertionError, match="fake and real differ"):
                run_state_machine_as_test(
                    DifferentialMachine,
                    settings=settings(
                        max_examples=10,
                        stateful_step_count=10,
                        deadline=None,
                        database=None,
                        phases=[Phase.generate],
                    ),
                )
        finally:
            DifferentialMachine.sides = None
            STATS.update(before)  # keep the real comparison's numbers clean
