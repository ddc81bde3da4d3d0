"""The v3 server's hooks (journal and faults) and lifecycle, on the fake alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from v3util import Stream

from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v3 import V3Call, V3Decision, V3Server
from pytest_etcd_discovery._v3.client import V3Client
from pytest_etcd_discovery._v3.messages import MESSAGES as M


class Rules:
    """Hooks for the tests: a decision per method name, and every finished call kept."""

    def __init__(self) -> None:
        self.decisions: dict[str, V3Decision] = {}
        self.calls: list[V3Call] = []
        self.lock = threading.Lock()
        self.finished = threading.Event()  # set by every reported call

    def before(self, call: V3Call) -> V3Decision | None:
        key = call.method if call.request is None or not call.stream else f"{call.method}+msg"
        return self.decisions.get(key)

    def after(self, call: V3Call) -> None:
        with self.lock:
            self.calls.append(call)
        self.finished.set()


@pytest.fixture
def rig() -> Iterator[tuple[Rules, V3Server, V3Client]]:
    hooks = Rules()
    with (
        V3Server(clock=ControllableClock(), hooks=hooks) as server,
        V3Client(server.endpoint) as client,
    ):
        yield hooks, server, client
    server.store.close()


def test_every_call_is_reported_with_its_answer_or_error(
    rig: tuple[Rules, V3Server, V3Client],
) -> None:
    hooks, _server, client = rig
    client.call("KV", "Put", key=b"a", value=b"1")
    with pytest.raises(grpc.RpcError):
        client.call("KV", "Range", key=b"")
    put, bad = hooks.calls
    assert (put.path, put.request.key, put.response.header.revision) == (
        "/etcdserverpb.KV/Put",
        b"a",
        2,
    )
    assert put.peer.startswith("ipv4:127.0.0.1:") and put.finished is not None
    assert bad.error == ("INVALID_ARGUMENT", "etcdserver: key is not provided")
    assert bad.response is None


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"])
def test_a_status_fault(rig: tuple[Rules, V3Server, V3Client], code: str) -> None:
    hooks, _server, client = rig
    hooks.decisions["Put"] = V3Decision(
        code=code, message="etcdserver: request timed out", description="rule 1"
    )
    with pytest.raises(grpc.RpcError) as err:
        client.call("KV", "Put", key=b"a", value=b"1")
    assert err.value.code() == getattr(grpc.StatusCode, code)
    assert err.value.details() == "etcdserver: request timed out"
    assert client.call("KV", "Range", key=b"a").count == 0  # not applied
    assert (hooks.calls[0].fault, hooks.calls[0].error) == ("rule 1", (code, err.value.details()))


def test_a_delay_longer_than_the_clients_deadline(rig: tuple[Rules, V3Server, V3Client]) -> None:
    hooks, _server, client = rig
    hooks.decisions["Range"] = V3Decision(delay=30)
    with pytest.raises(grpc.RpcError) as err:
        client.call("KV", "Range", key=b"a", timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server stops waiting when the client gives up (not after 30 s).
    assert hooks.finished.wait(15)
    assert hooks.calls[0].method == "Range"
    assert hooks.calls[0].error == ("CANCELLED", "context canceled")  # and not served


def test_a_dropped_watch_stream(rig: tuple[Rules, V3Server, V3Client]) -> None:
    hooks, server, client = rig
    stream = Stream(client, "Watch", "Watch")
    try:
        stream.send(create_request=M["WatchCreateRequest"](key=b"a"))
        assert stream.next().created
        hooks.decisions["Watch+msg"] = V3Decision(drop=True, description="drop")
        stream.send(create_request=M["WatchCreateRequest"](key=b"b"))
        failure = stream.next()
        assert isinstance(failure, grpc.RpcError)
        assert failure.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stream.close()
    # the watchers of the dropped stream are gone
    assert len(server.store.hub) == 0


def test_a_stream_refused_when_it_opens(rig: tuple[Rules, V3Server, V3Client]) -> None:
    hooks, _server, client = rig
    hooks.decisions["LeaseKeepAlive"] = V3Decision(code="UNAVAILABLE", message="no leader")
    stream = Stream(client, "Lease", "LeaseKeepAlive")
    try:
        stream.send(ID=1)
        failure = stream.next()
        assert isinstance(failure, grpc.RpcError) and failure.details() == "no leader"
    finally:
        stream.close()


def test_stop_ends_open_streams(rig: tuple[Rules, V3Server, V3Client]) -> None:
    _hooks, server, client = rig
    stream = Stream(client, "Watch", "Watch")
    stream.send(create_request=M["WatchCreateRequest"](key=b"a"))
    assert stream.next().created
    stopped = threading.Event()
    threading.Thread(target=lambda: (server.stop(), stopped.set()), daemon=True).start()
    assert stopped.wait(15)
    assert isinstance(stream.next(), grpc.RpcError)
    stream.close()


def test_the_endpoint_and_a_server_on_a_given_store() -> None:
    first = V3Server()
    with pytest.raises(RuntimeError):
        first.endpoint  # noqa: B018
    with first:
        host, port = first.endpoint.split(":")
        assert host == "127.0.0.1" and int(port) == first.port > 0
        with V3Server(store=first.store) as second, V3Client(second.endpoint) as client:
            client.call("KV", "Put", key=b"shared", value=b"1")
        assert first.store.range(M["RangeRequest"](key=b"shared")).count == 1
    first.store.close()


def test_concurrent_writers_and_a_watcher_see_one_history(
    rig: tuple[Rules, V3Server, V3Client],
) -> None:
    """Writes from several clients at once: every revision once, in order, to a watcher
    that started before them and to one that catches up from history afterwards."""
    _hooks, server, client = rig
    live = Stream(client, "Watch", "Watch")
    writers, each = 4, 40
    try:
        live.send(create_request=M["WatchCreateRequest"](key=b"/c/", range_end=b"/c0"))
        assert live.next().created

        def write(n: int) -> None:
            with V3Client(server.endpoint) as own:
                for i in range(each):
                    own.call("KV", "Put", key=f"/c/{n}".encode(), value=str(i).encode())

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        seen: list[int] = []
        while len(seen) < writers * each:
            seen.extend(e.kv.mod_revision for e in live.next().events)
    finally:
        live.close()
    assert seen == list(range(2, 2 + writers * each))
    late = Stream(client, "Watch", "Watch")
    try:
        late.send(
            create_request=M["WatchCreateRequest"](key=b"/c/", range_end=b"/c0", start_revision=1)
        )
        assert late.next().created
        history = late.next()
    finally:
        late.close()
    assert [e.kv.mod_revision for e in history.events] == seen
    versions = {
        kv.key: kv.version for kv in client.call("KV", "Range", key=b"/c/", range_end=b"/c0").kvs
    }
    assert versions == {f"/c/{n}".encode(): each for n in range(writers)}
