"""``ttl=0``: a key written already expired, fake vs real etcd v2 (through the original
service).

etcd removes expired keys only in its expiry sweep (a SYNC every 500 ms), so such a
key is still readable right after the write, with an expiration in the past and no
``ttl``, and a write made before the sweep takes the index before its ``expire``
event. The sweep's phase is the real server's own: an attempt that a sweep happens to
cut is tried again, so the transcript records only the outcome.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from conformance_harness import Discovery, Recorder

#: Each attempt fails only if a sweep lands inside it (~1 in 100 idle, more under load).
ATTEMPTS = 10


def _expiration_passed(node: dict[str, Any], at: float) -> bool:
    whole, _, frac = str(node["expiration"]).rstrip("Z").partition(".")
    when = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc).timestamp()
    return when + float(f"0.{frac or '0'}") <= at


def _attempt(d: Recorder, t: str, n: int) -> dict[str, Any] | None:
    """Write ``z<n>`` with ttl=0, read it back, write another key, then wait for the
    expire event; what both sides must agree on, or None if a sweep came in between."""
    key = f"/{t}/z{n}"
    put = d.send(d.session, "PUT", key, data={"value": "v", "ttl": "0"})
    got = d.send(d.session, "GET", key)
    read_at = time.time()
    other = d.send(d.session, "PUT", f"/{t}/other{n}", data={"value": "x"})
    written = put.json()["node"]
    watch = d.watch(key, {"waitIndex": written["modifiedIndex"] + 1})
    event = watch.result(record=False).json()
    if got.status != 200 or event["node"]["modifiedIndex"] != written["modifiedIndex"] + 2:
        return None
    node = got.json()["node"]
    return {
        "put status": put.status,
        "put shows ttl": "ttl" in written,
        "read back": got.status,
        "read shows ttl": "ttl" in node,
        "expiration already passed": _expiration_passed(node, read_at),
        "next write index": other.json()["node"]["modifiedIndex"] - written["modifiedIndex"],
        "expire action": event["action"],
        "expire index": event["node"]["modifiedIndex"] - written["modifiedIndex"],
        "expire node fields": sorted(event["node"]),
        "prevNode fields": sorted(event["prevNode"]),
    }


def ttl_zero(d: Recorder) -> None:
    t = d.new_token()
    for n in range(ATTEMPTS):
        outcome = _attempt(d, t, n)
        if outcome is not None:
            break
    if outcome is not None:
        # Gone once expired.  Part of the outcome, not a recorded step: how many attempts
        # a side needed (its own sweep's phase) must not show in the transcript.
        gone = d.send(d.session, "GET", f"/{t}/z{n}")
        outcome["once expired"] = (gone.status, gone.json().get("errorCode"))
    d.note("ttl=0 outcome", outcome)


def test_ttl_zero_lives_until_the_expiry_sweep(discovery: Discovery) -> None:
    discovery.check(ttl_zero)
