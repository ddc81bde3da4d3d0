"""Unit tests of watches: which events a watcher sees, history scans, streams, release.

Each "does not see" case is made deterministic by a later write the watcher must
see instead: the first event it returns shows what it skipped.
"""

from __future__ import annotations

import threading
import time

import pytest
from unitutil import WAIT

from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.events import Event
from pytest_etcd_discovery._v2store.store import Store
from pytest_etcd_discovery._v2store.watchers import STREAM_BUFFER, Watcher, is_hidden


def first(watcher: Watcher) -> Event:
    event = watcher.get(timeout=WAIT)
    assert event is not None, "the watcher got no event"
    return event


def summary(event: Event) -> tuple[str, str, int]:
    return event.action, event.key, event.index


# -- which keys a watcher sees --------------------------------------------------------------


def test_a_watch_without_index_waits_for_the_next_event(store: Store) -> None:
    store.create("/k", "old")
    watcher = store.watch("/k")
    store.set("/k", "new")
    ev = first(watcher)
    assert summary(ev) == ("set", "/k", 2)
    assert ev.to_json()["prevNode"]["value"] == "old"


def test_non_recursive_watch_sees_its_exact_key_only(store: Store) -> None:
    store.create("/d", dir=True)
    on_key = store.watch("/k")
    on_dir = store.watch("/d")
    store.create("/k2", "prefix of the name, not the key")
    store.create("/k/under", "below the key")  # makes /k a directory
    store.create("/d/child", "below the dir")
    store.update("/d", ttl=100)  # the directory itself
    assert summary(first(on_dir)) == ("update", "/d", 5)
    store.delete("/k", recursive=True)
    assert summary(first(on_key)) == ("delete", "/k", 6)


def test_recursive_watch_sees_keys_below(store: Store) -> None:
    watcher = store.watch("/d", recursive=True)
    store.create("/dx/y", "sibling name")
    store.create("/d/a/b/c", "deep")
    assert summary(first(watcher)) == ("create", "/d/a/b/c", 2)


def test_recursive_watch_does_not_see_through_hidden_names(store: Store) -> None:
    watcher = store.watch("/t", recursive=True, stream=True)
    store.create("/t/_state", "started")
    store.create("/t/_config/size", "3")
    store.create("/t/sub/_x", "hidden deeper")
    store.create("/t/m1", "visible")
    assert summary(first(watcher)) == ("create", "/t/m1", 4)
    assert watcher.get(timeout=0) is None


def test_root_recursive_watch_skips_hidden_top_level_keys(store: Store) -> None:
    watcher = store.watch("/", recursive=True)
    store.create("/_hidden", "1")
    store.create("/shown", "2")
    assert summary(first(watcher)) == ("create", "/shown", 2)


def test_a_hidden_key_is_seen_by_a_watch_on_it_or_inside_it(store: Store) -> None:
    on_state = store.watch("/t/_state")
    inside = store.watch("/t/_config", recursive=True)
    store.create("/t/_state", "started")
    store.create("/t/_config/size", "3")
    assert summary(first(on_state)) == ("create", "/t/_state", 1)
    assert summary(first(inside)) == ("create", "/t/_config/size", 2)


def test_history_scan_returns_hidden_keys(store: Store) -> None:
    store.create("/t/_config/size", "3")
    store.create("/t/_state", "started")
    watcher = store.watch("/t", recursive=True, since_index=1)
    assert summary(first(watcher)) == ("create", "/t/_config/size", 1)


@pytest.mark.parametrize("how", ["delete", "expire"])
def test_removing_a_directory_wakes_non_recursive_watchers_below_it(
    store: Store, clock: ControllableClock, how: str
) -> None:
    store.create("/d", dir=True, ttl=10)
    store.create("/d/a/b", "v")
    below = store.watch("/d/a/b")
    middle = store.watch("/d/a")
    if how == "delete":
        store.delete("/d", recursive=True)
    else:
        clock.advance(10)
    for watcher in (below, middle):
        ev = first(watcher)
        assert summary(ev) == (how, "/d", 3)
        assert ev.node["dir"] is True


def test_history_scan_matches_a_directory_removal_for_keys_below(store: Store) -> None:
    store.create("/d/a/b", "v")
    store.create("/other", "x")
    store.delete("/d", recursive=True)
    watcher = store.watch("/d/a/b", since_index=2)
    assert summary(first(watcher)) == ("delete", "/d", 3)


