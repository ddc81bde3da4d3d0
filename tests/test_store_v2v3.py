"""The store under :data:`V2_OVER_V3`: etcd 3.4's v2 API over v3 (``v2v3``), which
etcd-io/discoveryserver stores through. Each case is one of the differences
``tests/transcripts`` measured against a build of that service; the last ones check
that etcd's own v2 store (the default rules) keeps its behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from unitutil import WAIT

from pytest_etcd_discovery._v2store import errors
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.errors import EtcdError
from pytest_etcd_discovery._v2store.rules import ETCD_V2, V2_OVER_V3
from pytest_etcd_discovery._v2store.store import Store


@pytest.fixture
def v3(clock: ControllableClock) -> Iterator[Store]:
    s = Store(clock, rules=V2_OVER_V3)
    yield s
    s.close()


# -- 1. an overwrite keeps createdIndex (the v3 create revision) -----------------------------


def test_set_over_a_key_keeps_its_created_index_in_node_and_prev_node(v3: Store) -> None:
    v3.set("/t/m", "a")  # 1
    second = v3.set("/t/m", "b")  # 2
    third = v3.set("/t/m", "c")  # 3
    assert second.node == {"key": "/t/m", "value": "b", "modifiedIndex": 2, "createdIndex": 1}
    assert third.node["createdIndex"] == 1
    assert third.prev_node == {"key": "/t/m", "value": "b", "modifiedIndex": 2, "createdIndex": 1}


def test_gets_and_listings_show_the_kept_created_index(v3: Store) -> None:
    v3.set("/t/stray", "x")  # 1
    v3.set("/t/m1", "a")  # 2
    v3.set("/t/m2", "b")  # 3
    v3.set("/t/m1", "a")  # 4: m1 re-registers, and stays before m2
    assert v3.get("/t/m1").node["createdIndex"] == 2
    listing = v3.get("/t", sorted=True).node["nodes"]
    assert [(n["key"], n["createdIndex"]) for n in listing] == [
        ("/t/m1", 2),
        ("/t/m2", 3),
        ("/t/stray", 1),
    ]


def test_watch_events_carry_the_kept_created_index(v3: Store) -> None:
    v3.set("/t/m", "a")  # 1
    live = v3.watch("/t/m", since_index=2)
    v3.set("/t/m", "b")  # 2
    event = live.get(WAIT)
    assert event is not None and event.node["createdIndex"] == 1
    replayed = v3.watch("/t", recursive=True, since_index=2).get(WAIT)
    assert replayed is not None and replayed.node == event.node


def test_a_key_deleted_and_set_again_is_created_anew(v3: Store) -> None:
    v3.set("/t/d/k", "a")  # 1
    v3.delete("/t/d", dir=True, recursive=True)  # 2
    assert v3.set("/t/d/k", "b").node["createdIndex"] == 3


# -- 2. a directory GET echoes the path asked for ----------------------------------------------


def test_directory_get_echoes_the_path_with_its_slash(v3: Store) -> None:
    v3.set("/t/m", "a")
    assert v3.get("/t/").node["key"] == "/t/"
    assert v3.get("/t").node["key"] == "/t"
    assert v3.get("/t/", recursive=True).node["nodes"][0]["key"] == "/t/m"
    assert v3.get("/t/m").node["key"] == "/t/m"  # files are named by their clean path


# -- 3. a recursive delete: prevNode only; its event is the deepest key's tombstone -----------


def test_recursive_delete_answers_the_directory_as_prev_node_without_node(v3: Store) -> None:
    v3.create("/t/_config/size", "3")  # 1
    reply = v3.delete("/t/_config", dir=True, recursive=True)  # 2
    assert reply.to_json() == {
        "action": "delete",
        "prevNode": {"key": "/t/_config", "dir": True, "modifiedIndex": 1, "createdIndex": 1},
    }
    assert reply.etcd_index == 2 == v3.index
    with pytest.raises(EtcdError) as err:
        v3.get("/t/_config/size")
    assert err.value.code == errors.KEY_NOT_FOUND


def test_recursive_delete_event_names_the_deepest_key_as_a_tombstone(v3: Store) -> None:
    v3.create("/t/_config/size", "3")  # 1
    exact = v3.watch("/t/_config/size", since_index=2)
    below = v3.watch("/t/_config", recursive=True, since_index=2)
    on_dir = v3.watch("/t/_config", since_index=2)  # v3: only its own key's events
    v3.delete("/t/_config", dir=True, recursive=True)  # 2
    expected = {
        "action": "delete",
        "node": {"key": "/t/_config/size", "value": "", "modifiedIndex": 2},
        "prevNode": {"key": "/t/_config/size", "value": "3", "modifiedIndex": 1, "createdIndex": 1},
    }
    for watcher in (exact, below):
        event = watcher.get(WAIT)
        assert event is not None and event.to_json() == expected
    assert on_dir.get(0.05) is None
    replayed = v3.watch("/t/_config/size", since_index=2).get(WAIT)
    assert replayed is not None and replayed.to_json() == expected


def test_file_delete_answers_node_and_prev_node_and_its_event_is_a_tombstone(v3: Store) -> None:
    v3.set("/t/m", "a")  # 1
    reply = v3.delete("/t/m")  # 2: v2v3's deleteNode
    prev = {"key": "/t/m", "value": "a", "modifiedIndex": 1, "createdIndex": 1}
    assert reply.to_json() == {
        "action": "delete",
        "node": {"key": "/t/m", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": prev,
    }
    event = v3.watch("/t/m", since_index=2).get(WAIT)
    assert event is not None
    assert event.to_json() == {
        "action": "delete",
        "node": {"key": "/t/m", "value": "", "modifiedIndex": 2},
        "prevNode": prev,
    }


def test_deepest_key_is_the_longest_then_the_first_in_key_order(v3: Store) -> None:
    v3.set("/d/bbb", "1")
    v3.set("/d/x/y", "3")  # as long as "/d/bbb" and "/d/aaa": depth 2 comes later
    v3.set("/d/aaa", "2")
    v3.delete("/d", dir=True, recursive=True)
    event = v3.watch("/d", recursive=True, since_index=v3.index).get(WAIT)
    assert event is not None and event.node["key"] == "/d/aaa"
    v3.create("/e/sub", dir=True)  # a directory's v3 key has a trailing slash
    v3.set("/e/abc", "1")
    v3.delete("/e", dir=True, recursive=True)
    event = v3.watch("/e", recursive=True, since_index=v3.index).get(WAIT)
    assert event is not None and event.node == {"key": "/e/sub", "dir": True, "modifiedIndex": 7}


# -- 4. the whole history replays ----------------------------------------------------------------


def test_watches_replay_beyond_a_thousand_events(v3: Store) -> None:
    for number in range(1003):
        v3.set("/t/m", str(number))  # 1..1003
    event = v3.watch("/t", recursive=True, since_index=2).get(WAIT)
    assert event is not None
    assert (event.node["value"], event.node["modifiedIndex"], event.etcd_index) == ("1", 2, 1003)


# -- etcd's own v2 store is unchanged -----------------------------------------------------------


def test_etcd_v2_rules_reset_created_index_and_keep_a_thousand_events(store: Store) -> None:
    assert store.rules is ETCD_V2
    store.set("/t/m", "a")  # 1
    assert store.set("/t/m", "b").node["createdIndex"] == 2
    assert store.get("/t/").node["key"] == "/t"
    for number in range(1001):
        store.set("/t/m", str(number))  # 3..1003
    with pytest.raises(EtcdError) as err:
        store.watch("/t", recursive=True, since_index=2)
    assert err.value.code == errors.EVENT_INDEX_CLEARED
    reply = store.delete("/t", dir=True, recursive=True)
    assert reply.to_json()["node"] == {
        "key": "/t",
        "dir": True,
        "modifiedIndex": 1004,
        "createdIndex": 1,
    }
