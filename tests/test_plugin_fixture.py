"""The EtcdDiscovery helper's pieces, without pytester: value formats, errors, views."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_etcd_discovery._etcd_discovery import (
    ClusterFullError,
    DiscoveryError,
    EtcdDiscovery,
    Member,
    TokenView,
    etcd_member_value,
)
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.store import Store


@pytest.fixture
def disco() -> Iterator[EtcdDiscovery]:
    clock = ControllableClock(frozen=True)
    with DiscoveryServer() as server:
        server.app.reset(Store(clock))
        yield EtcdDiscovery(server.url, app=server.app, server=server, clock=clock)


def test_member_value_is_sorted_like_urlsmap_string() -> None:
    value = etcd_member_value("n", ["http://b:2380", " http://a:2380"])
    assert value == "n=http://a:2380,n=http://b:2380"


def test_member_views_of_both_eras() -> None:
    v34 = Member.from_node(
        {
            "key": "/_etcd/registry/t/8e9e05c52164694d",
            "value": "infra0=http://10.0.0.1:2380,infra0=http://10.0.0.9:2380",
            "createdIndex": 7,
            "modifiedIndex": 7,
        }
    )
    assert (v34.key, v34.id) == ("/_etcd/registry/t/8e9e05c52164694d", "8e9e05c52164694d")
    assert (v34.name, v34.ttl) == ("infra0", None)
    assert v34.peer_urls == ["http://10.0.0.1:2380", "http://10.0.0.9:2380"]
    v04 = Member.from_node(
        {"key": "/t/core-1", "value": "http://10.0.0.2:7001", "ttl": 5, "createdIndex": 3}
    )
    assert (v04.name, v04.peer_urls, v04.ttl, v04.modified_index) == (
        "core-1",
        ["http://10.0.0.2:7001"],
        5,
        0,
    )


def test_discovery_error_decodes_etcd_json_and_keeps_plain_text() -> None:
    err = DiscoveryError("PUT", "u", 412, '{"errorCode":105,"message":"Key already exists"}\n')
    assert (err.status, err.error_code) == (412, 105)
    plain = DiscoveryError("GET", "u", 400, "unable to GET token")
    assert (plain.error, plain.error_code) == (None, None)
    assert str(plain) == "GET u -> 400: unable to GET token"


def test_token_view_properties() -> None:
    member = Member("a", "a=http://x:1", 2, 2)
    view = TokenView("http://h/0123abc", 1, (member,), None, 2)
    assert (view.token, view.full, view.names) == ("0123abc", True, ["a"])
    assert not TokenView("http://h/t", None, (member,), None, 2).full


def test_token_view_reads_what_was_written(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(2)
    disco.register_v04(token_url, "z", "http://10.0.0.9:7001")
    disco.register(token_url, "a", "http://10.0.0.1:2380")
    disco.clock.advance(100.5)

    view = disco.token(token_url)

    assert (view.size, view.state, view.full) == (2, "started", True)
    assert view.names == ["z", "a"]
    assert view.members[0].ttl == 604800 - 100  # ceil(604699.5)
    assert view.index == disco.app.store.index
    with pytest.raises(ClusterFullError):
        disco.register(token_url, "b", "http://10.0.0.2:2380")
    with pytest.raises(DiscoveryError) as missing:
        disco.token(disco.token_url("0" * 32))
    assert missing.value.error_code == 100


def test_seeding_stays_out_of_the_journal(disco: EtcdDiscovery) -> None:
    token_url = disco.new_token(1)
    disco.register(token_url, "a", ["http://10.0.0.1:2380"])
    disco.token(token_url)

    assert disco.calls == []
    assert {c.transport for c in disco.app.calls} == {"fixture"}
    assert disco.created_tokens == [token_url]


def test_register_needs_a_peer_url(disco: EtcdDiscovery) -> None:
    with pytest.raises(ValueError):
        disco.register(disco.new_token(), "a", [])
