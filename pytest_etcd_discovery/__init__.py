"""pytest-etcd-discovery: a faithful fake of the etcd discovery service for pytest.

The fake imitates discovery.etcd.io closely enough that real ``etcd`` binaries
bootstrap clusters through it. Its parts:

- :class:`Store`: an etcd-v2-like store (index, TTLs, events, watches) on a clock;
- :class:`DiscoveryApp`: the service as a WSGI app, in either profile;
- :class:`DiscoveryServer`: the app on a loopback socket.
"""

from .app import Call, DiscoveryApp, make_app
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
    "make_app",
]
__version__ = "0.1.0"
