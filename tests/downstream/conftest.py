"""A downstream suite, written as a new user would: code that calls the public discovery
service from every scope and with every client.  tests/test_fail_closed.py runs it in a
network namespace with only loopback, three ways (no flag, the flag, the marker), and
checks what it recorded: each call served by the fake or refused with the plugin's error.

Not collected by the package's own run (tests/conftest.py ignores this folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import pytest
from record import attempt, fetch_urllib

#: ``marker``: every test carries ``@pytest.mark.etcd_discovery`` (set by the runner).
MODE = os.environ.get("DOWNSTREAM_MODE", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if MODE == "marker":
        for item in items:
            item.add_marker(pytest.mark.etcd_discovery)


@pytest.fixture(scope="session")
def session_token() -> str | None:
    """Provisioning done once for the whole suite, as the code under test does it."""
    return attempt("session fixture", fetch_urllib)


@pytest.fixture(scope="session", autouse=True)
def _summary() -> Iterator[None]:
    yield
    path = os.environ.get("DOWNSTREAM_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"label": "end", "outcome": "end"}) + "\n")


Fetch = Callable[[], str]
