"""What etcd 3.4 sends when it bootstraps through discovery (spec section 4), replayed
request for request by three members and a fourth that finds the cluster full."""

from __future__ import annotations

from conformance_harness import Discovery, Recorder, Watch

# Member ids as etcd prints them (16 hex digits) and their initial-cluster entries.
MEMBERS = {
    "8211f1d0f64f3269": "infra0=http://10.0.1.10:2380",
    "91bc3c398fb3c146": "infra1=http://10.0.1.11:2380",
    "fd422379fd9a2f1c": "infra2=http://10.0.1.12:2380",
}
EXTRA = ("5e7b2c1d9a8f3b40", "infra3=http://10.0.1.13:2380")
GET_OPTS = {"quorum": "false", "recursive": "false", "sorted": "false"}


def check_cluster(d: Recorder, t: str) -> int:
    """checkCluster(): the size key, then the token listing; returns its X-Etcd-Index."""
    d.get(f"/{t}/_config/size", params=GET_OPTS, expect=200)
    reply = d.get(f"/{t}", params=GET_OPTS, expect=200)
    return int(reply.headers["X-Etcd-Index"])


def register(d: Recorder, t: str, member: str, contents: str) -> int:
    """createSelf(): PUT prevExist=false, then a watch on itself from its createdIndex."""
    reply = d.put(f"/{t}/{member}", params={"prevExist": "false"}, data={"value": contents})
    assert reply.status == 201, reply.text
    created = int(reply.json()["node"]["createdIndex"])
    params = {"recursive": "false", "waitIndex": created}
    d.watch(f"/{t}/{member}", params).result()
    return created


def wait_nodes(d: Recorder, t: str, after: int) -> Watch:
    """waitNodes(): a recursive watch on the token from the next index.

    Every call here waits for a future write, so it returns once the store holds the
    poll: its ``X-Etcd-Index`` (the index at registration) must not race that write.
    """
    return d.watch(f"/{t}", {"recursive": "true", "waitIndex": after + 1}, registered=True)


def etcd34_bootstrap(d: Recorder) -> None:
    t = d.new_token(3)
    (id0, c0), (id1, c1), (id2, c2) = MEMBERS.items()
    # Member 0: check, register, check again, then wait for two more.
    check_cluster(d, t)
    register(d, t, id0, c0)
    index0 = check_cluster(d, t)
    w0 = wait_nodes(d, t, index0)
    # Member 1 registers: member 0's watch sees it.
    check_cluster(d, t)
    register(d, t, id1, c1)
    index1 = check_cluster(d, t)
    seen = w0.result()
    w0 = wait_nodes(d, t, int(seen.json()["node"]["modifiedIndex"]))
    w1 = wait_nodes(d, t, index1)
    w0.pending()
    w1.pending()
    # Member 2 completes the cluster: both waiting members get it; member 2 needs no wait.
    check_cluster(d, t)
    register(d, t, id2, c2)
    check_cluster(d, t)
    w0.result()
    w1.result()
    # A fourth member finds three members listed (it falls back to proxy / exits).
    check_cluster(d, t)
    reply = d.get(f"/{t}", params=GET_OPTS, expect=200)
    members = sorted(n["key"].rsplit("/", 1)[-1] for n in reply.json()["node"]["nodes"])
    d.note("members listed", members == sorted([id0, id1, id2]))
    # A member that wiped its data dir registers the same id again: 412 / 105.
    d.put(f"/{t}/{id0}", params={"prevExist": "false"}, data={"value": c0}, expect=412)
    # The listing etcd reads, sorted by createdIndex on its side.
    d.get(f"/{t}", params={"recursive": "true", "sorted": "true"}, expect=200)


def test_etcd34_bootstrap(discovery: Discovery) -> None:
    discovery.check(etcd34_bootstrap)


def size_edge_cases(d: Recorder) -> None:
    """Tokens whose size key etcd cannot use: missing, not a number, zero, negative."""
    t = d.new_token(1)
    check_cluster(d, t)
    register(d, t, EXTRA[0], EXTRA[1])
    check_cluster(d, t)
    for size in (0, -1):
        tok = d.new_token(size)
        check_cluster(d, tok)
    # A token whose _config was deleted: the size GET gives 100 "Key not found".
    tok = d.new_token(3)
    d.delete(f"/{tok}/_config", params={"recursive": "true"}, expect=200)
    d.get(f"/{tok}/_config/size", params=GET_OPTS, expect=404)
    d.get(f"/{tok}", params=GET_OPTS, expect=200)


def test_size_edge_cases(discovery: Discovery) -> None:
    discovery.check(size_edge_cases)
