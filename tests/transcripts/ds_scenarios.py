"""The scenarios recorded against today's public service (etcd-io/discoveryserver).

Each is a function of a conformance :class:`~conformance_harness.Recorder`: the
recorder (``record.py``) runs them against a real discoveryserver and stores the
normalised transcripts as JSON; ``test_transcripts.py`` runs them against the fake's
``discoveryserver`` profile and compares. Offsets in the comments are from the anchor
(the first token's ``_config/size``); ``/new`` spends I+1 on its garbage-collection
record, so a token's first write is I+2.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance_harness import Recorder

#: Writes that push the first ones out of a 1,000-event v2 history window.
WINDOW_WRITES = 1003


def new_tokens(d: Recorder) -> None:
    d.new_token()
    d.new_token(5)
    d.new_token(None)
    d.new_token(2, method="POST", form=True)
    d.new_token("-1")
    d.new_token("0")
    d.get("/new", params={"size": "abc"}, expect=400)
    d.get("/new", params={"size": "99999999999999999999"}, expect=400)
    d.get("/new", params={"size": ""}, expect=200)


def token_members(d: Recorder) -> None:
    t = d.new_token(2)
    d.get(f"/{t}", expect=200)
    d.get(f"/{t}/", expect=200)  # the directory spelt with its slash
    d.put(f"/{t}/m1", data={"value": "a=http://127.0.0.1:2380"}, expect=200)  # I+2
    d.put(f"/{t}/m2", data={"value": "b=http://127.0.0.1:2381"}, expect=200)  # I+3
    # An overwrite keeps the key's createdIndex (the v3 create revision).
    d.put(f"/{t}/m1", data={"value": "a2"}, expect=200)  # I+4
    d.put(f"/{t}/m1", data={"value": "a3"}, expect=200)  # I+5
    d.get(f"/{t}/m1", expect=200)
    d.get(f"/{t}", expect=200)
    d.get(f"/{t}/", expect=200)
    d.get(f"/{t}", params={"recursive": "true"}, expect=200)
    d.get(f"/{t}/", params={"recursive": "true"}, expect=200)
    d.get(f"/{t}", params={"sorted": "true"}, expect=200)
    # A PUT with no value, with a query value (ignored: FormValue reads the body first).
    d.put(f"/{t}/m3", expect=200)  # I+6
    d.put(f"/{t}/m4", params={"value": "q"}, expect=200)  # I+7
    d.get(f"/{t}/m4", expect=200)
    # A PUT with etcd parameters: all ignored, a plain set.
    d.put(f"/{t}/m3", data={"value": "c", "prevExist": "false", "dir": "true"}, expect=200)
    d.put(f"/{t}/m3", params={"prevValue": "nope", "prevIndex": d.idx(1)}, data={"value": "d"})
    # Members cannot be deleted (the service deletes as a directory).
    d.delete(f"/{t}/m1", expect=400)
    d.get(f"/{t}/m1", expect=200)
    # The token itself is a directory: PUT refuses, DELETE has no route.
    d.put(f"/{t}", data={"value": "x"}, expect=400)
    d.put(f"/{t}/", data={"value": "x"}, expect=400)
    d.delete(f"/{t}", expect=405)
    d.delete(f"/{t}/", expect=405)
    d.get(f"/{t}/nobody", expect=400)


def stray_keys(d: Recorder) -> None:
    """A stray key before the members: listings and creation order."""
    t = d.new_token(2)
    d.put(f"/{t}/stray", data={"value": "x"}, expect=200)  # I+2
    d.put(f"/{t}/aaaa", data={"value": "m1=http://127.0.0.1:2380"}, expect=200)  # I+3
    d.put(f"/{t}/bbbb", data={"value": "m2=http://127.0.0.1:2381"}, expect=200)  # I+4
    # The first member registers again: it keeps its creation index, so its slot.
    d.put(f"/{t}/aaaa", data={"value": "m1=http://127.0.0.1:2380"}, expect=200)  # I+5
    d.put(f"/{t}/stray", data={"value": "y"}, expect=200)  # I+6
    d.get(f"/{t}", params={"recursive": "false", "sorted": "false", "quorum": "false"})
    d.get(f"/{t}", params={"sorted": "true"}, expect=200)
    d.get(f"/{t}/aaaa", params={"quorum": "false"}, expect=200)
    d.watch(f"/{t}/aaaa", {"waitIndex": d.idx(3), "recursive": "false"}).result()
    d.watch(f"/{t}/aaaa", {"waitIndex": d.idx(4)}).result()
    d.watch(f"/{t}", {"waitIndex": d.idx(5), "recursive": "true"}).result()


def config_and_state(d: Recorder) -> None:
    t = d.new_token(3)
    d.get(f"/{t}/_config", expect=200)
    d.get(f"/{t}/_config/", expect=404)  # no route: one segment after the token
    d.get(f"/{t}/_config", params={"recursive": "true"}, expect=200)
    d.get(f"/{t}/_config/size", params={"recursive": "true"}, expect=200)
    d.put(f"/{t}/_config/size", data={"value": "9"}, expect=405)
    d.delete(f"/{t}/_config/size", expect=405)
    d.get(f"/{t}/_state", expect=400)
    d.put(f"/{t}/_state", data={"value": "started"}, expect=200)  # I+2
    d.put(f"/{t}/_state", data={"value": "done"}, expect=200)  # I+3
    d.get(f"/{t}/_state", expect=200)
    d.put(f"/{t}/m", data={"value": "v"}, expect=200)  # I+4
    # Hidden children stay out of the token listing, recursive or not.
    d.get(f"/{t}", expect=200)
    d.get(f"/{t}", params={"recursive": "true"}, expect=200)
    d.delete(f"/{t}/_state", expect=400)  # a file
    d.put(f"/{t}/_config", data={"value": "x"}, expect=400)  # a directory
    # Deleting the _config directory: a delete without a node.
    d.delete(f"/{t}/_config", expect=200)  # I+5
    d.get(f"/{t}/_config/size", expect=400)
    d.get(f"/{t}/_config", expect=400)
    d.delete(f"/{t}/_config", expect=400)
    d.get(f"/{t}", expect=200)
    # The delete event names the deepest key it removed (_config/size), so only a
    # recursive watch on _config sees it.
    d.watch(f"/{t}/_config", {"waitIndex": d.idx(5), "recursive": "true"}).result()
    d.watch(f"/{t}/_config", {"waitIndex": d.idx(1), "recursive": "true"}).result()
    d.watch(f"/{t}/_config/size", {"waitIndex": d.idx(0)}).result()


def watches(d: Recorder) -> None:
    t = d.new_token(3)
    d.put(f"/{t}/m1", data={"value": "a"}, expect=200)  # I+2
    d.put(f"/{t}/m1", data={"value": "b"}, expect=200)  # I+3
    d.put(f"/{t}/m2", data={"value": "c"}, expect=200)  # I+4
    d.put(f"/{t}/_state", data={"value": "s"}, expect=200)  # I+5
    # From history: the first event at or after waitIndex.
    for offset in (0, 2, 3):
        d.watch(f"/{t}/m1", {"waitIndex": d.idx(offset)}).result()
    d.watch(f"/{t}/m1", {"waitIndex": d.idx(1), "recursive": "false"}).result()
    d.watch(f"/{t}", {"waitIndex": d.idx(0), "recursive": "true"}).result()
    d.watch(f"/{t}", {"waitIndex": d.idx(4), "recursive": "true"}).result()
    d.watch(f"/{t}/", {"waitIndex": d.idx(3), "recursive": "true"}).result()
    d.watch(f"/{t}/_state", {"waitIndex": d.idx(0)}).result()
    # No waitIndex: from the oldest event kept.
    d.watch(f"/{t}/m2", {}).result()
    # Odd spellings: any non-empty wait watches; bad numbers and bools fall back.
    d.watch(f"/{t}/m2", {"waitIndex": "abc"}).result()
    d.watch(f"/{t}/m2", {"waitIndex": d.idx(1), "wait": "false"}).result()
    d.watch(f"/{t}", {"waitIndex": d.idx(4), "recursive": "TRUE"}).result()
    d.watch(f"/{t}/m2", {"waitIndex": d.idx(2), "recursive": "yes"}).result()
    d.watch(f"/{t}", {"waitIndex": d.idx(2), "recursive": "1"}).result()
    d.get(f"/{t}/m2", params={"wait": "", "waitIndex": d.idx(1)}, expect=200)
    # Future events: the poll blocks until a write wakes it.
    w = d.watch(f"/{t}/m3", {"waitIndex": d.idx(6)}, registered=True)
    w.pending()
    d.put(f"/{t}/m3", data={"value": "d"}, expect=200)  # I+6
    w.result()
    r = d.watch(f"/{t}", {"waitIndex": d.idx(7), "recursive": "true"}, registered=True)
    d.put(f"/{t}/_state", data={"value": "hidden"}, expect=200)  # I+7: not shown
    r.pending()
    d.put(f"/{t}/m4", data={"value": "e"}, expect=200)  # I+8
    r.result()
    # A watch on the member the next write overwrites: the event keeps its createdIndex.
    o = d.watch(f"/{t}/m2", {"waitIndex": d.idx(9)}, registered=True)
    d.put(f"/{t}/m2", data={"value": "c2"}, expect=200)  # I+9
    o.result()


def history_window(d: Recorder) -> None:
    """More writes than etcd v2's 1,000-event history: v3 still replays them all."""
    t = d.new_token(3)
    first = d.idx(2)
    for number in range(WINDOW_WRITES):
        d.send(d.session, "PUT", f"/{t}/m", data={"value": str(number)})
    d.note("writes", WINDOW_WRITES)
    d.get(f"/{t}/m", expect=200)
    d.watch(f"/{t}", {"waitIndex": first + 1, "recursive": "true"}).result()
    d.watch(f"/{t}", {"waitIndex": first, "recursive": "true"}).result()
    d.watch(f"/{t}/m", {"waitIndex": first + 2}).result()
    d.watch(f"/{t}/m", {"waitIndex": d.idx(0)}).result()
    d.watch(f"/{t}/_config/size", {"waitIndex": d.idx(0)}).result()


