"""etcd v2 keys semantics behind the token routes (spec section 3): fake vs real."""

from __future__ import annotations

from conformance_harness import Discovery, Recorder

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def put_preconditions(d: Recorder) -> None:
    t = d.new_token()
    m = f"/{t}/m1"
    # prevExist=true on a missing key: 100; prevExist=false creates (201, "create").
    d.put(m, params={"prevExist": "true"}, data={"value": "a"}, expect=404)
    d.put(m, params={"prevExist": "false"}, data={"value": "a"}, expect=201)
    d.put(m, params={"prevExist": "false"}, data={"value": "b"}, expect=412)
    # prevExist=true updates: only modifiedIndex moves.
    d.put(m, params={"prevExist": "true"}, data={"value": "b"}, expect=200)
    # compareAndSwap on value, index, both; the causes name what differed.
    d.put(m, params={"prevValue": "zz"}, data={"value": "c"}, expect=412)
    d.put(m, params={"prevIndex": d.idx(1)}, data={"value": "c"}, expect=412)
    d.put(m, params={"prevValue": "zz", "prevIndex": d.idx(1)}, data={"value": "c"}, expect=412)
    d.put(m, params={"prevValue": "b", "prevIndex": d.idx(1)}, data={"value": "c"}, expect=412)
    d.put(m, params={"prevValue": "zz", "prevIndex": d.idx(2)}, data={"value": "c"}, expect=412)
    d.put(m, params={"prevValue": "b"}, data={"value": "c"}, expect=200)
    d.put(m, params={"prevIndex": d.idx(3)}, data={"value": "d"}, expect=200)
    d.put(m, params={"prevValue": "d", "prevIndex": d.idx(4)}, data={"value": "e"}, expect=200)
    d.put(m, params={"prevExist": "true", "prevValue": "e"}, data={"value": "f"}, expect=200)
    d.put(m, params={"prevExist": "true", "prevValue": "x"}, data={"value": "f"}, expect=412)
    # prevExist=false wins over prevValue; prevIndex=0 means "no condition".
    d.put(f"/{t}/m2", params={"prevExist": "false", "prevValue": "x"}, data={"value": "1"})
    d.put(f"/{t}/m3", params={"prevIndex": "0"}, data={"value": "1"}, expect=201)
    # CAS on a missing key: 100, not 101.
    d.put(f"/{t}/m4", params={"prevValue": "x"}, data={"value": "1"}, expect=404)
    d.put(f"/{t}/m4", params={"prevIndex": d.idx(1)}, data={"value": "1"}, expect=404)
    # Go ParseBool spellings.
    for spelling in ("1", "t", "T", "TRUE", "True"):
        d.put(m, params={"prevExist": spelling}, data={"value": spelling}, expect=200)
    for spelling in ("0", "f", "F", "FALSE", "False"):
        d.put(m, params={"prevExist": spelling}, data={"value": "n"}, expect=412)
    d.put(m, params={"prevExist": "yes"}, data={"value": "n"}, expect=400)
    d.get(f"/{t}", params={"sorted": "true"}, expect=200)


def test_put_preconditions(discovery: Discovery) -> None:
    discovery.check(put_preconditions)


def put_values(d: Recorder) -> None:
    t = d.new_token()
    # Query and form body are merged; the body wins.
    d.put(f"/{t}/q", params={"value": "fromquery"}, expect=201)
    d.put(f"/{t}/q", params={"value": "fromquery"}, data={"value": "frombody"}, expect=200)
    # A body without a form content type is not parsed: the value is "".
    d.put(f"/{t}/raw", data="value=ignored", headers={"Content-Type": "text/plain"}, expect=201)
    d.put(f"/{t}/raw", data="value=parsed", headers=FORM, expect=200)
    d.put(f"/{t}/empty", expect=201)
    # Go's JSON encoder escapes <, > and & (and keeps other UTF-8 as it is).
    d.put(f"/{t}/html", data={"value": "<a href='x'>&amp;</a>"}, expect=201)
    d.put(f"/{t}/utf8", data={"value": "caf\u00e9 \u2603 \U0001f600"}, expect=201)
    d.put(f"/{t}/ctl", data={"value": 'line1\nline2\t"q" \\ \u2028'}, expect=201)
    d.put(f"/{t}/url", data={"value": "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380"})
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)


