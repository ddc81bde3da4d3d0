"""The documentation's samples run as tests; none of them may skip in CI.

A sample that needs a binary (``etcd``) skips with a reason where it is missing; with
``ETCD_DISCOVERY_REQUIRE_REAL=1`` (set by ``.ci/run``) such a skip fails instead, so a
sample cannot quietly stop running. Runs against a real service (``--etcd-discovery-url``)
are the exception: there the samples that need the fake's insides skip by design.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    required = os.environ.get("ETCD_DISCOVERY_REQUIRE_REAL", "").strip().lower()
    # Against a real service (--etcd-discovery-url) the fake-only samples skip by design.
    real_mode = bool(item.config.getoption("etcd_discovery_url", None))
    if report.skipped and required not in ("", "0", "false", "no") and not real_mode:
        report.outcome = "failed"
        report.longrepr = f"a documentation sample skipped in CI: {report.longrepr}"
    return report
