"""The etcd v3 API (gRPC) side of the fake, for etcd 3.6+'s v3 discovery.

Needs the ``etcd-v3`` extra (``grpcio``, ``protobuf``); nothing imports this package unless a
v3 endpoint is asked for, so a run without it never loads gRPC.  The pieces:
:class:`~.mvcc.MVCCStore` (keys, revisions, leases, watchers, on the project's clock),
:class:`~.server.V3Server` (the gRPC endpoint, with :mod:`.hooks` for journal and
faults) and :class:`~.client.V3Client` (a small client for tests and seeding).
"""

from __future__ import annotations

from .errors import V3Error
from .hooks import NoHooks, V3Call, V3Decision, V3Hooks
from .mvcc import MVCCStore
from .server import V3Server

__all__ = ["MVCCStore", "NoHooks", "V3Call", "V3Decision", "V3Error", "V3Hooks", "V3Server"]
