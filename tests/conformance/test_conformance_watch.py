"""Long polls (``wait=true``), TTL expiry and the event history: fake vs real.

Every wait here ends on an event: a write from the scenario thread while the poll runs
in another, or a key expiring. TTLs are 1 s; expiry is awaited through a watch.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from conformance_harness import Discovery, Recorder


def watch_history(d: Recorder) -> None:
    t = d.new_token()
    d.put(f"/{t}/m1", data={"value": "a"}, expect=201)  # I+1
    d.put(f"/{t}/m1", data={"value": "b"}, expect=200)  # I+2
    d.put(f"/{t}/m2", data={"value": "c"}, expect=201)  # I+3
    d.delete(f"/{t}/m1", expect=200)  # I+4
    # A past index still in history answers at once with the first matching event.
    for offset in (1, 2, 3):
        d.watch(f"/{t}/m1", {"waitIndex": d.idx(offset)}).result()
    d.watch(f"/{t}/m2", {"waitIndex": d.idx(1)}).result()
    # Recursive: any key below; the history scan includes hidden keys (_config/size).
    d.watch(f"/{t}", {"recursive": "true", "waitIndex": d.idx(0)}).result()
    d.watch(f"/{t}", {"recursive": "true", "waitIndex": d.idx(2)}).result()
    # The size route (GET only) and the hidden _config directory watch like any key.
    d.watch(f"/{t}/_config/size", {"waitIndex": d.idx(0)}).result()
    d.watch(f"/{t}/_config", {"recursive": "true", "waitIndex": d.idx(0)}).result()
    # Non-recursive on the directory: its children's events do not match.
    w = d.watch(f"/{t}", {"waitIndex": d.idx(1)})
    w.pending()
    # The etcd 3.4 bootstrap spelling, on the member key.
    d.watch(f"/{t}/m2", {"recursive": "false", "waitIndex": d.idx(3)}).result()
    d.put(f"/{t}/m3", data={"value": "d"}, expect=201)  # I+5: still not the directory
    w.pending()
    d.put(f"/{t}", params={"dir": "true", "prevExist": "true"}, expect=200)  # I+6 wakes it
    w.result()
    # Unusual query spellings of the same watch.
    d.watch(f"/{t}/m3", {"waitIndex": d.idx(5), "wait": "1"}).result()
    d.watch(f"/{t}/m3", {"waitIndex": d.idx(5), "recursive": "true", "sorted": "true"}).result()
    # A never-issued token: a watch from history on a key that never existed.
    n = d.never_issued()
    d.put(f"/{n}/x", data={"value": "y"}, expect=201)  # I+7
    d.watch(f"/{n}/x", {"waitIndex": d.idx(1)}).result()
    d.watch(f"/{n}", {"waitIndex": d.idx(1), "recursive": "true"}).result()


def test_watch_history(discovery: Discovery) -> None:
    discovery.check(watch_history)


def watch_blocking(d: Recorder) -> None:
    t = d.new_token()
    d.put(f"/{t}/m1", data={"value": "a"}, expect=201)  # I+1
    # A future index blocks until that index is reached by a matching event.
    w = d.watch(f"/{t}/m1", {"waitIndex": d.idx(3)})
    d.wait_watchers(1)
    w.pending()
    d.put(f"/{t}/m1", data={"value": "b"}, expect=200)  # I+2: too early for waitIndex I+3
    w.pending()
    d.put(f"/{t}/other", data={"value": "x"}, expect=201)  # I+3: another key
    w.pending()
    d.put(f"/{t}/m1", params={"prevValue": "b"}, data={"value": "c"}, expect=200)  # I+4
    w.result()
    # No waitIndex (and waitIndex=0): the next event on the key.
    for params in ({}, {"waitIndex": "0"}):
        w = d.watch(f"/{t}/m1", params)
        d.wait_watchers(1)
        w.pending()
        d.put(f"/{t}/m1", params={"prevExist": "true"}, data={"value": "next"}, expect=200)
        w.result()  # I+5, then I+6
    # Recursive watchers are not woken by hidden (_) keys below them.
    w = d.watch(f"/{t}", {"recursive": "true"})
    d.wait_watchers(1)
    d.put(f"/{t}/_state", params={"prevExist": "false"}, data={"value": "started"}, expect=201)
    w.pending()
    d.delete(f"/{t}/m1", params={"prevValue": "next"}, expect=200)  # I+8
    w.result()
    # ... but a watcher on the hidden key itself is.
    w = d.watch(f"/{t}/_state", {})
    d.wait_watchers(1)
    d.delete(f"/{t}/_state", expect=200)  # I+9
    w.result()
    # refresh moves the index but wakes nobody; the event is in history all the same.
    d.put(f"/{t}/r", params={"ttl": "604800"}, data={"value": "v"}, expect=201)  # I+10
    w = d.watch(f"/{t}/r", {})
    d.wait_watchers(1)
    d.put(f"/{t}/r", params={"refresh": "true", "ttl": "604800"}, expect=200)  # I+11
    w.pending()
    d.put(f"/{t}/r", params={"prevExist": "true", "ttl": ""}, data={"value": "w"})  # I+12
    w.result()
    d.watch(f"/{t}/r", {"waitIndex": d.idx(11)}).result()
    # Two polls on one key both get the event.
    w1 = d.watch(f"/{t}/r", {})
    w2 = d.watch(f"/{t}", {"recursive": "true", "waitIndex": d.idx(13)})
    d.wait_watchers(2)
    d.delete(f"/{t}/r", expect=200)  # I+13
    w1.result()
    w2.result()


def test_watch_blocking(discovery: Discovery) -> None:
    discovery.check(watch_blocking)


def ttl_expiry(d: Recorder) -> None:
    t = d.new_token()
    d.put(f"/{t}/m1", params={"ttl": "1"}, data={"value": "gone-soon"}, expect=201)  # I+1
    d.put(f"/{t}/d", params={"dir": "true", "ttl": "1"}, expect=201)  # I+2
    d.put(f"/{t}/keep", params={"ttl": "1"}, data={"value": "k"}, expect=201)  # I+3
    d.put(f"/{t}/keep", params={"prevExist": "true", "ttl": ""}, data={"value": "k"})  # I+4
    # Expiry comes as "expire" events (key-ordered by deadline), waited on, not slept.
    w_key = d.watch(f"/{t}/m1", {"waitIndex": d.idx(5)})
    w_dir = d.watch(f"/{t}/d", {"waitIndex": d.idx(5)})
    w_all = d.watch(f"/{t}", {"recursive": "true", "waitIndex": d.idx(5)})
    w_key.result()
    w_dir.result()
    w_all.result()
    d.get(f"/{t}/m1", expect=404)
    d.get(f"/{t}/d", expect=404)
    d.get(f"/{t}/keep", expect=200)
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)
    # History keeps the set (with its TTL as it was) and both expire events.
    d.watch(f"/{t}/m1", {"waitIndex": d.idx(1)}).result()
    d.watch(f"/{t}", {"recursive": "true", "waitIndex": d.idx(6)}).result()
    # An update with a TTL, and a CAS that sets one, expire the same way.
    d.put(f"/{t}/keep", params={"prevExist": "true", "ttl": "1"}, data={"value": "k2"})  # I+7
    d.put(f"/{t}/c", data={"value": "1"}, expect=201)  # I+8
    d.put(f"/{t}/c", params={"prevValue": "1", "ttl": "1"}, data={"value": "2"})  # I+9
    w_keep = d.watch(f"/{t}/keep", {"waitIndex": d.idx(8)})
    w_c = d.watch(f"/{t}/c", {"waitIndex": d.idx(10)})
    w_keep.result()
    w_c.result()
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)


def test_ttl_expiry(discovery: Discovery) -> None:
    discovery.check(ttl_expiry)


HISTORY = 1000  # etcd keeps the last 1000 events


def cleared_history(d: Recorder) -> None:
    t = d.new_token()
    d.put(f"/{t}/first", data={"value": "0"}, expect=201)  # I+1
    writes = HISTORY + 10
    # One key: whatever order the parallel writers land in, every event looks the same.
    keys = [f"/{t}/k"] * writes

    def put(path: str) -> int:
        with d.side.session() as session:
            return d.send(session, "PUT", path, data={"value": "x"}).status

    # Parallel writers (fast); the first write is a 201, the others 200.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = Counter(pool.map(put, keys))
    d.note(f"{writes} PUTs: statuses", sorted(statuses.items()))
    last = writes + 1  # I+last is the newest event
    oldest = last - HISTORY + 1
    d.get(f"/{t}/first", expect=200)
    # Older than the history: 401 (HTTP 400) naming the oldest kept and the asked index.
    d.get(f"/{t}/first", params={"wait": "true", "waitIndex": d.idx(1)}, expect=400)
    d.get(f"/{t}", params={"wait": "true", "recursive": "true", "waitIndex": d.idx(oldest - 1)})
    # The oldest kept event is still served; recursive from there gets that event.
    w = d.watch(f"/{t}", {"recursive": "true", "waitIndex": d.idx(oldest)})
    reply = w.result()
    d.note("oldest kept event index", reply.json()["node"]["modifiedIndex"] - d.idx(0))
    # A key whose events all fell out of history waits for a new one.
    w = d.watch(f"/{t}/first", {"waitIndex": d.idx(oldest)})
    w.pending()
    d.put(f"/{t}/first", data={"value": "1"}, expect=200)
    w.result()


def test_cleared_history(discovery: Discovery) -> None:
    discovery.check(cleared_history)


def proxied_stream(d: Recorder) -> None:
    """stream=true through the discovery routes: the Go proxy copies etcd's reply into an
    unflushed 4 kB buffer, so a client sees neither headers nor events for a while."""
    t = d.new_token()
    stream = d.stream(f"/{t}/m1", {}, 3, timeout=0.6)
    for value in ("a", "b", "c"):
        d.put(f"/{t}/m1", data={"value": value})
    stream.result()


def test_proxied_stream(discovery: Discovery) -> None:
    discovery.check(proxied_stream)
