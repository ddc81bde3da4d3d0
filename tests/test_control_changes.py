"""``GET /_fake/changes``, the dashboard's cheap poll, and the token listing's expired
members, on the fixture's live server over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from unitutil import WAIT, wait_until

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._v2store.events import KEY_LOG


class Poller:
    """A dashboard's view of the fake: polls ``changes`` with the cursor it was given."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.cursor: str | None = None
        self.size = 0  # bytes of the last answer

    def poll(self, **query: Any) -> dict[str, Any]:
        if self.cursor is not None:
            query.setdefault("since", self.cursor)
        reply = self.session.get(f"{self.url}/_fake/changes", params=query, timeout=WAIT)
        assert reply.status_code == 200, reply.text
        self.size = len(reply.content)
        data: dict[str, Any] = reply.json()
        self.cursor = data["cursor"]
        return data

    def post(self, path: str, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else None
        reply = self.session.post(f"{self.url}/_fake/{path}", data=data, timeout=WAIT)
        assert reply.status_code in (200, 201), reply.text
        return reply.json()


@pytest.fixture
def poller(etcd_discovery: EtcdDiscovery) -> Iterator[Poller]:
    p = Poller(etcd_discovery.url)
    yield p
    p.session.close()


def _names(change: dict[str, Any]) -> list[str]:
    return [t["token"] for t in change["tokens"]]


def test_the_first_poll_has_everything_and_an_idle_one_only_the_clock(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    first = poller.post("tokens", {"size": 3, "members": ["infra0"]})["token"]
    second = poller.post("tokens", {"size": 1})["token"]
    rule = poller.post("faults", {"status": 503, "route": "new", "times": 1})
    assert requests.get(f"{etcd_discovery.url}/new", timeout=WAIT).status_code == 503

    data = poller.poll()
    assert data["tokens"]["full"] is True
    assert _names(data["tokens"]) == [first, second]  # oldest first, as GET /_fake/tokens
    listing = requests.get(f"{etcd_discovery.url}/_fake/tokens", timeout=WAIT).json()
    assert data["tokens"]["tokens"] == listing["tokens"]
    assert [(f["id"], f["fired"]) for f in data["faults"]] == [(rule["id"], 1)]
    assert data["calls"]["full"] is True
    assert [(c["number"], c["path"], c["status"]) for c in data["calls"]["calls"]] == [
        (0, "/new", 503)
    ]
    assert data["calls"]["next"] == 1
    assert data["clock"]["controllable"] is True

    idle = poller.poll()
    assert set(idle) == {"clock", "index", "cursor"}, idle
    assert idle["index"] == data["index"]
    assert poller.size < 300


def test_a_change_sends_only_the_tokens_it_touched(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    tokens = [poller.post("tokens", {"size": 2})["token"] for _ in range(5)]
    created = [t["createdIndex"] for t in poller.poll()["tokens"]["tokens"]]
    url = f"{etcd_discovery.url}/{tokens[2]}"
    assert requests.put(f"{url}/infra1", data={"value": "http://10.0.0.2:7001"}).status_code == 201
    data = poller.poll()
    assert data["tokens"]["full"] is False
    assert _names(data["tokens"]) == [tokens[2]]
    assert [m["name"] for m in data["tokens"]["tokens"][0]["members"]] == ["infra1"]
    assert data["tokens"]["removed"] == []
    assert [c["path"] for c in data["calls"]["calls"]] == [f"/{tokens[2]}/infra1"]
    assert "faults" not in data  # no rule, no count moved
    # A new token comes with its createdIndex (the page keeps the oldest first).
    newest = poller.post("tokens", {"size": 3})["token"]
    data = poller.poll()
    assert _names(data["tokens"]) == [newest]
    assert data["tokens"]["tokens"][0]["createdIndex"] > max(created)


def test_a_deleted_token_is_listed_as_removed(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    keep, gone = (poller.post("tokens")["token"] for _ in range(2))
    poller.poll()
    etcd_discovery.app.store.delete(etcd_discovery.app.token_key(gone), dir=True, recursive=True)
    data = poller.poll()
    assert data["tokens"] == {"full": False, "tokens": [], "removed": [gone]}
    assert etcd_discovery.tokens() == [keep]


def test_an_expired_member_is_listed_as_expired_until_it_registers_again(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    poller.post("clock/freeze")
    token = poller.post(
        "tokens", {"size": 3, "members": [{"name": "old", "style": "v0.4"}, "infra1"]}
    )["token"]
    data = poller.poll()
    (view,) = data["tokens"]["tokens"]
    old = next(m for m in view["members"] if m["name"] == "old")
    # The expiry in seconds of the fake's clock, 7 days ahead: what the page counts down to.
    assert old["ttl"] == 604800
    assert old["expires"] == pytest.approx(data["clock"]["now"] + 604800, abs=1e-3)
    assert view["expired"] == []

    poller.post("clock/advance", {"seconds": 604801})
    data = poller.poll()
    (view,) = data["tokens"]["tokens"]
    assert [m["name"] for m in view["members"]] == ["infra1"]
    assert [(m["name"], m["key"], m["peer_urls"]) for m in view["expired"]] == [
        ("old", "old", ["http://10.0.0.1:2380"])
    ]
    assert view["expired"][0]["expiredIndex"] == data["index"]
    # The token listing says the same.
    listed = requests.get(f"{etcd_discovery.url}/_fake/tokens", timeout=WAIT).json()["tokens"]
    assert listed[0]["expired"] == view["expired"]

    # Registered again: a member, no longer expired.
    url = f"{etcd_discovery.url}/{token}/old"
    assert requests.put(url, data={"value": "http://10.0.0.9:7001", "ttl": "60"}).status_code == 201
    (view,) = poller.poll()["tokens"]["tokens"]
    assert view["expired"] == []
    assert sorted(m["name"] for m in view["members"]) == ["infra1", "old"]


def test_reset_and_restore_send_everything_again(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    token = poller.post("tokens")["token"]
    state = requests.get(f"{etcd_discovery.url}/_fake/state", timeout=WAIT).json()
    requests.get(f"{etcd_discovery.url}/health", timeout=WAIT)
    poller.poll()
    poller.post("reset")
    data = poller.poll()
    assert data["tokens"] == {"full": True, "tokens": [], "removed": []}
    assert data["calls"] == {"full": True, "calls": [], "next": 0}
    # A restore keeps the store object but not what its index meant.
    reply = requests.put(f"{etcd_discovery.url}/_fake/state", json=state, timeout=WAIT)
    assert reply.status_code == 200
    data = poller.poll()
    assert data["tokens"]["full"] is True
    assert _names(data["tokens"]) == [token]


def test_more_changes_than_the_store_remembers_send_every_token(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    token = poller.post("tokens")["token"]
    poller.poll()
    store = etcd_discovery.app.store
    for n in range(KEY_LOG + 1):
        store.set("/unrelated", str(n))  # not a token: remembered, not in the listing
    data = poller.poll()
    assert data["tokens"]["full"] is True
    assert _names(data["tokens"]) == [token]
    # Within what it remembers (more than the 1000 events watches see), a change of no
    # token sends none.
    for n in range((store.hub.history.capacity or 0) + 1):
        store.set("/unrelated", f"again {n}")
    assert "tokens" not in poller.poll()


def test_tokens_made_and_gone_between_polls_are_not_sent(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    # /health makes a token and deletes it: a poller never saw it, nothing to remove.
    kept = poller.post("tokens")["token"]
    poller.poll()
    for _ in range(3):
        assert requests.get(f"{etcd_discovery.url}/health", timeout=WAIT).status_code == 200
    data = poller.poll()
    assert "tokens" not in data
    assert [t["token"] for t in poller.poll(since="")["tokens"]["tokens"]] == [kept]


def test_a_running_call_is_sent_again_once_it_has_its_answer(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    # A delay fault holds the request: in the journal with no status until released.
    rule = poller.post("faults", {"action": "delay", "delay": 60, "route": "robots"})
    poller.poll()
    answers: list[int] = []
    held = threading.Thread(
        target=lambda: answers.append(
            requests.get(f"{etcd_discovery.url}/robots.txt", timeout=WAIT).status_code
        )
    )
    held.start()
    try:
        wait_until(lambda: len(etcd_discovery.calls) == 1, "the call is in the journal")
        data = poller.poll()
        (running,) = data["calls"]["calls"]
        assert running["status"] is None
        assert poller.cursor is not None and poller.cursor.endswith(f".{running['number']}")
        requests.get(f"{etcd_discovery.url}/new", timeout=WAIT)
        data = poller.poll()  # the new call only: the held one has nothing new to tell
        assert [c["path"] for c in data["calls"]["calls"]] == ["/new"]
        # Deleting the rule releases the request it holds.
        requests.delete(f"{etcd_discovery.url}/_fake/faults/{rule['id']}", timeout=WAIT)
    finally:
        held.join(WAIT)
    assert answers == [200]
    data = poller.poll()
    assert [(c["number"], c["status"]) for c in data["calls"]["calls"]] == [
        (running["number"], 200)
    ]
    assert poller.cursor.count(".") == 4  # nothing running any more


def test_fault_counts_that_moved_send_the_rules(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    rule = poller.post("faults", {"status": 500, "route": "health"})
    poller.poll()
    assert "faults" not in poller.poll()
    requests.get(f"{etcd_discovery.url}/health", timeout=WAIT)
    (listed,) = poller.poll()["faults"]
    assert (listed["id"], listed["seen"], listed["fired"]) == (rule["id"], 1, 1)
    requests.delete(f"{etcd_discovery.url}/_fake/faults/{rule['id']}", timeout=WAIT)
    assert poller.poll()["faults"] == []


def test_the_first_poll_sends_the_latest_calls_it_asks_for(
    poller: Poller, etcd_discovery: EtcdDiscovery
) -> None:
    for _ in range(5):
        requests.get(f"{etcd_discovery.url}/robots.txt", timeout=WAIT)
    data = poller.poll(calls=2)
    assert [c["number"] for c in data["calls"]["calls"]] == [3, 4]
    assert set(data["calls"]["calls"][0]) == {
        "number", "method", "path", "query", "status", "transport", "time", "fault"
    }  # fmt: skip
    # More new calls than asked for: the latest ones, as a fresh list.
    for _ in range(3):
        requests.get(f"{etcd_discovery.url}/robots.txt", timeout=WAIT)
    data = poller.poll(calls=2)
    assert data["calls"]["full"] is True
    assert [c["number"] for c in data["calls"]["calls"]] == [6, 7]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"since": "1.2.3"}, "since must be a cursor"),
        ({"since": "1.2.3.4.zz"}, "since must be a cursor"),
        ({"since": "1.2.3.4.ab" + ".1" * 65}, "at most 64 running calls"),
        ({"calls": "0"}, "calls must be from 1 to 1000"),
        ({"calls": "1001"}, "calls must be from 1 to 1000"),
        ({"calls": "-1"}, "calls must be a whole number"),
        ({"limit": "3"}, "unknown query fields ['limit']"),
    ],
)
def test_a_bad_changes_query_answers_400(
    etcd_discovery: EtcdDiscovery, query: dict[str, str], says: str
) -> None:
    reply = requests.get(f"{etcd_discovery.url}/_fake/changes", params=query, timeout=WAIT)
    assert reply.status_code == 400
    assert says in reply.json()["message"]