def test_recursive_history_scan_does_not_match_a_sibling_prefix(store: Store) -> None:
    store.create("/dx/y", "sibling")
    watcher = store.watch("/d", recursive=True, since_index=1)
    store.create("/d/y", "mine")
    assert summary(first(watcher)) == ("create", "/d/y", 2)


def test_compare_and_delete_wakes_the_key_watcher(store: Store) -> None:
    store.create("/k", "a")
    watcher = store.watch("/k")
    store.compare_and_delete("/k", "a", 0)
    assert summary(first(watcher)) == ("compareAndDelete", "/k", 2)


# -- waitIndex ------------------------------------------------------------------------------


def test_past_index_returns_the_first_matching_event_at_once_as_a_stale_copy(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/k", "v1", ttl=10)
    store.create("/other", "x")
    store.set("/k", "v2")
    clock.advance(5)
    watcher = store.watch("/k", since_index=1)
    ev = watcher.get(timeout=0)  # already there: no waiting
    assert ev is not None
    assert summary(ev) == ("create", "/k", 1)
    assert ev.node["ttl"] == 10  # the cached event, ttl as it was then
    assert ev.etcd_index == 3  # stamped with today's index
    assert store.watcher_count == 0  # answered from history, never registered
    mid = store.watch("/k", since_index=2)
    assert summary(first(mid)) == ("set", "/k", 3)


def test_current_index_still_comes_from_history(store: Store) -> None:
    store.create("/k", "v")
    assert summary(first(store.watch("/k", since_index=1))) == ("create", "/k", 1)


def test_future_index_waits_for_that_index(store: Store) -> None:
    store.create("/k", "v0")
    watcher = store.watch("/k", since_index=4)
    store.set("/k", "v1")  # 2
    store.set("/k", "v2")  # 3
    store.set("/k", "v3")  # 4
    ev = first(watcher)
    assert summary(ev) == ("set", "/k", 4)
    assert ev.node["value"] == "v3"


def test_past_index_with_no_match_in_history_waits(store: Store) -> None:
    store.create("/a", "1")
    store.create("/b", "1")
    watcher = store.watch("/k", since_index=1)
    assert watcher.get(timeout=0) is None
    store.create("/k", "v")
    assert summary(first(watcher)) == ("create", "/k", 3)


# -- streams, removal, release --------------------------------------------------------------


def test_stream_watcher_gets_every_event_and_stays_registered(store: Store) -> None:
    watcher = store.watch("/k", stream=True)
    for i in range(3):
        store.set("/k", str(i))
    assert [first(watcher).node["value"] for _ in range(3)] == ["0", "1", "2"]
    assert store.watcher_count == 1
    watcher.remove()
    assert store.watcher_count == 0
    store.set("/k", "after")
    assert watcher.get(timeout=0) is None
    watcher.remove()  # idempotent


def test_a_one_shot_watcher_is_dropped_after_its_event(store: Store) -> None:
    watcher = store.watch("/k")
    assert store.watcher_count == 1
    store.set("/k", "1")
    store.set("/k", "2")
    assert summary(first(watcher)) == ("set", "/k", 1)
    assert watcher.get(timeout=0) is None
    assert store.watcher_count == 0


def test_a_stream_watcher_that_falls_behind_is_dropped(store: Store) -> None:
    watcher = store.watch("/k", stream=True)
    for i in range(STREAM_BUFFER + 5):
        store.set("/k", str(i))
    got = [first(watcher).index for _ in range(STREAM_BUFFER)]
    assert got == list(range(1, STREAM_BUFFER + 1))
    assert watcher.get(timeout=0) is None
    assert store.watcher_count == 0


def test_close_releases_blocked_waiters_promptly(store: Store) -> None:
    watchers = [store.watch(f"/k{i}", recursive=bool(i % 2)) for i in range(8)]
    results: list[Event | None] = []
    lock = threading.Lock()
    ready = threading.Barrier(len(watchers) + 1)

    def wait(w: Watcher) -> None:
        ready.wait(timeout=WAIT)
        got = w.get(timeout=60)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=wait, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    ready.wait(timeout=WAIT)
    started = time.monotonic()
    store.close()
    for t in threads:
        t.join(timeout=WAIT)
    assert not any(t.is_alive() for t in threads)
    assert time.monotonic() - started < WAIT
    assert results == [None] * len(watchers)
    assert store.watcher_count == 0


def test_close_releases_a_stream_answered_from_history(store: Store) -> None:
    """Such a stream is registered for no more events (as in etcd) but still waits: the
    store closing (a server stopping) must wake it, or its handler thread blocks on."""
    store.create("/k", "1")
    watcher = store.watch("/k", stream=True, since_index=1)
    assert summary(first(watcher)) == ("create", "/k", 1)
    store.close()
    assert watcher.closed
    assert watcher.get(timeout=WAIT) is None


def test_a_watch_on_a_closed_store_ends_at_once_until_it_opens_again(store: Store) -> None:
    store.create("/k", "1")
    store.close()
    blocked = store.watch("/k")
    assert blocked.closed and store.watcher_count == 0
    assert blocked.get(timeout=WAIT) is None
    past = store.watch("/k", stream=True, since_index=1)
    assert summary(first(past)) == ("create", "/k", 1)  # what history has is still said
    assert past.get(timeout=WAIT) is None
    store.open()
    watcher = store.watch("/k")
    assert not watcher.closed and store.watcher_count == 1
    store.set("/k", "2")
    assert summary(first(watcher)) == ("set", "/k", 2)


def test_removing_a_stream_answered_from_history_forgets_it(store: Store) -> None:
    store.create("/k", "1")
    watcher = store.watch("/k", stream=True, since_index=1)
    watcher.remove()
    assert watcher.closed
    assert not store.hub._parked  # nothing kept for close() to wake


@pytest.mark.parametrize(
    ("watch_path", "key_path", "hidden"),
    [
        ("/", "/_a", True),
        ("/", "/a", False),
        ("/t", "/t/_state", True),
        ("/t", "/t/a/_b", True),
        ("/t", "/t/a/b", False),
        ("/t/_config", "/t/_config/size", False),
        ("/t/a/b", "/t", False),  # a watch deeper than the key: never hidden
        ("/t", "/t/a_b", False),
    ],
)
def test_is_hidden_like_etcd(watch_path: str, key_path: str, hidden: bool) -> None:
    assert is_hidden(watch_path, key_path) is hidden


# -- hidden keys through every kind of write (etcd's store_test/store_ttl_test cases) --------------


def test_hidden_key_writes_reach_only_watchers_of_that_key(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/_foo", "bar", ttl=5)
    on_hidden = store.watch("/_foo", stream=True)
    everything = store.watch("/", recursive=True, stream=True)
    store.update("/_foo", "baz", ttl=5)
    store.compare_and_swap("/_foo", "baz", 0, "qux", ttl=5)
    clock.advance(5)  # expires /_foo
    store.create("/_foo", "again")
    store.delete("/_foo")
    store.create("/visible", "v", ttl=1)
    clock.advance(1)
    # etcd delivers a delete/expire twice to a stream on the removed key itself (once as a
    # removed node, once along the key's path); measured: `?wait=true&stream=true` on /sw
    # printed each of DELETE /sw and its TTL expiry twice.
    assert [first(on_hidden).action for _ in range(7)] == [
        "update",
        "compareAndSwap",
        "expire",
        "expire",
        "create",
        "delete",
        "delete",
    ]
    assert on_hidden.get(timeout=0) is None
    assert [summary(first(everything)) for _ in range(2)] == [
        ("create", "/visible", 7),
        ("expire", "/visible", 8),
    ]
    assert everything.get(timeout=0) is None


def test_start_index_is_the_store_index_when_the_watch_began(store: Store) -> None:
    store.create("/a", "1")
    store.create("/b", "1")
    assert store.watch("/k").start_index == 2
    assert store.watch("/a", since_index=1).start_index == 2


def test_stream_watch_answered_from_history_gets_only_that_event(store: Store) -> None:
    store.create("/k", "1")
    watcher = store.watch("/k", stream=True, since_index=1)
    assert summary(first(watcher)) == ("create", "/k", 1)
    assert store.watcher_count == 0
    store.set("/k", "2")  # notification is synchronous: nothing may be queued now
    assert watcher.get(timeout=0) is None


def test_wait_for_watchers_wakes_when_a_watch_registers(store: Store) -> None:
    assert store.wait_for_watchers(1, timeout=0.01) is False
    waiting = threading.Thread(target=lambda: store.watch("/k").get(timeout=WAIT), daemon=True)
    waiting.start()
    assert store.wait_for_watchers(1, timeout=WAIT) is True
    assert store.watcher_count == 1
    store.set("/k", "v")  # the watch now sees the write: no sleep was needed to know that
    waiting.join(WAIT)
    assert not waiting.is_alive()