def bad_input(d: Recorder) -> None:
    t = d.new_token(3)
    n = d.never_issued()
    d.get(f"/{n}", expect=400)
    d.get(f"/{n}/", expect=400)
    d.get(f"/{n}/m", expect=400)
    d.get(f"/{n}/_config/size", expect=400)
    d.put(f"/{n}/m", data={"value": "v"}, expect=200)  # I+2: any token takes a PUT
    d.get(f"/{n}", expect=200)
    d.get(f"/{t.upper()}", expect=404)
    d.get(f"/{t[:31]}", expect=404)
    d.get(f"/{t}/a/b", expect=404)
    d.request("POST", f"/{t}", expect=405)
    d.request("POST", f"/{t}/m", expect=405)
    d.request("PATCH", f"/{t}/m", expect=405)
    d.request("HEAD", f"/{t}", expect=405)
    d.put(
        f"/{t}/m", data="value=%zz", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    d.put(
        f"/{t}/m2",
        data="value=a&value=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    d.get(f"/{t}/m2", expect=200)
    d.put(f"/{t}/%5Fhidden", data={"value": "x"})
    d.get(f"/{t}", expect=200)
    d.get("/robots.txt", expect=200)
    d.get("/", expect=301)
    d.get("/nothing", expect=404)


def ttls(d: Recorder) -> None:
    """TTLs are not passed on: the keys never expire."""
    t = d.new_token(3)
    d.put(f"/{t}/m", data={"value": "a", "ttl": "1"}, expect=200)  # I+2
    d.put(f"/{t}/m", params={"ttl": "1"}, data={"value": "b"}, expect=200)  # I+3
    d.put(f"/{t}/z", params={"ttl": "0"}, data={"value": "c", "ttl": "0"}, expect=200)  # I+4
    d.put(f"/{t}/k", params={"ttl": "x"}, data={"value": "b"}, expect=200)  # I+5
    d.get(f"/{t}/m", expect=200)
    d.get(f"/{t}/z", expect=200)
    d.get(f"/{t}", params={"recursive": "true"}, expect=200)


def values_and_live_deletes(d: Recorder) -> None:
    """Odd values (Go's JSON escapes), a stream watch, a live watch on a deleted _config."""
    t = d.new_token(3)
    d.put(f"/{t}/m1", data={"value": "<a href='x'>&</a>\u2028\n\t\"q\" é"}, expect=200)  # I+2
    d.put(f"/{t}/m2", data={"value": "v" * 300}, expect=200)  # I+3
    d.get(f"/{t}", params={"recursive": "true"}, expect=200)
    # stream=true is not passed on: one event, then the reply ends.
    d.watch(f"/{t}", {"waitIndex": d.idx(2), "recursive": "true", "stream": "true"}).result()
    exact = d.watch(f"/{t}/_config/size", {"waitIndex": d.idx(4)}, registered=True)
    below = d.watch(f"/{t}/_config", {"waitIndex": d.idx(4), "recursive": "true"}, registered=True)
    d.delete(f"/{t}/_config", expect=200)  # I+4
    exact.result()
    below.result()
    d.get("/health", expect=200)
    d.get(f"/{t}", expect=200)


SCENARIOS: dict[str, Callable[[Recorder], None]] = {
    f.__name__: f
    for f in (
        new_tokens,
        token_members,
        stray_keys,
        config_and_state,
        watches,
        history_window,
        bad_input,
        ttls,
        values_and_live_deletes,
    )
}
