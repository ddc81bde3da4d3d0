"""Every client, from a plain test and from a test that asks for the fixture."""

from __future__ import annotations

import pytest
from record import CLIENTS, attempt


@pytest.mark.parametrize("client", list(CLIENTS))
def test_plain(client: str) -> None:
    attempt(f"plain test: {client}", CLIENTS[client])


@pytest.mark.parametrize("client", list(CLIENTS))
def test_with_fixture(client: str, etcd_discovery: object) -> None:
    attempt(f"fixture test: {client}", CLIENTS[client])
