"""The control API's verification endpoints (``/_fake/faults/<id>``, ``/_fake/calls/count``,
server-side journal filters, ``/_fake/health``), on the fixture's live server over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from pytest_etcd_discovery import EtcdDiscovery, FaultPlan, FaultRule

WAIT = 10.0


def _until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` turns true within :data:`WAIT` (asked every 10 ms)."""
    stop = threading.Event()
    timer = threading.Timer(WAIT, stop.set)
    timer.start()
    try:
        while not condition():
            if stop.wait(0.01):
                return condition()
        return True
    finally:
        timer.cancel()


class Control:
    """``/_fake/`` of one fake: JSON in, (status, JSON) out."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def call(
        self, method: str, path: str, body: Any = None, *, raw: str | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        reply = self.session.request(method, f"{self.url}/_fake/{path}", data=data, timeout=WAIT)
        assert reply.headers["Content-Type"] == "application/json", reply.text
        return reply.status_code, reply.json()

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.call(method, path, body)
        assert status in (200, 201), data
        return data


@pytest.fixture
def control(etcd_discovery: EtcdDiscovery) -> Iterator[Control]:
    ctl = Control(etcd_discovery.url)
    yield ctl
    ctl.session.close()


# -- fault rules by id -------------------------------------------------------------------


def test_fault_rules_have_ids_to_get_and_delete_one_by(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    first = control.ok("POST", "faults", {"status": 503, "route": "new", "times": 1})
    second = control.ok("POST", "faults", {"status": 500, "route": "health"})
    assert isinstance(first["id"], int) and first["id"] > 0
    assert second["id"] > first["id"]
    requests.get(f"{etcd_discovery.url}/new", timeout=WAIT)
    requests.get(f"{etcd_discovery.url}/new", timeout=WAIT)
    listed = control.ok("GET", "faults")["faults"]
    assert [(r["id"], r["seen"], r["fired"]) for r in listed] == [
        (first["id"], 2, 1),
        (second["id"], 0, 0),
    ]
    one = control.ok("GET", f"faults/{first['id']}")
    assert one == listed[0]
    # Deleting one leaves the other, and the answer is the rule as it was.
    assert control.ok("DELETE", f"faults/{first['id']}") == {"removed": listed[0]}
    assert [r["id"] for r in control.ok("GET", "faults")["faults"]] == [second["id"]]
    status, error = control.call("GET", f"faults/{first['id']}")
    assert status == 404
    assert error["message"].startswith(f"no fault rule with id '{first['id']}'")
    assert requests.get(f"{etcd_discovery.url}/health", timeout=WAIT).status_code == 500


@pytest.mark.parametrize("bad", ["0", "999999999", "abc", "-1", "1.0", "9" * 5000, "%C3%A9"])
def test_an_unknown_fault_id_answers_404_and_changes_nothing(control: Control, bad: str) -> None:
    control.ok("POST", "faults", {"status": 503})
    before = control.ok("GET", "faults")
    for method in ("GET", "DELETE"):
        status, error = control.call(method, f"faults/{bad}")
        assert status == 404, (method, error)
        assert "no fault rule with id" in error["message"]
    assert control.ok("GET", "faults") == before


def test_the_python_plan_shows_the_same_ids_and_counts(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    rule = etcd_discovery.faults.fail(502, route="health", times=1)
    over_http = control.ok("POST", "faults", {"action": "drop", "route": "new"})
    requests.get(f"{etcd_discovery.url}/health", timeout=WAIT)
    listed = control.ok("GET", "faults")["faults"]
    assert [r["id"] for r in listed] == [rule.id, over_http["id"]]
    assert listed[0] == rule.as_dict()
    assert (rule.seen, rule.fired, rule.exhausted) == (1, 1, True)
    added = etcd_discovery.faults.get(over_http["id"])
    assert isinstance(added, FaultRule) and added.action == "drop"
    # Removing by id from Python is seen over HTTP, and a second removal is a no-op.
    assert etcd_discovery.faults.remove(over_http["id"]) is True
    assert etcd_discovery.faults.remove(over_http["id"]) is False
    assert control.call("GET", f"faults/{over_http['id']}")[0] == 404


def test_rule_ids_are_unique_and_not_part_of_equality() -> None:
    one, two = FaultRule(status=503), FaultRule(status=503)
    assert one.id != two.id and one == two
    plan = FaultPlan([one, two])
    # remove() takes the rule itself, not the first rule equal to it.
    assert plan.remove(two) is True
    assert plan.rules == [one] and plan.rules[0] is one


def test_deleting_a_delay_rule_releases_the_requests_it_holds(
    control: Control, etcd_discovery: EtcdDiscovery
) -> None:
    rule = control.ok("POST", "faults", {"action": "delay", "delay": 3600, "route": "health"})
    answered = threading.Event()
    statuses: list[int] = []

    def ask() -> None:
        statuses.append(requests.get(f"{etcd_discovery.url}/health", timeout=60).status_code)
        answered.set()

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    # The request is held once the rule has fired.
    assert _until(lambda: control.ok("GET", f"faults/{rule['id']}")["fired"] == 1)
    assert not answered.is_set()
    control.ok("DELETE", f"faults/{rule['id']}")
    assert answered.wait(WAIT), "the delayed request was not released"
    assert statuses == [200]
