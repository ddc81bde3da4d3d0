"""Loading the plugin must not load the fake: unrelated test runs stay as fast as before."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_etcd_discovery import plugin
from pytest_etcd_discovery._constants import PROFILE_NAMES
from pytest_etcd_discovery._service.profiles import PROFILES

HEAVY = ("werkzeug", "requests", "responses", "pytest_etcd_discovery._service.app")


def test_loading_the_plugin_imports_no_http_stack() -> None:
    code = (
        "import sys, pytest_etcd_discovery.plugin, pytest_etcd_discovery as p;"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


#: What an unrelated pytest run loads of ours: the plugin, what it reads its settings
#: with, and the guard (the socket patches and the host map): no service, no store.
LIGHT = sorted(
    [
        "pytest_etcd_discovery",
        "pytest_etcd_discovery._constants",
        "pytest_etcd_discovery._errors",
        "pytest_etcd_discovery._marker",
        "pytest_etcd_discovery._run",
        "pytest_etcd_discovery._settings",
        "pytest_etcd_discovery._transport",
        "pytest_etcd_discovery._transport.client_cover",
        "pytest_etcd_discovery._transport.hosts",
        "pytest_etcd_discovery._urls",
        "pytest_etcd_discovery.plugin",
    ]
)


def test_an_unrelated_run_loads_only_the_plugin_and_the_guard(pytester: pytest.Pytester) -> None:
    """Neither the service nor the store loads in a run whose tests never use the fake
    (they cost ~50 ms); the guard that fails closed is on all the same."""
    pytester.makepyfile(
        f"""
        import socket, sys

        def test_unrelated():
            from pytest_etcd_discovery._transport import client_cover
            assert socket.getaddrinfo is client_cover._getaddrinfo  # the guard is on
            mods = sorted(m for m in sys.modules if m.startswith("pytest_etcd_discovery"))
            print("MODULES", " ".join(mods))
            print("HEAVY", sorted(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    # Other installed plugins may load what we must not (pytest-httpserver, from the bench
    # extra, imports werkzeug): blocked, so that what is measured is this plugin alone.
    result = pytester.runpytest_subprocess(
        "-s", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:pytest_httpserver"
    )
    result.assert_outcomes(passed=1)
    # With -s the first print follows the file name on its line.
    modules = next(line for line in result.outlines if "MODULES " in line)
    assert modules.split("MODULES ", 1)[1].split() == LIGHT
    assert "HEAVY []" in result.outlines


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
        "import sys, pytest_etcd_discovery.__main__, pytest_etcd_discovery._service.faults,"
        " pytest_etcd_discovery._service.app;"
        "print(sorted(m for m in ('requests', 'urllib3', 'responses') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_internals_the_top_used_to_export_still_load_with_a_warning() -> None:
    import pytest_etcd_discovery as package
    from pytest_etcd_discovery._v2store.store import Store

    with pytest.warns(
        DeprecationWarning, match=r"import it from pytest_etcd_discovery\._v2store\.store"
    ):
        assert package.Store is Store
    assert "Store" not in package.__all__
    with pytest.raises(AttributeError):
        package.NoSuchThing  # noqa: B018
