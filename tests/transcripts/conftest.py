"""Fixtures for replaying recorded transcripts of the real services against the fake."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The conformance harness (recorder, normalisation, diff) is shared with tests/conformance.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "conformance"))

from pytest_etcd_discovery.transport.server import DiscoveryServer


@pytest.fixture(scope="module")
def fake_ds_server() -> Iterator[DiscoveryServer]:
    """The fake in the ``discoveryserver`` profile, live on loopback."""
    server = DiscoveryServer(profile="discoveryserver")
    server.start()
    try:
        yield server
    finally:
        server.stop()
