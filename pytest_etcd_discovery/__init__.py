"""pytest-etcd-discovery: a faithful fake of the etcd discovery service for pytest.

The fake imitates discovery.etcd.io closely enough that real ``etcd`` binaries
bootstrap clusters through it. Its parts:

- :class:`Store`: an etcd-v2-like store (index, TTLs, events, watches) on a clock;
- :class:`DiscoveryService`: the service, in either profile, with one entry point
  (``handle(ServiceRequest) -> Reply``); :class:`DiscoveryApp`: the same as a WSGI app;
- :class:`DiscoveryServer`: the app on a loopback socket;
- :class:`EtcdDiscovery`: what the ``etcd_discovery`` fixture hands a test;
- :class:`DiscoveryCluster`: real etcd members bootstrapping through a discovery URL;
- :func:`fake_discovery`: the fake outside pytest (``with``, function and TestCase
  decorator), handing out the same :class:`EtcdDiscovery`;
- :class:`DiscoveryFront`: the TLS + proxy front that answers ``https://discovery.etcd.io``
  itself; :class:`DiscoveryHostGuardError`: a discovery host asked for in a way the fake
  cannot serve;
- :class:`Error`: the base of every error the package raises.

Names load on first use (PEP 562), so that pytest loading the plugin does not import
werkzeug, requests and responses for test runs that never use the fake.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import Error
    from ._etcd import etcd_member_id
    from .expectations import CallList
    from .fake import fake_discovery
    from .handle import ClusterFullError, DiscoveryError, EtcdDiscovery, Member, TokenView
    from .real.cluster import DiscoveryCluster, EtcdMember
    from .service.app import DiscoveryApp
    from .service.discovery import DiscoveryService
    from .service.faults import FaultPlan, FaultRule
    from .service.http import Reply, ServiceRequest
    from .service.journal import Call
    from .service.profiles import PROFILES, Profile
    from .transport.clients import DiscoveryHostGuardError
    from .transport.proxy import DiscoveryFront
    from .transport.server import DiscoveryServer, ServerError
    from .v2store.clock import Clock, ControllableClock, SystemClock
    from .v2store.errors import EtcdError
    from .v2store.events import Event
    from .v2store.store import Store
    from .v2store.watchers import Watcher

_WHERE = {
    "Call": "service.journal",
    "CallList": "expectations",
    "DiscoveryApp": "service.app",
    "DiscoveryService": "service.discovery",
    "Reply": "service.http",
    "ServiceRequest": "service.http",
    "Clock": "v2store.clock",
    "ControllableClock": "v2store.clock",
    "SystemClock": "v2store.clock",
    "DiscoveryCluster": "real.cluster",
    "EtcdMember": "real.cluster",
    "etcd_member_id": "_etcd",
    "EtcdError": "v2store.errors",
    "Error": "_errors",
    "Event": "v2store.events",
    "FaultPlan": "service.faults",
    "FaultRule": "service.faults",
    "ClusterFullError": "handle",
    "DiscoveryError": "handle",
    "EtcdDiscovery": "handle",
    "Member": "handle",
    "TokenView": "handle",
    "PROFILES": "service.profiles",
    "Profile": "service.profiles",
    "DiscoveryServer": "transport.server",
    "DiscoveryFront": "transport.proxy",
    "DiscoveryHostGuardError": "transport.clients",
    "fake_discovery": "fake",
    "ServerError": "transport.server",
    "Store": "v2store.store",
    "Watcher": "v2store.watchers",
}

__all__ = [
    "PROFILES",
    "Call",
    "CallList",
    "Clock",
    "ClusterFullError",
    "ControllableClock",
    "DiscoveryApp",
    "DiscoveryCluster",
    "DiscoveryError",
    "DiscoveryFront",
    "DiscoveryHostGuardError",
    "DiscoveryServer",
    "DiscoveryService",
    "Error",
    "EtcdDiscovery",
    "EtcdError",
    "EtcdMember",
    "Event",
    "FaultPlan",
    "FaultRule",
    "Member",
    "Profile",
    "Reply",
    "ServerError",
    "ServiceRequest",
    "Store",
    "SystemClock",
    "TokenView",
    "Watcher",
    "etcd_member_id",
    "fake_discovery",
]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
