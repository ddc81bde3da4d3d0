"""Loading the plugin must not load the fake: unrelated test runs stay as fast as before."""

from __future__ import annotations

import subprocess
import sys

from pytest_etcd_discovery import plugin
from pytest_etcd_discovery.constants import PROFILE_NAMES
from pytest_etcd_discovery.service.profiles import PROFILES

HEAVY = ("werkzeug", "requests", "responses", "pytest_etcd_discovery.service.app")


def test_loading_the_plugin_imports_no_http_stack() -> None:
    code = (
        "import sys, pytest_etcd_discovery.plugin, pytest_etcd_discovery as p;"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_loading_the_plugin_imports_only_the_leaf_constants() -> None:
    """Neither the service nor the store loads with the plugin (they cost ~50 ms): an
    unrelated pytest run imports the plugin module, the package and ``constants`` only."""
    code = (
        "import sys, pytest_etcd_discovery.plugin;"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('pytest_etcd_discovery'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == [
        "pytest_etcd_discovery",
        "pytest_etcd_discovery.constants",
        "pytest_etcd_discovery.plugin",
    ]


def test_the_plugins_profile_names_are_the_services_profiles() -> None:
    """The plugin validates profile names from ``constants`` without loading the service;
    they must be the service's profiles, in the same order (the default first)."""
    assert tuple(PROFILES) == PROFILE_NAMES
    assert tuple(PROFILES) == plugin.PROFILES


def test_public_names_load_on_first_use() -> None:
    import pytest_etcd_discovery as package

    for name in package.__all__:
        assert getattr(package, name) is not None
    assert set(package.__all__) <= set(dir(package))


def test_the_service_and_the_command_load_no_http_client() -> None:
    """The service (faults included) and the standalone command import neither
    ``requests`` nor ``urllib3`` nor ``responses``: only in-process interception does."""
    code = (
        "import sys, pytest_etcd_discovery.__main__, pytest_etcd_discovery.service.faults,"
        " pytest_etcd_discovery.service.app;"
        "print(sorted(m for m in ('requests', 'urllib3', 'responses') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