def test_put_values(discovery: Discovery) -> None:
    discovery.check(put_values)


def ttls(d: Recorder) -> None:
    t = d.new_token()
    m = f"/{t}/m1"
    d.put(m, params={"ttl": "604800"}, data={"value": "a"}, expect=201)
    d.get(m, expect=200)
    # prevExist=true with "ttl=" (empty) removes the TTL.
    d.put(m, params={"prevExist": "true", "ttl": ""}, data={"value": "b"}, expect=200)
    d.get(m, expect=200)
    # A plain set without ttl also drops it.
    d.put(m, params={"ttl": "86400"}, data={"value": "c"}, expect=200)
    d.put(m, data={"value": "d"}, expect=200)
    d.put(m, params={"ttl": "3600"}, data={"value": "e"}, expect=200)
    # refresh: new TTL, same value, needs prevExist semantics and no value.
    d.put(m, params={"refresh": "true", "prevExist": "true", "ttl": "7200"}, expect=200)
    d.put(m, params={"refresh": "true", "ttl": "7200"}, expect=200)
    d.put(m, params={"refresh": "true", "ttl": "7200"}, data={"value": "x"}, expect=400)
    d.put(m, params={"refresh": "true"}, expect=400)
    d.put(f"/{t}/none", params={"refresh": "true", "ttl": "60"}, expect=404)
    d.put(m, params={"refresh": "true", "ttl": "7200", "prevValue": "e"}, expect=200)
    d.put(m, params={"refresh": "true", "ttl": "7200", "prevValue": "zz"}, expect=412)
    # Bad TTLs: 202.
    for bad in ("abc", "-1", "1.5", " 5"):
        d.put(m, params={"ttl": bad}, data={"value": "x"}, expect=400)
    # TTL in the form body works like in the query.
    d.put(f"/{t}/m2", data={"value": "a", "ttl": "1209600"}, expect=201)
    d.put(f"/{t}/m3", params={"prevExist": "false", "ttl": "604800"}, data={"value": "a"})
    d.put(f"/{t}/m3", params={"prevValue": "a", "ttl": "604800"}, data={"value": "b"}, expect=200)
    d.get(f"/{t}", params={"sorted": "true"}, expect=200)


def test_ttls(discovery: Discovery) -> None:
    discovery.check(ttls)


def directories(d: Recorder) -> None:
    t = d.new_token()
    d.put(f"/{t}/d", params={"dir": "true"}, expect=201)
    d.get(f"/{t}/d", expect=200)
    d.put(f"/{t}/d", params={"dir": "true"}, expect=403)
    d.put(f"/{t}/d", data={"value": "x"}, expect=403)
    d.put(f"/{t}/d", params={"prevExist": "true", "dir": "true"}, expect=200)
    d.put(f"/{t}/d", params={"prevExist": "false", "dir": "true"}, expect=412)
    d.put(f"/{t}/d", params={"prevValue": "x"}, data={"value": "y"}, expect=403)
    d.delete(f"/{t}/d", expect=403)
    d.delete(f"/{t}/d", params={"prevValue": "x"}, expect=403)
    d.delete(f"/{t}/d", params={"dir": "true"}, expect=200)
    d.put(f"/{t}/d2", params={"dir": "true", "value": "ignored"}, expect=201)
    d.put(f"/{t}/d2", params={"dir": "true", "ttl": "604800", "prevExist": "true"}, expect=200)
    d.delete(f"/{t}/d2", params={"recursive": "true"}, expect=200)
    # A plain set with dir=true turns a file into a directory.
    d.put(f"/{t}/f", data={"value": "v"}, expect=201)
    d.put(f"/{t}/f", params={"dir": "true"}, expect=200)
    d.put(f"/{t}/f", params={"dir": "true", "prevExist": "true"}, expect=200)
    d.delete(f"/{t}/f", params={"dir": "true"}, expect=200)
    d.put(f"/{t}/g", data={"value": "v"}, expect=201)
    d.delete(f"/{t}/g", params={"recursive": "true"}, expect=200)
    # _config is a non-empty directory: dir=true alone refuses (108), recursive deletes.
    d.get(f"/{t}/_config", expect=200)
    d.put(f"/{t}/_config", data={"value": "x"}, expect=403)
    d.delete(f"/{t}/_config", expect=403)
    d.delete(f"/{t}/_config", params={"dir": "true"}, expect=403)
    d.delete(f"/{t}/_config", params={"recursive": "true"}, expect=200)
    d.get(f"/{t}/_config/size", expect=404)
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)


