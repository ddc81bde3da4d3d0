"""One error base: every exception class the package defines derives from ``Error``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import socket

import pytest

import pytest_etcd_discovery
from pytest_etcd_discovery import ClusterFullError, DiscoveryError, Error


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the package, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    modules = pkgutil.walk_packages(pytest_etcd_discovery.__path__, "pytest_etcd_discovery.")
    for info in modules:
        module = importlib.import_module(info.name)  # __main__ runs nothing on import
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_derives_from_error() -> None:
    classes = _exception_classes()
    # The walk reaches every layer (13 errors had no common base before Error).
    assert len(classes) >= 14, sorted(classes)
    assert [name for name, cls in classes.items() if not issubclass(cls, Error)] == []


STANDARD_BASES = [
    ("_v2store.errors", "EtcdError", Exception),
    ("_real.cluster", "ClusterError", RuntimeError),
    ("_real.processes", "ProcessError", RuntimeError),
    ("_service.faults", "FaultError", ValueError),
    ("_service.forms", "FormError", ValueError),
    ("_service.app", "ConnectionDropped", ConnectionAbortedError),
    ("_transport.client_cover", "DiscoveryHostGuardError", socket.gaierror),
    ("_transport.forward", "ForwardingError", ConnectionError),
    ("_transport.server", "ServerError", RuntimeError),
    ("_etcd_rules", "MemberSpecError", ValueError),
]


@pytest.mark.parametrize(("module", "name", "base"), STANDARD_BASES)
def test_errors_keep_their_standard_base(module: str, name: str, base: type[BaseException]) -> None:
    cls = getattr(importlib.import_module(f"pytest_etcd_discovery.{module}"), name)
    assert issubclass(cls, Error) and issubclass(cls, base)


def test_error_is_exported_from_the_package_top() -> None:
    assert "Error" in pytest_etcd_discovery.__all__
    assert pytest_etcd_discovery.Error is Error


def test_cluster_full_is_a_discovery_error_with_its_own_constructor() -> None:
    err = ClusterFullError("http://d/t", 2, [])
    assert isinstance(err, DiscoveryError)
    assert str(err) == "discovery: cluster is full (2 of 2: ) at http://d/t"
    # The service refused nothing: the token's listing answered 200, with no etcd error.
    assert (err.method, err.url, err.status, err.error, err.error_code) == (
        "GET",
        "http://d/t",
        200,
        None,
        None,
    )
    assert (err.token_url, err.size, err.members) == ("http://d/t", 2, ())
