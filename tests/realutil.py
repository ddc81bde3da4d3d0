"""Helpers for tests that need the real etcd / discovery.etcd.io binaries.

Such tests skip with a reason starting with :data:`SKIP_PREFIX` when a binary is absent.
With ``ETCD_DISCOVERY_REQUIRE_REAL=1`` in the environment (CI machines that do have the
binaries) the skip becomes a failure, so a broken install cannot pass silently.
"""

from __future__ import annotations

import os

import pytest

from pytest_etcd_discovery._real.processes import missing_binaries, real_stack_missing

REQUIRE_REAL_ENV = "ETCD_DISCOVERY_REQUIRE_REAL"
SKIP_PREFIX = "real binaries missing"
#: Appended to the reason when a skip is turned into a failure.
FAIL_SUFFIX = f"[{REQUIRE_REAL_ENV}=1 turns this skip into a failure]"
#: The binaries behind the real discovery service.
REAL_STACK = ("etcd", "discovery.etcd.io")


def real_required() -> bool:
    """Whether ``ETCD_DISCOVERY_REQUIRE_REAL`` asks for the real binaries to be present."""
    return os.environ.get(REQUIRE_REAL_ENV, "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when the real binaries are required."""
    __tracebackhide__ = True
    if real_required():
        pytest.fail(f"{reason} {FAIL_SUFFIX}", pytrace=False)
    pytest.skip(reason)


def require_real(*names: str) -> None:
    """Skip the calling test (or fail, see module doc) unless every binary is installed.

    Without arguments the full real stack is required: etcd, discovery.etcd.io and the
    latter's config file.
    """
    __tracebackhide__ = True
    reason = missing_binaries(*names) if names else real_stack_missing()
    if reason is not None:
        skip_or_fail(reason)


#: The name the preamble uses for the same helper.
require_binaries = require_real


def real_skip_reason(longrepr: object) -> str | None:
    """The reason of a skip report if it is a "real binaries missing" skip, else ``None``.

    A skip report's ``longrepr`` is ``(path, lineno, "Skipped: <reason>")``.
    """
    if not isinstance(longrepr, tuple) or len(longrepr) != 3:
        return None
    message = str(longrepr[2])
    reason = message.removeprefix("Skipped: ")
    return reason if reason.startswith(SKIP_PREFIX) else None
