"""The ``discovery`` fixture: one test id per side (fake / real), each comparing the
transcript of its side with the other side's (see ``conformance_harness``).

Each scenario runs at most once per side and session; the second side's test reuses
the cached transcripts. ``ETCD_DISCOVERY_CONFORMANCE_SELFCHECK=1`` compares each side
with a second run of itself instead: a check that the normalisation is stable.
"""

from __future__ import annotations

from typing import Any

import pytest
from conformance_harness import COMPARED, Discovery, side_for


@pytest.fixture(
    params=[
        pytest.param("fake", marks=pytest.mark.fake, id="fake"),
        pytest.param("real", marks=pytest.mark.real, id="real"),
    ]
)
def discovery(request: pytest.FixtureRequest) -> Discovery:
    """The discovery service of this test's side (fake or real), with ``check``."""
    return Discovery(side_for(request, request.param), request)


@pytest.fixture(
    params=[
        pytest.param("fake", marks=pytest.mark.fake, id="fake"),
        pytest.param("real", marks=pytest.mark.real, id="real"),
    ]
)
def keys_api(request: pytest.FixtureRequest) -> Discovery:
    """The etcd v2 keys API of this test's side: real etcd's own ``/v2/keys`` (what a
    custom discovery URL points at) or the fake's ``/v2/keys`` on the same store."""
    return Discovery(side_for(request, request.param, "keys"), request)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if COMPARED:
        steps = sum(n for n, _ in COMPARED.values())
        bad = sorted(name.rsplit(".", 1)[-1] for name, (_, d) in COMPARED.items() if d)
        terminalreporter.write_line(
            f"conformance: {len(COMPARED)} scenarios, {steps} request steps compared, "
            f"{len(bad)} divergent" + (f": {', '.join(bad)}" if bad else "")
        )