def test_directories(discovery: Discovery) -> None:
    discovery.check(directories)


def deletes(d: Recorder) -> None:
    t = d.new_token()
    m = f"/{t}/m1"
    d.delete(m, expect=404)
    d.put(m, data={"value": "v"}, expect=201)
    d.delete(m, params={"prevValue": "zz"}, expect=412)
    d.delete(m, params={"prevIndex": d.idx(7)}, expect=412)
    d.delete(m, params={"prevValue": "zz", "prevIndex": d.idx(7)}, expect=412)
    d.delete(m, params={"prevValue": "v", "prevIndex": d.idx(7)}, expect=412)
    d.delete(m, params={"prevValue": "", "prevIndex": d.idx(1)}, expect=400)
    d.delete(m, params={"prevIndex": d.idx(1)}, expect=200)
    d.put(m, data={"value": "w"}, expect=201)
    d.delete(m, params={"prevValue": "w"}, expect=200)
    d.put(m, data={"value": "w"}, expect=201)
    d.delete(m, params={"prevIndex": d.idx(5)}, expect=200)
    d.delete(m, params={"prevValue": "w"}, expect=404)
    d.delete(m, params={"prevIndex": "abc"}, expect=400)
    d.delete(m, params={"recursive": "maybe"}, expect=400)
    d.put(m, params={"ttl": "604800"}, data={"value": "x"}, expect=201)
    d.delete(m, expect=200)
    d.get(f"/{t}", expect=200)


def test_deletes(discovery: Discovery) -> None:
    discovery.check(deletes)


def listings(d: Recorder) -> None:
    t = d.new_token()
    for name in ("m3", "_state", "m1", "_hidden", "m2", "m10"):
        d.put(f"/{t}/{name}", data={"value": f"v-{name}"}, expect=201)
    d.put(f"/{t}/dd", params={"dir": "true"}, expect=201)
    # Hidden (_) names are left out of listings, plain and recursive.
    d.get(f"/{t}", expect=200)
    d.get(f"/{t}", params={"sorted": "true"}, expect=200)
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)
    d.get(f"/{t}/", params={"recursive": "false", "sorted": "false", "quorum": "false"})
    d.get(f"/{t}", params={"consistent": "true", "recursive": "true", "sorted": "false"})
    d.get(f"/{t}", params={"quorum": "true", "sorted": "true"}, expect=200)
    # ... but they can be read directly.
    d.get(f"/{t}/_state", expect=200)
    d.get(f"/{t}/_hidden", expect=200)
    # A GET on a file ignores recursive/sorted.
    d.get(f"/{t}/m1", params={"recursive": "true", "sorted": "true"}, expect=200)
    for bad in ("recursive", "sorted", "quorum", "wait", "stream"):
        d.get(f"/{t}", params={bad: "maybe"}, expect=400)


def test_listings(discovery: Discovery) -> None:
    discovery.check(listings)


