"""Unit tests of the node view (etcd's NodeExtern JSON), events, history, TTL heap, errors."""

from __future__ import annotations

import pytest

from pytest_etcd_discovery._v2store import errors
from pytest_etcd_discovery._v2store.errors import EtcdError
from pytest_etcd_discovery._v2store.events import Event, EventHistory
from pytest_etcd_discovery._v2store.node import Node, format_expiration, ttl_left
from pytest_etcd_discovery._v2store.ttl_heap import TTLKeyHeap

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z


# -- expiration and ttl -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (T0, "2023-11-14T22:13:20Z"),
        (T0 + 500_000_000, "2023-11-14T22:13:20.5Z"),
        (T0 + 1, "2023-11-14T22:13:20.000000001Z"),
        (T0 + 120_000_000, "2023-11-14T22:13:20.12Z"),
        (T0 + 123_456_789, "2023-11-14T22:13:20.123456789Z"),
        (T0 + 100_000_010, "2023-11-14T22:13:20.10000001Z"),
        (1_795_000_000 * S + 901_176_189, "2026-11-18T11:06:40.901176189Z"),
    ],
)
def test_format_expiration_is_go_rfc3339_nano_utc(ns: int, text: str) -> None:
    assert format_expiration(ns) == text


@pytest.mark.parametrize(
    ("left_ns", "ttl"),
    [
        (10 * S, 10),
        (9 * S + 1, 10),
        (9 * S + 500_000_000, 10),
        (1, 1),
        (S, 1),
        (0, 0),
        (-1, 0),  # Go truncates toward zero and adds 1 only for a positive remainder
        (-S // 2, 0),
        (-S, -1),
        (-3 * S // 2, -1),
    ],
)
def test_ttl_left_is_etcd_ceiling(left_ns: int, ttl: int) -> None:
    assert ttl_left(T0 + left_ns, T0) == ttl


# -- Node views --------------------------------------------------------------------------------


def make_tree() -> Node:
    root = Node("/", 0, None, is_dir=True)
    tok = Node("/t", 3, root, is_dir=True)
    assert root.children is not None and tok.children is not None
    root.children["t"] = tok
    for name, index, value in [("m2", 5, "b"), ("_state", 6, "s"), ("m1", 4, "a")]:
        tok.children[name] = Node(f"/t/{name}", index, tok, value=value)
    sub = Node("/t/sub", 7, tok, is_dir=True)
    tok.children["sub"] = sub
    assert sub.children is not None
    sub.children["leaf"] = Node("/t/sub/leaf", 7, sub, value="")
    return root


def test_file_view_field_order_and_empty_value() -> None:
    root = Node("/", 0, None, is_dir=True)
    node = Node("/k", 4, root, value="", expire_ns=T0 + 5 * S)
    node.modified_index = 9
    view = node.view(T0)
    assert list(view) == ["key", "value", "expiration", "ttl", "modifiedIndex", "createdIndex"]
    assert view == {
        "key": "/k",
        "value": "",
        "expiration": "2023-11-14T22:13:25Z",
        "ttl": 5,
        "modifiedIndex": 9,
        "createdIndex": 4,
    }


def test_dir_view_has_dir_and_no_value_and_zero_indexes_are_omitted() -> None:
    root = Node("/", 0, None, is_dir=True)
    # etcd's root is "/1", trimmed to "" in replies: the root shows no key.
    assert root.view(T0) == {"dir": True}
    assert root.is_dir and root.is_permanent
    empty = Node("/d", 0, root, is_dir=True)
    assert empty.view(T0) == {"key": "/d", "dir": True}


def test_view_of_a_dir_lists_nothing_unless_recursive() -> None:
    tok = make_tree().children["t"]  # type: ignore[index]
    assert tok.view(T0) == {"key": "/t", "dir": True, "modifiedIndex": 3, "createdIndex": 3}
    rec = tok.view(T0, recursive=True, sorted_=True)
    assert [n["key"] for n in rec["nodes"]] == ["/t/m1", "/t/m2", "/t/sub"]
    assert rec["nodes"][2]["nodes"] == [
        {"key": "/t/sub/leaf", "value": "", "modifiedIndex": 7, "createdIndex": 7}
    ]
    assert list(rec) == ["key", "dir", "nodes", "modifiedIndex", "createdIndex"]


def test_listing_view_lists_one_level_and_hides_underscore_names() -> None:
    tok = make_tree().children["t"]  # type: ignore[index]
    listing = tok.view_listing(T0, recursive=False, sorted_=True)
    assert listing["nodes"] == [
        {"key": "/t/m1", "value": "a", "modifiedIndex": 4, "createdIndex": 4},
        {"key": "/t/m2", "value": "b", "modifiedIndex": 5, "createdIndex": 5},
        {"key": "/t/sub", "dir": True, "modifiedIndex": 7, "createdIndex": 7},
    ]
    assert tok.children is not None and tok.children["_state"].is_hidden
    assert not tok.children["m1"].is_hidden


def test_walk_lists_parents_first() -> None:
    tok = make_tree().children["t"]  # type: ignore[index]
    paths = [n.path for n in tok.walk()]
    assert paths[0] == "/t"
    assert paths.index("/t/sub") < paths.index("/t/sub/leaf")
    assert sorted(paths) == ["/t", "/t/_state", "/t/m1", "/t/m2", "/t/sub", "/t/sub/leaf"]


# -- events and history ------------------------------------------------------------------------


def ev(action: str, key: str, index: int, prev: dict[str, object] | None = None) -> Event:
    return Event(action, {"key": key, "modifiedIndex": index, "createdIndex": index}, prev)


def test_event_json_order_and_created_rule() -> None:
    prev = {"key": "/k", "value": "a"}
    assert list(ev("set", "/k", 2, prev).to_json()) == ["action", "node", "prevNode"]
    assert "prevNode" not in ev("set", "/k", 2).to_json()
    assert ev("create", "/k", 1).is_created
    assert ev("set", "/k", 1).is_created
    assert not ev("set", "/k", 1, prev).is_created
    assert not ev("update", "/k", 1).is_created
    refresh = Event("update", {"key": "/k", "modifiedIndex": 3}, None, 3, True)
    assert refresh.to_json()["refresh"] is True
    assert ev("get", "/k", 4).with_index(9).etcd_index == 9


def test_history_trims_to_capacity_and_reports_the_cleared_range() -> None:
    history = EventHistory(capacity=3)
    for i in range(1, 8):
        history.add(ev("set", f"/k{i}", i))
    assert [e.index for e in history.events()] == [5, 6, 7]
    assert len(history.events()) == 3
    with pytest.raises(EtcdError) as err:
        history.scan("/k4", False, 4)
    assert (err.value.code, err.value.cause) == (
        401,
        "the requested history has been cleared [5/4]",
    )
    assert history.scan("/k6", False, 5) is not None
    assert history.scan("/k6", False, 5).index == 6  # type: ignore[union-attr]
    assert history.scan("/k6", False, 8) is None  # future


def test_history_start_and_last_index_are_the_windows() -> None:
    history = EventHistory(capacity=3)
    assert (history.start_index, history.last_index) == (0, 0)
    for i in range(1, 8):
        history.add(ev("set", f"/k{i}", i))
        window = history.events()
        assert (history.start_index, history.last_index) == (window[0].index, i)


def test_history_scan_skips_refresh_events_and_respects_gaps() -> None:
    history = EventHistory()
    history.add(ev("set", "/k", 1))
    history.add(Event("set", {"key": "/k", "modifiedIndex": 2}, None, 2, True))
    history.add(ev("set", "/k", 5))  # a gap: indexes spent without events
    found = history.scan("/k", False, 2)
    assert found is not None and found.index == 5
    found = history.scan("/k", False, 3)
    assert found is not None and found.index == 5


# -- TTL heap ----------------------------------------------------------------------------------


def test_ttl_heap_orders_by_expiry_and_handles_moves_and_removals() -> None:
    heap = TTLKeyHeap()
    nodes = {name: Node(f"/{name}", 1, None, expire_ns=T0 + at * S) for name, at in
             [("c", 30), ("a", 10), ("b", 20), ("d", 40)]}  # fmt: skip
    for n in nodes.values():
        heap.push(n)
    assert len(heap) == 4
    assert heap.next_expiry() == T0 + 10 * S
    nodes["a"].expire_ns = T0 + 35 * S
    heap.push(nodes["a"])  # moved later
    heap.remove(nodes["c"])
    assert len(heap) == 3
    order = []
    while (n := heap.pop()) is not None:
        order.append(n.path)
    assert order == ["/b", "/a", "/d"]
    assert heap.top() is None and heap.next_expiry() is None and len(heap) == 0


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [(100, 404), (101, 412), (102, 403), (104, 400), (105, 412), (107, 400), (108, 403),
     (110, 401), (202, 400), (209, 400), (300, 500), (301, 500), (401, 400)],
)  # fmt: skip
def test_error_status_table(code: int, status: int) -> None:
    assert EtcdError(code).status == status


def test_error_json_order_and_omitted_cause() -> None:
    err = EtcdError(errors.NODE_EXIST, "/k", 7)
    assert list(err.to_json()) == ["errorCode", "message", "cause", "index"]
    assert err.to_json() == {
        "errorCode": 105,
        "message": "Key already exists",
        "cause": "/k",
        "index": 7,
    }
    assert EtcdError(errors.NOT_FILE, "", 3).to_json() == {
        "errorCode": 102,
        "message": "Not a file",
        "index": 3,
    }
    assert EtcdError(errors.TTL_NAN).message == "The given TTL in POST form is not a number"
