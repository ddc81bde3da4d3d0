"""Unit tests of :class:`Store`: etcd v2store's operations, index rules, errors and events.

The store runs on a frozen :class:`ControllableClock` here, so TTLs, expirations and
expiries are exact; the cases follow etcd 3.4's ``v2store`` (store.go, node.go,
event_history.go) and what the real ``etcd --enable-v2`` answers.
"""

from __future__ import annotations

import json
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unitutil import START, WAIT

from pytest_etcd_discovery._v2store import errors
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.errors import EtcdError
from pytest_etcd_discovery._v2store.events import Event
from pytest_etcd_discovery._v2store.store import Store, clean_path


def check(err: pytest.ExceptionInfo[EtcdError], code: int, cause: str, index: int) -> None:
    assert (err.value.code, err.value.cause, err.value.index) == (code, cause, index)


def node_keys(event: Event) -> list[str]:
    return [n["key"] for n in event.node.get("nodes", [])]


# -- create / set / update / compare-and-swap: index rules ----------------------------------


def test_create_gives_both_indexes_the_new_index(store: Store) -> None:
    ev = store.create("/a", "1")
    assert ev.action == "create"
    assert ev.to_json() == {
        "action": "create",
        "node": {"key": "/a", "value": "1", "modifiedIndex": 1, "createdIndex": 1},
    }
    assert ev.prev_node is None
    assert ev.etcd_index == 1
    assert ev.is_created
    assert store.index == 1


def test_create_of_an_existing_key_is_105_with_the_path_and_moves_no_index(store: Store) -> None:
    store.create("/a", "1")
    with pytest.raises(EtcdError) as err:
        store.create("/a", "2")
    check(err, errors.NODE_EXIST, "/a", 1)
    assert err.value.status == 412
    assert store.index == 1
    assert store.get("/a").node["value"] == "1"


def test_create_makes_missing_parent_directories_with_the_new_index(store: Store) -> None:
    store.create("/x", "0")
    store.create("/a/b/c", "v")
    a = store.get("/a").node
    assert a == {
        "key": "/a",
        "dir": True,
        "nodes": [{"key": "/a/b", "dir": True, "modifiedIndex": 2, "createdIndex": 2}],
        "modifiedIndex": 2,
        "createdIndex": 2,
    }


def test_create_below_a_file_is_104_with_the_file_path(store: Store) -> None:
    store.create("/a", "file")
    with pytest.raises(EtcdError) as err:
        store.create("/a/b/c", "v")
    check(err, errors.NOT_DIR, "/a", 1)
    assert err.value.status == 400
    assert store.index == 1


def test_create_directory_has_dir_and_no_value(store: Store) -> None:
    ev = store.create("/d", dir=True)
    assert ev.node == {"key": "/d", "dir": True, "modifiedIndex": 1, "createdIndex": 1}


def test_file_with_empty_value_still_shows_value(store: Store) -> None:
    ev = store.create("/e")
    assert ev.node == {"key": "/e", "value": "", "modifiedIndex": 1, "createdIndex": 1}
    assert store.get("/e").node["value"] == ""


def test_set_on_a_new_key_is_created_and_on_an_existing_key_resets_created_index(
    store: Store,
) -> None:
    first = store.set("/k", "1")
    assert first.action == "set" and first.prev_node is None and first.is_created
    store.create("/other", "x")
    second = store.set("/k", "2")
    assert second.to_json() == {
        "action": "set",
        "node": {"key": "/k", "value": "2", "modifiedIndex": 3, "createdIndex": 3},
        "prevNode": {"key": "/k", "value": "1", "modifiedIndex": 1, "createdIndex": 1},
    }
    assert not second.is_created


def test_set_on_a_directory_is_102(store: Store) -> None:
    store.create("/d", dir=True)
    with pytest.raises(EtcdError) as err:
        store.set("/d", "v")
    check(err, errors.NOT_FILE, "/d", 1)
    assert err.value.status == 403


def test_update_moves_only_modified_index(store: Store) -> None:
    store.create("/k", "1")
    store.create("/other", "x")
    ev = store.update("/k", "2")
    assert ev.to_json() == {
        "action": "update",
        "node": {"key": "/k", "value": "2", "modifiedIndex": 3, "createdIndex": 1},
        "prevNode": {"key": "/k", "value": "1", "modifiedIndex": 1, "createdIndex": 1},
    }
    assert ev.etcd_index == 3 and store.index == 3
    assert store.get("/k").node == {
        "key": "/k",
        "value": "2",
        "modifiedIndex": 3,
        "createdIndex": 1,
    }