def bad_options(d: Recorder) -> None:
    """The 2xx "bad request" errors, in the order etcd's parser checks them."""
    t = d.new_token()
    m = f"/{t}/m1"
    d.put(m, data={"value": "v"}, expect=201)
    d.put(m, params={"prevValue": ""}, data={"value": "x"}, expect=400)  # 201
    d.put(m, params={"prevIndex": "abc"}, data={"value": "x"}, expect=400)  # 203
    d.put(m, params={"prevIndex": "-3"}, data={"value": "x"}, expect=400)  # 203
    d.put(m, params={"ttl": "x", "prevIndex": "abc"}, data={"value": "x"}, expect=400)
    d.put(m, params={"prevExist": "maybe"}, data={"value": "x"}, expect=400)  # 209
    d.put(m, params={"dir": "maybe"}, data={"value": "x"}, expect=400)  # 209
    d.put(m, params={"refresh": "maybe"}, data={"value": "x"}, expect=400)  # 209
    d.get(m, params={"wait": "true", "waitIndex": "abc"}, expect=400)  # 203
    d.get(m, params={"wait": "true", "waitIndex": "-1"}, expect=400)  # 203
    d.delete(m, params={"dir": "maybe"}, expect=400)
    d.delete(m, params={"prevValue": ""}, expect=400)
    d.get(m, expect=200)


def test_bad_options(discovery: Discovery) -> None:
    discovery.check(bad_options)


def seed_article(d: Recorder) -> None:
    """The 2014 article's transcript (etcd 0.4 era), request for request."""
    t = d.new_token()
    d.get(f"/{t}", expect=200)
    d.get(f"/{t}/_config/size", expect=200)
    # 0.4 heartbeats: PUT /T/<name>?ttl=604800 with the peer URL.
    d.put(f"/{t}/abc", params={"ttl": "604800"}, data={"value": "http://10.1.0.73:7001"})
    d.put(f"/{t}/_state", params={"prevExist": "false"}, data={"value": "started"}, expect=201)
    d.put(f"/{t}/_state", params={"prevExist": "false"}, data={"value": "started"}, expect=412)
    d.get(f"/{t}", params={"consistent": "true", "recursive": "true", "sorted": "false"})
    d.put(f"/{t}/def", data={"ttl": "604800", "value": "http://10.1.0.74:7001"}, expect=201)
    # Operators delete a stale _state by hand, then it is gone.
    d.delete(f"/{t}/_state", expect=200)
    d.get(f"/{t}/_state", expect=404)
    d.put(f"/{t}/_state", params={"prevExist": "false"}, data={"value": "started"}, expect=201)
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)
    d.put(f"/{t}", data={"value": "x"}, expect=403)
    d.put(f"/{t}/m", data={"value": "q"}, expect=201)
    d.put(f"/{t}/m", params={"prevValue": "zz"}, data={"value": "2"}, expect=412)
    d.request("DELETE", f"/{t}", expect=405)
    d.request("POST", f"/{t}/x", expect=405)
    d.get(f"/{t}/a/b", expect=404)
    d.get("/0123", expect=404)
    d.get(f"/{d.never_issued()}", expect=404)


def test_seed_article_transcript(discovery: Discovery) -> None:
    discovery.check(seed_article)


def error_table(d: Recorder) -> None:
    """Error codes reachable through the token routes, each with its HTTP status."""
    d.new_token()
    # A never-issued token PUT as a file: the "token" is then a file, not a directory.
    n = d.never_issued()
    d.put(f"/{n}", data={"value": "file"}, expect=201)
    d.get(f"/{n}", expect=200)
    d.get(f"/{n}/", params={"recursive": "true"}, expect=200)
    d.get(f"/{n}/m1", expect=400)  # 104 Not a directory
    d.put(f"/{n}/m1", data={"value": "x"}, expect=400)  # 104
    d.delete(f"/{n}/m1", expect=400)
    d.put(f"/{n}", data={"value": "file2"}, params={"prevValue": "file"}, expect=200)
    d.get(f"/{n}/_config/size", expect=400)


def test_error_table(discovery: Discovery) -> None:
    discovery.check(error_table)
