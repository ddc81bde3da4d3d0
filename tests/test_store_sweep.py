"""A key written already expired (``ttl=0``) lives until etcd's next expiry sweep.

etcd 3.4 removes expired v2 keys only when its leader applies a SYNC, proposed every
500 ms (``SyncTicker``) while the store has TTL keys. A key whose instant has passed
when it is written therefore stays readable, its expiration in the past, until that
sweep; writes in between take the indexes before its ``expire`` event. The store
models the sweep on its own clock (every 500 ms from its start), so a frozen clock
shows it exactly. ``tests/conformance/test_conformance_ttl_zero.py`` checks the same
against the real etcd.
"""

from __future__ import annotations

from unitutil import WAIT

from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.node import format_expiration
from pytest_etcd_discovery._v2store.store import SWEEP_INTERVAL_NS, Store


def test_ttl_zero_key_stays_readable_with_an_expiration_in_the_past(
    store: Store, clock: ControllableClock
) -> None:
    written = store.set("/z", "v", ttl=0)
    expiration = format_expiration(clock.now_ns())
    assert written.node == {
        "key": "/z",
        "value": "v",
        "expiration": expiration,  # no "ttl": zero is left out
        "modifiedIndex": 1,
        "createdIndex": 1,
    }
    clock.advance(0.3)
    assert store.get("/z").node == written.node


def test_ttl_zero_key_expires_at_the_next_sweep_after_later_writes(
    store: Store, clock: ControllableClock
) -> None:
    store.set("/z", "v", ttl=0)  # 1
    watcher = store.watch("/z", since_index=2)
    store.set("/other", "x")  # 2: before the sweep
    clock.advance(SWEEP_INTERVAL_NS / 1e9 - 0.001)
    assert watcher.get(0.01) is None
    clock.advance(0.001)  # the sweep
    event = watcher.get(WAIT)
    assert event is not None
    assert event.action == "expire"
    assert event.node == {"key": "/z", "modifiedIndex": 3, "createdIndex": 1}
    assert "ttl" not in event.prev_node and "expiration" in event.prev_node  # type: ignore[operator]


def test_the_sweep_ticks_from_the_store_start(store: Store, clock: ControllableClock) -> None:
    clock.advance(0.3)
    store.set("/z", "v", ttl=0)  # 0.3 s in: the sweep at 0.5 s removes it
    clock.advance(0.19)
    assert store.get("/z").node["value"] == "v"
    clock.advance(0.01)
    assert store.get("/", recursive=True).node.get("nodes") is None


def test_keys_with_a_ttl_still_expire_at_their_instant(
    store: Store, clock: ControllableClock
) -> None:
    clock.advance(0.3)
    store.set("/k", "v", ttl=1)
    clock.advance(1)  # 1.3 s: not a sweep tick, gone all the same
    assert store.get("/", recursive=True).node.get("nodes") is None


def test_update_to_ttl_zero_waits_for_the_sweep_too(store: Store, clock: ControllableClock) -> None:
    store.set("/k", "v")
    store.update("/k", "w", ttl=0)
    assert store.get("/k").node["value"] == "w"
    clock.advance(0.5)
    assert store.get("/", recursive=True).node.get("nodes") is None