def test_update_of_a_missing_key_is_100_with_the_path(store: Store) -> None:
    store.create("/x", "1")
    with pytest.raises(EtcdError) as err:
        store.update("/nope/deeper", "2")
    check(err, errors.KEY_NOT_FOUND, "/nope", 1)
    assert err.value.status == 404


def test_update_of_a_directory_value_is_102_but_its_ttl_can_change(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/d", dir=True)
    with pytest.raises(EtcdError) as err:
        store.update("/d", "v")
    check(err, errors.NOT_FILE, "/d", 1)
    ev = store.update("/d", ttl=30)
    assert ev.node == {
        "key": "/d",
        "dir": True,
        "expiration": "2023-11-14T22:13:50Z",
        "ttl": 30,
        "modifiedIndex": 2,
        "createdIndex": 1,
    }
    # etcd's node.Write refuses directories: the stored directory keeps its modifiedIndex.
    assert store.get("/d").node["modifiedIndex"] == 1


def test_compare_and_swap_moves_only_modified_index(store: Store) -> None:
    store.create("/k", "a")
    ev = store.compare_and_swap("/k", "a", 1, "b")
    assert ev.to_json() == {
        "action": "compareAndSwap",
        "node": {"key": "/k", "value": "b", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/k", "value": "a", "modifiedIndex": 1, "createdIndex": 1},
    }
    assert not ev.is_created
    assert store.compare_and_swap("/k", "b", 0, "c").node["value"] == "c"
    assert store.compare_and_swap("/k", "", 3, "d").node["modifiedIndex"] == 4


@pytest.mark.parametrize(
    ("prev_value", "prev_index", "cause"),
    [
        ("a", 0, "[a != b]"),
        ("", 1, "[1 != 2]"),
        ("a", 1, "[a != b] [1 != 2]"),
        ("b", 1, "[1 != 2]"),
        ("a", 2, "[a != b]"),
    ],
)
def test_compare_and_swap_failure_causes(
    store: Store, prev_value: str, prev_index: int, cause: str
) -> None:
    store.create("/k", "a")
    store.set("/k", "b")  # value b, modifiedIndex 2
    with pytest.raises(EtcdError) as err:
        store.compare_and_swap("/k", prev_value, prev_index, "c")
    check(err, errors.TEST_FAILED, cause, 2)
    assert err.value.status == 412
    assert store.index == 2


def test_compare_and_swap_errors(store: Store) -> None:
    store.create("/d/f", "v")
    with pytest.raises(EtcdError) as err:
        store.compare_and_swap("/d", "v", 0, "w")
    check(err, errors.NOT_FILE, "/d", 1)
    with pytest.raises(EtcdError) as err:
        store.compare_and_swap("/d/missing", "v", 0, "w")
    check(err, errors.KEY_NOT_FOUND, "/d/missing", 1)
    with pytest.raises(EtcdError) as err:
        store.compare_and_swap("/", "v", 0, "w")
    check(err, errors.ROOT_READ_ONLY, "/", 1)


@pytest.mark.parametrize(
    "op",
    [
        lambda s: s.set("/", "v"),
        lambda s: s.create("/", "v"),
        lambda s: s.update("/", "v"),
        lambda s: s.delete("/", dir=True, recursive=True),
        lambda s: s.set("/a/..", "v"),
    ],
    ids=["set", "create", "update", "delete", "set-dotdot"],
)
def test_root_is_read_only_107(store: Store, op: object) -> None:
    store.create("/x", "1")
    with pytest.raises(EtcdError) as err:
        op(store)  # type: ignore[operator]
    check(err, errors.ROOT_READ_ONLY, "/", 1)
    assert err.value.status == 400
    assert err.value.to_json() == {
        "errorCode": 107,
        "message": "Root is read only",
        "cause": "/",
        "index": 1,
    }


# -- get ------------------------------------------------------------------------------------


def test_get_of_a_missing_key_is_100_with_the_first_missing_path_and_current_index(
    store: Store,
) -> None:
    store.create("/a/b", "1")
    store.create("/z", "1")
    with pytest.raises(EtcdError) as err:
        store.get("/a/c/d")
    check(err, errors.KEY_NOT_FOUND, "/a/c", 2)
    assert err.value.to_json() == {
        "errorCode": 100,
        "message": "Key not found",
        "cause": "/a/c",
        "index": 2,
    }


def test_get_below_a_file_is_104_with_the_file_path(store: Store) -> None:
    store.create("/a", "1")
    with pytest.raises(EtcdError) as err:
        store.get("/a/b")
    check(err, errors.NOT_DIR, "/a", 1)


def test_get_reports_the_current_index_not_the_nodes(store: Store) -> None:
    store.create("/a", "1")
    store.create("/b", "1")
    ev = store.get("/a")
    assert ev.action == "get"
    assert ev.etcd_index == 2
    assert ev.to_json() == {
        "action": "get",
        "node": {"key": "/a", "value": "1", "modifiedIndex": 1, "createdIndex": 1},
    }


def test_keys_are_cleaned_like_go_path_clean(store: Store) -> None:
    store.create("a//b/./c/../d", "v")
    assert store.get("/a/b/d").node["key"] == "/a/b/d"
    assert store.get("a/b/d/").node["value"] == "v"
    assert clean_path("") == "/"
    assert clean_path("/../..") == "/"
    assert clean_path("x/./y//z/..") == "/x/y"


def test_listing_hides_underscore_names_at_every_level(store: Store) -> None:
    store.create("/t/_config/size", "3")
    store.create("/t/_state", "started")
    store.create("/t/m1", "a")
    store.create("/t/sub/_hidden", "h")
    store.create("/t/sub/shown", "s")
    top = store.get("/t", sorted=True)
    assert node_keys(top) == ["/t/m1", "/t/sub"]
    rec = store.get("/t", recursive=True, sorted=True)
    sub = rec.node["nodes"][1]
    assert [n["key"] for n in sub["nodes"]] == ["/t/sub/shown"]
    # A hidden key itself can still be read.
    assert store.get("/t/_state").node["value"] == "started"
    assert store.get("/t/_config").node["dir"] is True


def test_directory_with_only_hidden_children_has_no_nodes_field(store: Store) -> None:
    store.create("/t/_config/size", "3")
    assert store.get("/t").node == {
        "key": "/t",
        "dir": True,
        "modifiedIndex": 1,
        "createdIndex": 1,
    }


def test_sorted_listing_sorts_by_key(store: Store) -> None:
    names = [f"k{i:02d}" for i in range(30)]
    shuffled = names[:]
    random.Random(7).shuffle(shuffled)
    for name in shuffled:
        store.create(f"/d/{name}", name)
    assert node_keys(store.get("/d", sorted=True)) == [f"/d/{n}" for n in names]
    # Unsorted lists the same keys (order unspecified, like Go's map order).
    assert sorted(node_keys(store.get("/d"))) == [f"/d/{n}" for n in names]


def test_non_recursive_listing_shows_child_dirs_without_their_nodes(store: Store) -> None:
    store.create("/d/sub/leaf", "1")
    store.create("/d/file", "2")
    flat = store.get("/d", sorted=True).node["nodes"]
    assert flat == [
        {"key": "/d/file", "value": "2", "modifiedIndex": 2, "createdIndex": 2},
        {"key": "/d/sub", "dir": True, "modifiedIndex": 1, "createdIndex": 1},
    ]
    deep = store.get("/d", recursive=True, sorted=True).node["nodes"]
    assert deep[1] == {
        "key": "/d/sub",
        "dir": True,
        "nodes": [{"key": "/d/sub/leaf", "value": "1", "modifiedIndex": 1, "createdIndex": 1}],
        "modifiedIndex": 1,
        "createdIndex": 1,
    }


def test_root_listing(store: Store) -> None:
    # etcd's root is "/1", trimmed to "" in replies: the root has no key.
    assert store.get("/").node == {"dir": True}
    store.create("/a", "1")
    assert store.get("/").node == {
        "dir": True,
        "nodes": [{"key": "/a", "value": "1", "modifiedIndex": 1, "createdIndex": 1}],
    }


# -- unique keys ----------------------------------------------------------------------------


def test_unique_create_names_the_key_after_the_new_index(store: Store) -> None:
    for i in range(4):
        store.create(f"/x{i}", "x")
    first = store.create("/queue", "a", unique=True)
    second = store.create("/queue", "b", unique=True)
    assert first.to_json() == {
        "action": "create",
        "node": {
            "key": "/queue/00000000000000000005",
            "value": "a",
            "modifiedIndex": 5,
            "createdIndex": 5,
        },
    }
    assert second.key == "/queue/00000000000000000006"
    assert node_keys(store.get("/queue", sorted=True)) == [first.key, second.key]


def test_unique_create_below_a_file_is_104(store: Store) -> None:
    store.create("/f", "v")
    with pytest.raises(EtcdError) as err:
        store.create("/f", "v", unique=True)
    check(err, errors.NOT_DIR, "/f", 1)


# -- delete / compare-and-delete ------------------------------------------------------------


def test_delete_of_a_file(store: Store) -> None:
    store.create("/k", "v")
    ev = store.delete("/k")
    assert ev.to_json() == {
        "action": "delete",
        "node": {"key": "/k", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/k", "value": "v", "modifiedIndex": 1, "createdIndex": 1},
    }
    assert ev.etcd_index == 2 and store.index == 2
    with pytest.raises(EtcdError) as err:
        store.get("/k")
    check(err, errors.KEY_NOT_FOUND, "/k", 2)


def test_delete_of_a_directory_needs_dir_and_recursive_when_not_empty(store: Store) -> None:
    store.create("/d/f", "v")
    with pytest.raises(EtcdError) as err:
        store.delete("/d")
    check(err, errors.NOT_FILE, "/d", 1)
    with pytest.raises(EtcdError) as err:
        store.delete("/d", dir=True)
    check(err, errors.DIR_NOT_EMPTY, "/d", 1)
    assert err.value.status == 403
    assert store.index == 1
    ev = store.delete("/d", recursive=True)  # recursive implies dir
    assert ev.to_json() == {
        "action": "delete",
        "node": {"key": "/d", "dir": True, "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/d", "dir": True, "modifiedIndex": 1, "createdIndex": 1},
    }
    with pytest.raises(EtcdError):
        store.get("/d/f")


def test_delete_of_an_empty_directory_with_dir(store: Store) -> None:
    store.create("/d", dir=True)
    assert store.delete("/d", dir=True).node == {
        "key": "/d",
        "dir": True,
        "modifiedIndex": 2,
        "createdIndex": 1,
    }


def test_delete_of_a_missing_key_is_100(store: Store) -> None:
    with pytest.raises(EtcdError) as err:
        store.delete("/missing")
    check(err, errors.KEY_NOT_FOUND, "/missing", 0)


def test_compare_and_delete(store: Store) -> None:
    store.create("/k", "a")
    for prev_value, prev_index, cause in [
        ("b", 0, "[b != a]"),
        ("", 7, "[7 != 1]"),
        ("b", 7, "[b != a] [7 != 1]"),
    ]:
        with pytest.raises(EtcdError) as err:
            store.compare_and_delete("/k", prev_value, prev_index)
        check(err, errors.TEST_FAILED, cause, 1)
    ev = store.compare_and_delete("/k", "a", 1)
    assert ev.to_json() == {
        "action": "compareAndDelete",
        "node": {"key": "/k", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/k", "value": "a", "modifiedIndex": 1, "createdIndex": 1},
    }
    store.create("/d", dir=True)
    with pytest.raises(EtcdError) as err:
        store.compare_and_delete("/d", "a", 0)
    check(err, errors.NOT_FILE, "/d", 3)


# -- TTLs -----------------------------------------------------------------------------------


def test_ttl_and_expiration_are_reported(store: Store) -> None:
    ev = store.create("/k", "v", ttl=60)
    assert ev.node == {
        "key": "/k",
        "value": "v",
        "expiration": "2023-11-14T22:14:20Z",
        "ttl": 60,
        "modifiedIndex": 1,
        "createdIndex": 1,
    }


@pytest.mark.parametrize(
    ("elapsed", "ttl"),
    [(0.0, 5), (0.5, 5), (0.999999999, 5), (1.0, 4), (4.0, 1), (4.999999999, 1)],
)
def test_ttl_is_the_ceiling_of_the_seconds_left(
    store: Store, clock: ControllableClock, elapsed: float, ttl: int
) -> None:
    store.create("/k", "v", ttl=5)
    clock.advance(elapsed)
    assert store.get("/k").node["ttl"] == ttl


@pytest.mark.parametrize(
    ("offset", "expiration"),
    [
        (0.0, "2023-11-14T22:13:30Z"),
        (0.5, "2023-11-14T22:13:30.5Z"),
        (0.12345678, "2023-11-14T22:13:30.12345678Z"),
        (0.000000001, "2023-11-14T22:13:30.000000001Z"),
        (0.1, "2023-11-14T22:13:30.1Z"),
    ],
)
def test_expiration_is_rfc3339_nano_with_trailing_zeros_trimmed(
    store: Store, clock: ControllableClock, offset: float, expiration: str
) -> None:
    clock.advance(offset)
    assert store.set("/k", "v", ttl=10).node["expiration"] == expiration


def test_update_without_ttl_removes_the_ttl(store: Store, clock: ControllableClock) -> None:
    store.create("/k", "v", ttl=10)
    ev = store.update("/k", "w")
    assert "ttl" not in ev.node and "expiration" not in ev.node
    assert ev.prev_node is not None and ev.prev_node["ttl"] == 10
    clock.advance(20)
    assert store.get("/k").node == {
        "key": "/k",
        "value": "w",
        "modifiedIndex": 2,
        "createdIndex": 1,
    }


def test_compare_and_swap_without_ttl_removes_the_ttl(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/k", "v", ttl=10)
    store.compare_and_swap("/k", "v", 0, "w")
    clock.advance(20)
    assert store.get("/k").node["value"] == "w"


def test_set_replacing_a_ttl_key_drops_the_old_expiry(
    store: Store, clock: ControllableClock
) -> None:
    store.set("/k", "v", ttl=10)
    store.set("/k", "w")
    clock.advance(20)
    assert store.get("/k").node["value"] == "w"
    assert store.index == 2  # no expire event


def test_update_with_a_new_ttl_moves_the_expiry(store: Store, clock: ControllableClock) -> None:
    store.create("/k", "v", ttl=10)
    clock.advance(8)
    store.update("/k", "v", ttl=10)
    clock.advance(8)  # 16 s after create: the first expiry has passed
    assert store.get("/k").node["ttl"] == 2
    clock.advance(2)
    with pytest.raises(EtcdError):
        store.get("/k")


def test_refresh_keeps_the_value_bumps_the_index_and_notifies_nobody(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/k", "v", ttl=5)
    watcher = store.watch("/k")
    clock.advance(3)
    ev = store.update("/k", "ignored", ttl=10, refresh=True)
    assert ev.action == "update"
    assert ev.node == {
        "key": "/k",
        "value": "v",
        "expiration": "2023-11-14T22:13:33Z",
        "ttl": 10,
        "modifiedIndex": 2,
        "createdIndex": 1,
    }
    assert store.index == 2
    # The watcher skipped the refresh: its first event is the next real write.
    store.set("/k", "next")
    got = watcher.get(timeout=WAIT)
    assert got is not None and got.index == 3 and got.action == "set"
    # A history scan skips it as well.
    later = store.watch("/k", since_index=2)
    got = later.get(timeout=WAIT)
    assert got is not None and got.index == 3


def test_set_and_compare_and_swap_refresh(store: Store, clock: ControllableClock) -> None:
    store.create("/k", "v", ttl=5)
    watcher = store.watch("/k", stream=True)
    ev = store.set("/k", "", ttl=30, refresh=True)
    assert (ev.action, ev.node["value"], ev.node["ttl"], ev.node["createdIndex"]) == (
        "set",
        "v",
        30,
        2,
    )
    ev = store.compare_and_swap("/k", "v", 0, "", ttl=40, refresh=True)
    assert (ev.node["value"], ev.node["ttl"]) == ("v", 40)
    store.delete("/k")
    got = watcher.get(timeout=WAIT)
    assert got is not None and got.action == "delete" and got.index == 4


def test_refresh_of_a_missing_key_is_100(store: Store) -> None:
    with pytest.raises(EtcdError) as err:
        store.set("/missing", ttl=5, refresh=True)
    check(err, errors.KEY_NOT_FOUND, "/missing", 0)
    assert store.index == 0


def test_expire_event_has_no_value_and_a_prev_node_without_ttl(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/k", "v", ttl=10)
    watcher = store.watch("/k")
    clock.advance(10)
    ev = watcher.get(timeout=WAIT)
    assert ev is not None
    assert ev.to_json() == {
        "action": "expire",
        "node": {"key": "/k", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {
            "key": "/k",
            "value": "v",
            "expiration": "2023-11-14T22:13:30Z",
            "modifiedIndex": 1,
            "createdIndex": 1,
        },
    }
    assert store.index == 2


def test_expire_event_prev_node_has_no_ttl_even_when_the_clock_jumped_past_it(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/k", "v", ttl=10)
    watcher = store.watch("/k")
    clock.advance(100)
    ev = watcher.get(timeout=WAIT)
    assert ev is not None and ev.prev_node is not None
    assert "ttl" not in ev.prev_node


def test_expiries_fire_in_expiry_order_with_consecutive_indexes(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/late", "v", ttl=9)
    store.create("/early", "v", ttl=3)
    store.create("/mid", "v", ttl=6)
    store.create("/kept", "v", ttl=50)
    watcher = store.watch("/", recursive=True, stream=True)
    clock.advance(10)
    got = [watcher.get(timeout=WAIT) for _ in range(3)]
    assert [(e.action, e.key, e.index) for e in got if e] == [
        ("expire", "/early", 5),
        ("expire", "/mid", 6),
        ("expire", "/late", 7),
    ]
    assert store.index == 7
    assert node_keys(store.get("/")) == ["/kept"]


def test_directory_expiry_removes_children_and_wakes_watchers_below(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/d", dir=True, ttl=5)
    store.create("/d/a", "1")
    store.create("/d/b/c", "2")
    deep = store.watch("/d/b/c")
    clock.advance(5)
    ev = deep.get(timeout=WAIT)
    assert ev is not None
    assert ev.to_json() == {
        "action": "expire",
        "node": {"key": "/d", "dir": True, "modifiedIndex": 4, "createdIndex": 1},
        "prevNode": {
            "key": "/d",
            "dir": True,
            "expiration": "2023-11-14T22:13:25Z",
            "modifiedIndex": 1,
            "createdIndex": 1,
        },
    }
    for key in ("/d", "/d/a", "/d/b/c"):
        with pytest.raises(EtcdError):
            store.get(key)


def test_child_ttl_is_dropped_with_its_deleted_parent(
    store: Store, clock: ControllableClock
) -> None:
    store.create("/d/k", "v", ttl=5)
    store.delete("/d", recursive=True)
    clock.advance(10)
    assert store.index == 2  # no expire event for a key already gone


# -- event history ----------------------------------------------------------------------


def test_history_keeps_the_last_1000_events(store: Store) -> None:
    for i in range(1005):
        store.set("/k", str(i))
    with pytest.raises(EtcdError) as err:
        store.watch("/k", since_index=5)
    check(err, errors.EVENT_INDEX_CLEARED, "the requested history has been cleared [6/5]", 1005)
    assert err.value.status == 400
    assert err.value.message == "The event in requested index is outdated and cleared"
    watcher = store.watch("/k", since_index=6)
    ev = watcher.get(timeout=WAIT)
    assert ev is not None and ev.index == 6 and ev.node["value"] == "5"
    assert ev.etcd_index == 1005


def test_history_size_is_configurable(clock: ControllableClock) -> None:
    s = Store(clock, history_size=3)
    try:
        for i in range(5):
            s.create(f"/k{i}", "v")
        with pytest.raises(EtcdError) as err:
            s.watch("/", recursive=True, since_index=2)
        check(err, errors.EVENT_INDEX_CLEARED, "the requested history has been cleared [3/2]", 5)
    finally:
        s.close()


# -- snapshot / restore ---------------------------------------------------------------------


def test_snapshot_restore_round_trip(store: Store, clock: ControllableClock) -> None:
    store.create("/t/_config/size", "3")
    store.create("/t/m1", "a", ttl=100)
    store.create("/t/sub", dir=True)
    store.set("/t/m2", "b")
    store.update("/t/m2", "c")
    data = json.loads(json.dumps(store.snapshot()))  # JSON-able
    other = Store(clock)
    try:
        other.restore(data)
        assert other.index == store.index == 5
        for key in ("/", "/t"):
            mine = store.get(key, recursive=True, sorted=True).to_json()
            assert other.get(key, recursive=True, sorted=True).to_json() == mine
        assert other.get("/t/_config/size").node == store.get("/t/_config/size").node
        # History came along: a past watch is answered from it.
        ev = other.watch("/t/m2", since_index=4).get(timeout=WAIT)
        assert ev is not None and ev.to_json()["node"]["value"] == "b"
        # TTLs came along: the member still expires, with an event.
        watcher = other.watch("/t/m1")
        clock.advance(100)
        ev = watcher.get(timeout=WAIT)
        assert ev is not None and ev.action == "expire"
        assert other.index == 6
        # Writes continue from the restored index.
        assert other.create("/t/m3", "x").index == 7
    finally:
        other.close()


def test_restore_releases_blocked_watchers(store: Store) -> None:
    snap = store.snapshot()
    watcher = store.watch("/k")
    store.restore(snap)
    assert watcher.get(timeout=WAIT) is None


# -- threads ------------------------------------------------------------------------------


def test_concurrent_creates_of_one_key_have_exactly_one_winner(store: Store) -> None:
    n = 32
    barrier = threading.Barrier(n)
    results: list[object] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait(timeout=WAIT)
        try:
            out: object = store.create("/_state", f"started-{i}")
        except EtcdError as exc:
            out = exc.code
        with lock:
            results.append(out)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    assert len(results) == n
    winners = [r for r in results if isinstance(r, Event)]
    assert len(winners) == 1
    assert sorted(r for r in results if not isinstance(r, Event)) == [errors.NODE_EXIST] * (n - 1)
    assert store.index == 1
    assert store.get("/_state").node["value"] == winners[0].node["value"]


def test_concurrent_creates_of_different_keys_lose_nothing(store: Store) -> None:
    threads_n, per_thread = 16, 50
    barrier = threading.Barrier(threads_n)
    indexes: list[int] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        barrier.wait(timeout=WAIT)
        mine = [store.create(f"/d/t{t}-{i}", "v").index for i in range(per_thread)]
        with lock:
            indexes.extend(mine)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT * 2)
    total = threads_n * per_thread
    assert sorted(indexes) == list(range(1, total + 1))
    assert store.index == total
    assert len(store.get("/d").node["nodes"]) == total


def test_absurd_ttls_wrap_like_go_int64_and_before_2000_means_no_ttl(
    store: Store, clock: ControllableClock
) -> None:
    # etcd computes now + ttl*1s in int64 nanoseconds; a result before 2000 is "permanent".
    far = store.create("/far", "v", ttl=7_000_000_000)  # ~ year 2245: still fits in int64
    assert far.node["ttl"] == 7_000_000_000
    assert far.node["expiration"].startswith("2245-")
    wrapped = store.create("/wrapped", "v", ttl=8_000_000_000)  # overflows int64: no TTL
    assert "ttl" not in wrapped.node and "expiration" not in wrapped.node
    clock.advance(10**9)
    assert store.get("/wrapped").node["value"] == "v"


# -- a model check: random operation sequences against a plain dict ------------------------

KEYS = ("/a", "/b", "/d/x", "/d/y")
VALUES = ("1", "2", "3")
operations = st.lists(
    st.tuples(
        st.sampled_from(["create", "set", "update", "cas", "delete", "cad"]),
        st.sampled_from(KEYS),
        st.sampled_from(VALUES),
        st.sampled_from(VALUES),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=operations)
def test_random_operations_follow_the_index_rules(ops: list[tuple[str, str, str, str]]) -> None:
    clock = ControllableClock(start=START, frozen=True)
    s = Store(clock)
    model: dict[str, tuple[str, int, int]] = {}  # key -> (value, createdIndex, modifiedIndex)
    index = 0
    applied: list[Event] = []
    try:
        for op, key, value, prev in ops:
            current = model.get(key)
            expected: int | None = None  # the error code the model predicts
            if op == "create" and current is not None:
                expected = errors.NODE_EXIST
            elif op in ("update", "cas", "delete", "cad") and current is None:
                expected = errors.KEY_NOT_FOUND
            elif op in ("cas", "cad") and current is not None and current[0] != prev:
                expected = errors.TEST_FAILED
            try:
                if op == "create":
                    event = s.create(key, value)
                elif op == "set":
                    event = s.set(key, value)
                elif op == "update":
                    event = s.update(key, value)
                elif op == "cas":
                    event = s.compare_and_swap(key, prev, 0, value)
                elif op == "delete":
                    event = s.delete(key)
                else:
                    event = s.compare_and_delete(key, prev, 0)
            except EtcdError as err:
                assert err.code == expected, (op, key)
                assert err.index == index
                assert s.index == index  # a failed write spends no index
                continue
            assert expected is None, (op, key, expected)
            index += 1
            assert event.index == event.etcd_index == s.index == index
            applied.append(event)
            if op in ("create", "set"):
                model[key] = (value, index, index)
            elif op in ("update", "cas"):
                assert current is not None
                model[key] = (value, current[1], index)
            else:
                del model[key]
        for key in KEYS:
            if key in model:
                value, created, modified = model[key]
                node = s.get(key).node
                assert (node["value"], node["createdIndex"], node["modifiedIndex"]) == (
                    value,
                    created,
                    modified,
                )
            else:
                with pytest.raises(EtcdError):
                    s.get(key)
        # Every write is in the history at its own index.
        for event in applied:
            got = s.watch(event.key, since_index=event.index).get(timeout=0)
            assert got is not None and got.to_json() == event.to_json()
    finally:
        s.close()


# -- kept reads: the same GET on the same state is built once -----------------------------


def test_a_read_is_kept_until_the_state_changes(store: Store) -> None:
    store.create("/t/a", "1")
    first = store.get("/t", recursive=True)
    assert store.get("/t", recursive=True) is first  # built once for this state
    assert store.get("/t") is not first  # another request
    store.create("/t/b", "2")
    after = store.get("/t", recursive=True)
    assert node_keys(after) == ["/t/a", "/t/b"] and after.etcd_index == store.index
    with pytest.raises(EtcdError):
        store.create("/t/b", "3")  # a failed write changes nothing: the read stays
    assert store.get("/t", recursive=True) is after


def test_a_listing_with_a_ttl_is_read_afresh(store: Store, clock: ControllableClock) -> None:
    store.create("/t/a", "1", ttl=30)
    store.create("/u/a", "1")
    before = store.get("/t")
    clock.advance(10)
    # Nothing was written, but the remaining TTL it shows changed with the clock.
    assert before.node["nodes"][0]["ttl"] == 30
    assert store.get("/t").node["nodes"][0]["ttl"] == 20
    assert store.get("/u") is store.get("/u")  # a listing without one is still kept


def test_a_restore_drops_the_kept_reads(store: Store) -> None:
    store.create("/t/a", "1")
    other = Store(clock=store.clock)
    other.create("/t/b", "2")  # the same index, other contents
    assert store.index == other.index
    store.get("/t")
    store.restore(other.snapshot())
    assert node_keys(store.get("/t")) == ["/t/b"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["create", "set", "update", "delete", "advance"]),
            st.sampled_from(["/t/a", "/t/b", "/t/d/c", "/t/_h", "/u/a"]),
            st.sampled_from([None, 0, 1, 5]),
        ),
        max_size=25,
    )
)
def test_kept_reads_match_a_fresh_read(ops: list[tuple[str, str, int | None]]) -> None:
    """The same operations on two stores: one keeps its reads as it does, its twin forgets
    them before every read; after every operation they answer alike."""
    clock = ControllableClock(START, frozen=True)
    store, twin = Store(clock=clock), Store(clock=clock)
    try:
        for op, key, ttl in ops:
            for each in (store, twin):
                _apply(each, op, key, ttl)
            if op == "advance":
                clock.advance(ttl or 0.5)
            for path in ("/", "/t", "/t/", "/t/d", "/u"):
                for recursive in (False, True):
                    twin._reads.clear()  # built afresh
                    assert _read(store, path, recursive) == _read(twin, path, recursive)
    finally:
        store.close()
        twin.close()


def _apply(store: Store, op: str, key: str, ttl: int | None) -> None:
    try:
        if op == "create":
            store.create(key, "v", ttl=ttl)
        elif op == "set":
            store.set(key, "w", ttl=ttl)
        elif op == "update":
            store.update(key, "x", ttl=ttl)
        elif op == "delete":
            store.delete(key, recursive=True)
    except EtcdError:
        pass


def _read(store: Store, path: str, recursive: bool) -> object:
    try:
        event = store.get(path, recursive=recursive, sorted=True)
    except EtcdError as err:
        return err.code
    return event.to_json(), event.etcd_index


def test_only_reads_keep_their_encoded_reply() -> None:
    """A kept read keeps its encoded JSON (a hundred polls send it); a write's reply does
    not, since the history keeps its event long after (it was 0.4 KB a member)."""
    from pytest_etcd_discovery._service.app import DiscoveryApp

    app = DiscoveryApp()
    try:
        token_url = app.answer_url("GET", "http://127.0.0.1:9/new?size=3")[2].decode()
        status, _, _ = app.answer_url("PUT", f"{token_url}/m1", form={"value": "m1=http://a"})
        assert status == 201
        assert app.store.history_events()[-1].memo == {}
        first = app.answer_url("GET", token_url)[2]
        assert app.answer_url("GET", token_url)[2] == first
        key = app.token_key(token_url.rsplit("/", 1)[1])
        assert app.store.get(key).memo == {"line": first}
    finally:
        app.close()
