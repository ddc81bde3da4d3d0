"""The v3 Lease service against a real etcd 3.4 (grant, revoke, keep-alive, time-to-live,
leases, a leased key's expiry), and the fake's leases on the controllable clock."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from v3util import Side, Stream, lockstep

from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v3.client import V3Client
from pytest_etcd_discovery._v3.messages import MESSAGES as M
from pytest_etcd_discovery._v3.server import V3Server

pytest_plugins = ["v3fixtures"]


def ttl_close(answer: dict[str, Any], granted: int, elapsed: float) -> dict[str, Any]:
    """``TTL`` counts down in real time: any value the ``elapsed`` seconds since the grant
    (measured around it, so a loaded machine's pauses included) allow is the same answer;
    the keys in any order."""
    assert granted - math.ceil(elapsed) - 1 <= answer["TTL"] <= granted, (answer, elapsed)
    # etcd lists a lease's keys from a Go map: in no particular order.
    return {**answer, "TTL": "~", "keys": sorted(answer.get("keys", []))}


#: L0-L2 are granted etcd's shortest TTL (2 s), which runs out in real time: nothing after
#: their grants touches them, as a loaded machine can take longer than that to get there.
SHORT = ("L0", "L1", "L2")


def test_grant_revoke_time_to_live(sides: tuple[Side, Side]) -> None:
    for ttl in (1, 0, -5, 9_000_000_001, 60):
        lockstep(sides, "Lease", "LeaseGrant", TTL=ttl)
    granted = time.monotonic()
    lockstep(sides, "Lease", "LeaseGrant", TTL=60, ID=7001)
    lockstep(sides, "Lease", "LeaseGrant", TTL=60, ID=7001)  # taken
    lockstep(sides, "KV", "Put", key=b"/l/a", value=b"1", lease=7001)
    lockstep(sides, "KV", "Put", key=b"/l/b", value=b"1", lease=7001)
    lockstep(sides, "KV", "Put", key=b"/l/c", value=b"1", lease=lambda s: s.lease("L3"))
    lockstep(sides, "KV", "Put", key=b"/l/b", value=b"2", ignore_lease=True, prev_kv=True)
    lockstep(sides, "KV", "Put", key=b"/l/c", value=b"2")  # moves off its lease
    answers = [s.call("Lease", "LeaseTimeToLive", ID=7001, keys=True) for s in sides]
    answers = [ttl_close(answer, 60, time.monotonic() - granted) for answer in answers]
    assert answers[1] == answers[0]
    lockstep(sides, "Lease", "LeaseTimeToLive", ID=7002, keys=True)  # none: TTL -1
    lockstep(sides, "Lease", "LeaseRevoke", ID=7001)  # deletes /l/a and /l/b at once
    lockstep(sides, "KV", "Range", key=b"/l/", range_end=b"/l0")
    lockstep(sides, "Lease", "LeaseRevoke", ID=7001)
    # Go's map order is random: compare the sets of (our names for) the leases listed.
    listed = [
        sorted(
            s.leases[x.ID]
            for x in s.client.call("Lease", "LeaseLeases").leases
            if x.ID in s.leases and s.leases[x.ID] not in SHORT
        )
        for s in sides
    ]
    assert listed[1] == listed[0] == ["L3"]


def test_keep_alive_stream(sides: tuple[Side, Side]) -> None:
    transcripts = []
    for side in sides:
        granted = side.client.call("Lease", "LeaseGrant", TTL=30)
        side.norm(granted)
        stream = Stream(side.client, "Lease", "LeaseKeepAlive")
        try:
            stream.send(ID=granted.ID)
            stream.send(ID=12345)  # unknown: TTL 0, the stream goes on
            stream.send(ID=granted.ID)
            transcripts.append([side.norm(stream.next()) for _ in range(3)])
        finally:
            stream.close()
    assert transcripts[1] == transcripts[0]
    assert [answer.get("TTL", 0) for answer in transcripts[0]] == [30, 0, 30]


def test_a_leased_key_expires_and_watchers_see_it(sides: tuple[Side, Side]) -> None:
    """The shortest lease etcd grants (2 s) runs out in real time on both.  The watch is
    made before the lease, so it sees the put and the expiry however long the machine
    takes between the calls (it once was made after the put, and on a loaded machine the
    lease had run out before it)."""
    transcripts = []
    for side in sides:
        stream = Stream(side.client, "Watch", "Watch")
        try:
            create = M["WatchCreateRequest"](key=b"/x/k", prev_kv=True)
            stream.send(create_request=create)
            answers = [side.norm(stream.next())]  # created
            lease = side.client.call("Lease", "LeaseGrant", TTL=1).ID
            side.norm(M["LeaseGrantResponse"](ID=lease))
            side.client.call("KV", "Put", key=b"/x/k", value=b"v", lease=lease)
            answers += [side.norm(stream.next()), side.norm(stream.next())]  # put, deleted
        finally:
            stream.close()
        answers.append(side.call("Lease", "LeaseTimeToLive", ID=lease))
        transcripts.append(answers)
    assert transcripts[1] == transcripts[0]
    assert [t["events"][0].get("type", 0) for t in transcripts[0][1:3]] == [0, 1]


# -- the fake's clock --------------------------------------------------------------------


@pytest.fixture
def frozen() -> Any:
    clock = ControllableClock(frozen=True)
    with V3Server(clock=clock) as server, V3Client(server.endpoint) as client:
        yield clock, server, client
    server.store.close()


def test_a_leased_key_expires_on_clock_advance(frozen: Any) -> None:
    clock, _server, client = frozen
    lease = client.call("Lease", "LeaseGrant", TTL=60).ID
    client.call("KV", "Put", key=b"/a", value=b"v", lease=lease)
    stream = Stream(client, "Watch", "Watch")
    try:
        stream.send(create_request=M["WatchCreateRequest"](key=b"/a"))
        assert stream.next().created
        clock.advance(59.5)
        assert client.call("Lease", "LeaseTimeToLive", ID=lease).TTL == 0
        assert client.call("KV", "Range", key=b"/a").count == 1
        clock.advance(0.5)
        deleted = stream.next()  # the clock's move alone revokes it
        assert [(e.type, e.kv.key) for e in deleted.events] == [(1, b"/a")]
    finally:
        stream.close()
    assert client.call("KV", "Range", key=b"/a").count == 0
    assert client.call("Lease", "LeaseTimeToLive", ID=lease).TTL == -1


def test_keep_alive_moves_the_expiry_on(frozen: Any) -> None:
    clock, server, client = frozen
    lease = client.call("Lease", "LeaseGrant", TTL=10).ID
    client.call("KV", "Put", key=b"/a", value=b"v", lease=lease)
    clock.advance(8)
    assert server.store.lease_keep_alive(lease) == 10
    clock.advance(8)
    assert client.call("KV", "Range", key=b"/a").count == 1
    assert client.call("Lease", "LeaseTimeToLive", ID=lease, keys=True).keys == [b"/a"]
    clock.advance(2)
    assert client.call("KV", "Range", key=b"/a").count == 0
    assert server.store.lease_keep_alive(lease) == 0
