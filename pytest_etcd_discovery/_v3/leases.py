"""Leases: a TTL on the store's clock and the keys attached to it.

etcd's lessor in miniature.  Expiry is read from the clock, so a
:class:`~pytest_etcd_discovery._v2store.clock.ControllableClock` that advances past a
lease's expiry makes it due at once; the store revokes due leases (deleting their keys in
one revision, as etcd's revoke does) before every request and when the clock moves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .._v2store.clock import NS_PER_S

__all__ = ["MAX_LEASE_TTL", "MIN_LEASE_TTL", "Lease", "LeaseTable"]

#: etcd's ``lease.MaxLeaseTTL``.
MAX_LEASE_TTL = 9_000_000_000
#: etcd 3.4's floor with default flags: ceil(3/2 * election ticks(10) * heartbeat(100 ms)).
MIN_LEASE_TTL = 2


@dataclass(eq=False)
class Lease:
    id: int
    ttl: int
    expiry_ns: int
    keys: set[bytes] = field(default_factory=set)

    def remaining_ns(self, now_ns: int) -> int:
        return self.expiry_ns - now_ns


class LeaseTable:
    """The leases by id; no locking of its own (the store's lock covers it)."""

    def __init__(self, seed: int | None = None, min_ttl: int = MIN_LEASE_TTL) -> None:
        self.leases: dict[int, Lease] = {}
        self.min_ttl = min_ttl
        self._random = random.Random(seed)

    def new_id(self) -> int:
        # etcd picks a positive int64 from its request-id generator.
        while True:
            candidate = self._random.getrandbits(63)
            if candidate and candidate not in self.leases:
                return candidate

    def grant(self, lease_id: int, ttl: int, now_ns: int) -> Lease:
        ttl = max(ttl, self.min_ttl)
        lease = Lease(lease_id, ttl, now_ns + ttl * NS_PER_S)
        self.leases[lease_id] = lease
        return lease

    def refresh(self, lease: Lease, now_ns: int) -> None:
        lease.expiry_ns = now_ns + lease.ttl * NS_PER_S

    def due(self, now_ns: int) -> list[Lease]:
        """Expired leases, soonest first."""
        expired = [lease for lease in self.leases.values() if lease.expiry_ns <= now_ns]
        return sorted(expired, key=lambda lease: (lease.expiry_ns, lease.id))

    def next_expiry_ns(self) -> int | None:
        return min((lease.expiry_ns for lease in self.leases.values()), default=None)
