"""Unit tests of the clocks and of expiry driven by them (frozen, advanced, running)."""

from __future__ import annotations

import threading
import time

import pytest
from unitutil import START, WAIT

from pytest_etcd_discovery._v2store.clock import Clock, ControllableClock, SystemClock
from pytest_etcd_discovery._v2store.errors import EtcdError
from pytest_etcd_discovery._v2store.events import Event
from pytest_etcd_discovery._v2store.store import Store


@pytest.fixture
def frozen(clock: ControllableClock) -> ControllableClock:
    """The conftest's frozen clock, under the name these tests read best with."""
    return clock


def real_time_passes(seconds: float) -> None:
    """Let wall-clock time pass: the thing under test is a clock following it."""
    time.sleep(seconds)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(ControllableClock(), Clock)


def test_system_clock_is_real_time() -> None:
    before = time.time_ns()
    now_ns = SystemClock().now_ns()
    after = time.time_ns()
    assert before <= now_ns <= after
    assert abs(SystemClock().now() - time.time()) < 1.0


def test_controllable_clock_follows_real_time_until_frozen() -> None:
    clock = ControllableClock()
    assert not clock.frozen
    assert abs(clock.now() - time.time()) < 1.0
    first = clock.now_ns()
    real_time_passes(0.05)
    assert clock.now_ns() - first >= 40_000_000


def test_start_sets_the_time() -> None:
    clock = ControllableClock(start=START, frozen=True)
    assert clock.frozen
    assert clock.now_ns() == START * 1_000_000_000
    assert clock.now() == START
    running = ControllableClock(start=START)
    assert START <= running.now() < START + 1


def test_freeze_and_unfreeze() -> None:
    clock = ControllableClock()
    clock.freeze()
    assert clock.frozen
    held = clock.now_ns()
    real_time_passes(0.05)
    assert clock.now_ns() == held
    clock.unfreeze()
    assert not clock.frozen
    # It runs on from where it stood, not from real time plus the frozen gap.
    resumed = clock.now_ns()
    assert held <= resumed < held + 40_000_000
    real_time_passes(0.05)
    assert clock.now_ns() - resumed >= 40_000_000


def test_freeze_and_unfreeze_are_idempotent(frozen: ControllableClock) -> None:
    frozen.freeze()
    assert frozen.now() == START
    clock = ControllableClock()
    clock.unfreeze()
    assert not clock.frozen


def test_advance_moves_a_frozen_clock_exactly(frozen: ControllableClock) -> None:
    frozen.advance(1.5)
    assert frozen.now_ns() == START * 1_000_000_000 + 1_500_000_000
    frozen.advance(0)
    assert frozen.now_ns() == START * 1_000_000_000 + 1_500_000_000
    frozen.advance(0.000000001)
    assert frozen.now_ns() == START * 1_000_000_000 + 1_500_000_001


def test_advance_moves_a_running_clock_ahead() -> None:
    clock = ControllableClock()
    before = clock.now()
    clock.advance(3600)
    assert 3600 <= clock.now() - before < 3601
    assert not clock.frozen


def test_negative_advance_is_rejected(frozen: ControllableClock) -> None:
    with pytest.raises(ValueError, match="backwards"):
        frozen.advance(-0.001)
    assert frozen.now() == START


def test_a_key_expires_at_exactly_its_instant(store: Store, frozen: ControllableClock) -> None:
    store.create("/k", "v", ttl=10)
    frozen.advance(9.999999999)
    node = store.get("/k").node
    assert node["ttl"] == 1
    assert store.index == 1
    frozen.advance(0.000000001)
    with pytest.raises(EtcdError) as err:
        store.get("/k")
    assert err.value.code == 100
    assert store.index == 2  # the expire event took an index


def test_advance_alone_fires_the_expiry_without_any_store_call(
    store: Store, frozen: ControllableClock
) -> None:
    store.create("/k", "v", ttl=10)
    frozen.advance(10)
    # No store operation ran since advance(): the index already shows the expire event.
    assert store.index == 2


def test_advance_wakes_a_watcher_blocked_in_another_thread(
    store: Store, frozen: ControllableClock
) -> None:
    store.create("/k", "v", ttl=604800)
    watcher = store.watch("/k")
    result: list[Event | None] = []
    waiting = threading.Event()

    def wait_for_event() -> None:
        waiting.set()
        result.append(watcher.get(timeout=30))

    thread = threading.Thread(target=wait_for_event)
    thread.start()
    assert waiting.wait(WAIT)
    started = time.monotonic()
    frozen.advance(604800)
    thread.join(timeout=WAIT)
    assert not thread.is_alive()
    assert time.monotonic() - started < WAIT
    assert len(result) == 1 and result[0] is not None
    assert (result[0].action, result[0].key, result[0].index) == ("expire", "/k", 2)


def test_a_frozen_clock_does_not_expire_keys_in_real_time(
    store: Store, frozen: ControllableClock
) -> None:
    store.create("/k", "v", ttl=1)
    watcher = store.watch("/k")
    # Bounded absence check: more than the TTL of real time passes, nothing fires.
    assert watcher.get(timeout=1.3) is None
    assert store.get("/k").node["ttl"] == 1


def test_unfreeze_lets_a_key_expire_by_itself(store: Store, frozen: ControllableClock) -> None:
    store.create("/k", "v", ttl=1)
    watcher = store.watch("/k")
    frozen.unfreeze()
    ev = watcher.get(timeout=WAIT)
    assert ev is not None and ev.action == "expire"


@pytest.mark.parametrize("clock_kind", ["system", "controllable"])
def test_running_clock_expires_a_key_by_itself_and_wakes_its_watcher(clock_kind: str) -> None:
    clock: Clock = SystemClock() if clock_kind == "system" else ControllableClock()
    store = Store(clock)
    try:
        store.create("/k", "v", ttl=1)
        watcher = store.watch("/k")
        started = time.monotonic()
        ev = watcher.get(timeout=WAIT)  # nothing else touches the store
        elapsed = time.monotonic() - started
        assert ev is not None
        assert (ev.action, ev.key, ev.index) == ("expire", "/k", 2)
        assert 0.5 < elapsed < WAIT
    finally:
        store.close()


def test_one_clock_drives_several_stores(frozen: ControllableClock) -> None:
    stores = [Store(frozen) for _ in range(3)]
    try:
        for s in stores:
            s.create("/k", "v", ttl=5)
        frozen.advance(5)
        assert [s.index for s in stores] == [2, 2, 2]
    finally:
        for s in stores:
            s.close()


def test_a_closed_store_no_longer_follows_the_clock(frozen: ControllableClock) -> None:
    store = Store(frozen)
    store.create("/k", "v", ttl=5)
    store.close()
    frozen.advance(10)  # must not raise nor touch the closed store
    assert store.index == 1


def test_close_stops_the_expiry_thread() -> None:
    store = Store(ControllableClock())
    store.create("/k", "v", ttl=100)
    reaper = store._reaper
    assert reaper is not None and reaper.is_alive()
    store.close()
    reaper.join(timeout=WAIT)
    assert not reaper.is_alive()
    assert store._reaper is None
