"""The same keys and watch scenarios, sent straight to an etcd v2 keys API: real etcd's
``/v2/keys`` against the fake's ``/v2/keys`` (a custom discovery URL such as
``--discovery http://host:2379/v2/keys/discovery/<uuid>`` talks to exactly this)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from conformance_harness import Discovery, Recorder, Scenario
from test_conformance_bootstrap import etcd34_bootstrap
from test_conformance_keys import (
    bad_options,
    deletes,
    directories,
    listings,
    put_preconditions,
    put_values,
    ttls,
)
from test_conformance_watch import watch_blocking, watch_history

# (Expiry and the 1000-event history are the same store code on both paths; they run on
# the discovery routes only, keeping the suite fast. keys_only covers a directory expiring.)
SHARED: list[Scenario] = [
    put_preconditions,
    put_values,
    ttls,
    directories,
    deletes,
    listings,
    bad_options,
    watch_history,
    watch_blocking,
    etcd34_bootstrap,
]


@pytest.mark.parametrize("scenario", SHARED, ids=[s.__name__ for s in SHARED])
def test_shared_scenarios(keys_api: Discovery, scenario: Scenario) -> None:
    keys_api.check(scenario)


def keys_only(d: Recorder) -> None:
    """What the discovery router refuses but the keys API serves."""
    t = d.new_token(3)
    # Deeper keys, and POST: in-order keys named by their index (20 digits).
    d.put(f"/{t}/a/b/c", data={"value": "deep"}, expect=201)
    d.get(f"/{t}/a", params={"recursive": "true", "sorted": "true"}, expect=200)
    d.request("POST", f"/{t}/queue", data={"value": "first"}, expect=201)
    d.request("POST", f"/{t}/queue", data={"value": "second"}, expect=201)
    d.request("POST", f"/{t}/queue", params={"ttl": "604800"}, data={"value": "third"})
    d.get(f"/{t}/queue", params={"sorted": "true"}, expect=200)
    d.request("POST", f"/{t}/a/b/c", data={"value": "x"}, expect=400)  # 104: c is a file
    # Deleting the whole token directory, a directory expiring with children below.
    d.put(f"/{t}/tmp", params={"dir": "true", "ttl": "1"}, expect=201)
    d.put(f"/{t}/tmp/child", data={"value": "c"}, expect=201)
    # The directory's expiry (I+7) wakes a watcher on a key below it.
    d.watch(f"/{t}/tmp/child", {"waitIndex": d.idx(7)}).result()
    d.delete(f"/{t}", expect=403)
    d.delete(f"/{t}", params={"dir": "true"}, expect=403)
    w = d.watch(f"/{t}/a/b/c", {"waitIndex": d.idx(8)}, registered=True)
    d.delete(f"/{t}", params={"recursive": "true"}, expect=200)
    w.result()
    d.get(f"/{t}", expect=404)
    d.get(f"/{t}/_config/size", expect=404)
    d.request("HEAD", f"/{t}", expect=404)
    d.request("HEAD", f"/{t}/never", expect=404)


def test_keys_only(keys_api: Discovery) -> None:
    keys_api.check(keys_only)


def method_not_allowed(d: Recorder) -> None:
    """etcd's keys handler sets the CORS headers before it refuses a method."""
    t = d.new_token(3)
    for method in ("PATCH", "OPTIONS", "TRACE"):
        d.request(method, f"/{t}")
        d.request(method, f"/{t}/_config/size")


def test_method_not_allowed(keys_api: Discovery) -> None:
    keys_api.check(method_not_allowed)


def streams_and_races(d: Recorder) -> None:
    """stream=true watches (the discovery proxy buffers these, the keys API does not) and
    concurrent prevExist=false creates: exactly one member wins the _state race."""
    t = d.new_token(3)
    s_key = d.stream(f"/{t}/m1", {}, 3)
    s_all = d.stream(f"/{t}", {"recursive": "true"}, 4)
    d.put(f"/{t}/m1", data={"value": "a"}, expect=201)  # I+1
    d.put(f"/{t}/_hidden", data={"value": "h"}, expect=201)  # I+2: not streamed
    d.put(f"/{t}/m2", data={"value": "b"}, expect=201)  # I+3
    d.put(f"/{t}/m1", params={"prevValue": "a"}, data={"value": "c"}, expect=200)  # I+4
    d.delete(f"/{t}/m1", expect=200)  # I+5
    s_key.result()
    s_all.result()
    # A stream from a past index gets that one event from history (etcd then never
    # registers it: nothing more arrives).
    past = d.stream(f"/{t}/m2", {"waitIndex": d.idx(1)}, 2, registered=False, timeout=0.5)
    d.delete(f"/{t}/m2", expect=200)  # I+6: not delivered to that stream
    past.result()

    def create_state(_: int) -> int:
        with d.side.session() as session:
            data = {"value": "started"}
            return d.send(session, "PUT", f"/{t}/_state", {"prevExist": "false"}, data).status

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(Counter(pool.map(create_state, range(10))).items())
    d.note("10 concurrent prevExist=false creates", statuses)
    d.get(f"/{t}/_state", expect=200)


def test_streams_and_races(keys_api: Discovery) -> None:
    keys_api.check(streams_and_races)
