"""pytest-etcd-discovery: a faithful fake of the etcd discovery service for pytest.

The fake imitates discovery.etcd.io closely enough that real ``etcd`` binaries
bootstrap clusters through it. Its parts:

- :class:`Store`: an etcd-v2-like store (index, TTLs, events, watches) on a clock;
- :class:`DiscoveryApp`: the service as a WSGI app, in either profile;
- :class:`DiscoveryServer`: the app on a loopback socket;
- :class:`EtcdDiscovery`: what the ``etcd_discovery`` fixture hands a test;
- :class:`DiscoveryCluster`: real etcd members bootstrapping through a discovery URL.

Names load on first use (PEP 562), so that pytest loading the plugin does not import
werkzeug, requests and responses for test runs that never use the fake.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Call, DiscoveryApp
    from .clock import Clock, ControllableClock, SystemClock
    from .cluster import DiscoveryCluster, EtcdMember, etcd_member_id
    from .errors import EtcdError
    from .events import Event
    from .faults import FaultPlan, FaultRule
    from .fixture import ClusterFullError, DiscoveryError, EtcdDiscovery, Member, TokenView
    from .profiles import PROFILES, Profile
    from .server import DiscoveryServer, ServerError
    from .store import Store
    from .watchers import Watcher

_WHERE = {
    "Call": "app",
    "DiscoveryApp": "app",
    "Clock": "clock",
    "ControllableClock": "clock",
    "SystemClock": "clock",
    "DiscoveryCluster": "cluster",
    "EtcdMember": "cluster",
    "etcd_member_id": "cluster",
    "EtcdError": "errors",
    "Event": "events",
    "FaultPlan": "faults",
    "FaultRule": "faults",
    "ClusterFullError": "fixture",
    "DiscoveryError": "fixture",
    "EtcdDiscovery": "fixture",
    "Member": "fixture",
    "TokenView": "fixture",
    "PROFILES": "profiles",
    "Profile": "profiles",
    "DiscoveryServer": "server",
    "ServerError": "server",
    "Store": "store",
    "Watcher": "watchers",
}

__all__ = [
    "PROFILES",
    "Call",
    "Clock",
    "ClusterFullError",
    "ControllableClock",
    "DiscoveryApp",
    "DiscoveryCluster",
    "DiscoveryError",
    "DiscoveryServer",
    "EtcdDiscovery",
    "EtcdError",
    "EtcdMember",
    "Event",
    "FaultPlan",
    "FaultRule",
    "Member",
    "Profile",
    "ServerError",
    "Store",
    "SystemClock",
    "TokenView",
    "Watcher",
    "etcd_member_id",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
