"""Replay the recorded transcripts of today's public service against the fake.

``record.py`` ran the scenarios of ``ds_scenarios`` against a build of
etcd-io/discoveryserver in front of etcd 3.4 and stored the normalised transcripts in
``discoveryserver/``. Here the same scenarios run against the fake's ``discoveryserver``
profile; the normalised transcripts must be equal, step for step.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from conformance_harness import Side, diff, run_scenario
from ds_scenarios import SCENARIOS

from pytest_etcd_discovery._transport.server import DiscoveryServer

RECORDED = Path(__file__).resolve().parent / "discoveryserver"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text("utf-8"))
    return document


def test_every_scenario_is_recorded() -> None:
    assert sorted(p.stem for p in RECORDED.glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fake_replays_recorded_transcript(name: str, fake_ds_service: DiscoveryServer) -> None:
    recorded = load(name)
    assert recorded["scenario"] == name
    app = fake_ds_service.app
    side = Side("fake", fake_ds_service.url, lambda: app.store.watcher_count, etcd_replies=False)
    steps = run_scenario(side, SCENARIOS[name])
    # Through JSON, as the recording went (tuples become lists and so on).
    steps = json.loads(json.dumps(steps))
    if steps != recorded["steps"]:
        pairs = itertools.zip_longest(recorded["steps"], steps)
        divergent = sum(a != b for a, b in pairs)
        pytest.fail(
            f"{divergent} divergent steps (recorded from {recorded['recorded_from']}):\n"
            + diff("recorded", recorded["steps"], "fake", steps),
            pytrace=False,
        )
