"""Calls made outside any test: at import time, in module and session fixtures."""

from __future__ import annotations

import pytest
from record import attempt, fetch_requests, fetch_urllib

# Import time: collection imports this module before any fixture runs.
IMPORT_TIME_TOKEN = attempt("import time", fetch_urllib)


@pytest.fixture(scope="module")
def module_token() -> str | None:
    return attempt("module fixture", fetch_requests)


def test_module_fixture(module_token: str | None) -> None:
    pass


def test_session_fixture(session_token: str | None) -> None:
    pass
