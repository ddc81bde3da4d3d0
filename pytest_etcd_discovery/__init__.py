"""pytest-etcd-discovery: a faithful fake of the etcd discovery service for pytest.

What a test writer uses is here; everything else lives in private modules (``_service``,
``_transport``, ``_v2store``, ...), importable but free to change:

- :class:`EtcdDiscovery`: what the ``etcd_discovery`` fixtures hand a test, with its
  value types :class:`Member` and :class:`TokenView`, the journal's :class:`Call` and
  :class:`CallList`, the fault plan's :class:`FaultPlan` and :class:`FaultRule`, and its
  clock, a :class:`ControllableClock`;
- :func:`fake_discovery`: the fake outside pytest (``with``, a function, method or
  TestCase decorator), handing out the same :class:`EtcdDiscovery`;
- :class:`DiscoveryServer`: the fake on a loopback port, without pytest;
  :class:`DiscoveryFront`: its TLS + proxy front at ``https://discovery.etcd.io``;
- :class:`DiscoveryCluster` and :class:`EtcdMember`: real etcd members bootstrapping
  through a discovery URL; :func:`etcd_member_id` and :func:`etcd_member_value`: what
  etcd 3.4 registers;
- :class:`Error`, the base of every error the package raises, and the ones a test meets:
  :class:`DiscoveryError`, :class:`ClusterFullError`, :class:`DiscoveryHostGuardError`,
  :class:`EtcdError`, :class:`ServerError`;
- :data:`PROFILES`: the profiles' names.

Names load on first use (PEP 562), so that pytest loading the plugin does not import
werkzeug, requests and responses for test runs that never use the fake.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import Error
    from ._etcd_discovery import EtcdDiscovery
    from ._etcd_rules import etcd_member_id, etcd_member_value
    from ._expectations import CallList
    from ._fake import fake_discovery
    from ._model import ClusterFullError, DiscoveryError, Member, TokenView
    from ._real.cluster import DiscoveryCluster, EtcdMember
    from ._service.faults import FaultPlan, FaultRule
    from ._service.journal import Call
    from ._service.profiles import PROFILES
    from ._transport.client_cover import DiscoveryHostGuardError
    from ._transport.proxy import DiscoveryFront
    from ._transport.server import DiscoveryServer, ServerError
    from ._v2store.clock import ControllableClock
    from ._v2store.errors import EtcdError

#: The public names and the private module each lives in.
_WHERE = {
    "Call": "_service.journal",
    "CallList": "_expectations",
    "ClusterFullError": "_model",
    "ControllableClock": "_v2store.clock",
    "DiscoveryCluster": "_real.cluster",
    "DiscoveryError": "_model",
    "DiscoveryFront": "_transport.proxy",
    "DiscoveryHostGuardError": "_transport.client_cover",
    "DiscoveryServer": "_transport.server",
    "Error": "_errors",
    "EtcdDiscovery": "_etcd_discovery",
    "EtcdError": "_v2store.errors",
    "EtcdMember": "_real.cluster",
    "FaultPlan": "_service.faults",
    "FaultRule": "_service.faults",
    "Member": "_model",
    "PROFILES": "_service.profiles",
    "ServerError": "_transport.server",
    "TokenView": "_model",
    "etcd_member_id": "_etcd_rules",
    "etcd_member_value": "_etcd_rules",
    "fake_discovery": "_fake",
}

#: Internals the package top used to export (0.2.0): still found here, with a warning
#: that names the module they live in.
_MOVED = {
    "Clock": "_v2store.clock",
    "DiscoveryApp": "_service.app",
    "DiscoveryService": "_service.discovery",
    "Event": "_v2store.events",
    "Profile": "_service.profiles",
    "Reply": "_service.messages",
    "ServiceRequest": "_service.messages",
    "Store": "_v2store.store",
    "SystemClock": "_v2store.clock",
    "Watcher": "_v2store.watchers",
}

__all__ = [
    "PROFILES",
    "Call",
    "CallList",
    "ClusterFullError",
    "ControllableClock",
    "DiscoveryCluster",
    "DiscoveryError",
    "DiscoveryFront",
    "DiscoveryHostGuardError",
    "DiscoveryServer",
    "Error",
    "EtcdDiscovery",
    "EtcdError",
    "EtcdMember",
    "FaultPlan",
    "FaultRule",
    "Member",
    "ServerError",
    "TokenView",
    "etcd_member_id",
    "etcd_member_value",
    "fake_discovery",
]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        module = _MOVED.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        warnings.warn(
            f"{__name__}.{name} is internal and no longer exported here; import it from "
            f"{__name__}.{module} (a private module, which may change)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(f".{module}", __name__), name)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
