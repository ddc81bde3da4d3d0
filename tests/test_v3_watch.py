"""The v3 Watch service against a real etcd 3.4: one stream with several watchers
(create, cancel, filters, prev_kv, history from a start revision, compacted starts,
refusals), the same answers in the same order from both."""

from __future__ import annotations

from typing import Any

from v3util import Side, Stream

from pytest_etcd_discovery._v3.client import V3Client
from pytest_etcd_discovery._v3.messages import MESSAGES as M

pytest_plugins = ["v3fixtures"]


def create(**fields: Any) -> dict[str, Any]:
    return {"create_request": M["WatchCreateRequest"](**fields)}


def scenario(side: Side) -> list[Any]:
    """A watch session; every answer normalised, in order."""
    client, base = side.client, side.base
    answers: list[Any] = []
    for key, value in [(b"/w/a", b"1"), (b"/w/a", b"2"), (b"/w/b", b"1")]:
        client.call("KV", "Put", key=key, value=value)
    stream = Stream(client, "Watch", "Watch")
    try:

        def step(count: int = 1, *, any_order: bool = False) -> None:
            got = [side.norm(stream.next()) for _ in range(count)]
            # etcd hands one revision to a stream's watchers from a map: in any order.
            answers.extend(sorted(got, key=lambda a: a.get("watch_id", 0)) if any_order else got)

        # history from a start revision, with previous values; then live events
        stream.send(**create(key=b"/w/", range_end=b"/w0", start_revision=base + 1, prev_kv=True))
        step(2)
        client.call("KV", "Put", key=b"/w/c", value=b"x")
        step()
        client.call("KV", "DeleteRange", key=b"/w/", range_end=b"/w0")
        step()
        stream.send(**create(key=b"/w/a", filters=[0]))  # no puts: an auto id
        step()
        stream.send(**create(key=b"/w/a", watch_id=1))  # taken
        step()
        stream.send(**create(key=b"/w/z", range_end=b"/w/a"))  # an empty range
        step()
        # every key from the start ("\x00" range end), a chosen id
        stream.send(**create(key=b"", range_end=b"\x00", watch_id=7, start_revision=base + 2))
        step(2)
        stream.send(cancel_request=M["WatchCancelRequest"](watch_id=0))
        step()
        stream.send(cancel_request=M["WatchCancelRequest"](watch_id=42))  # unknown: no answer
        stream.send(progress_request=M["WatchProgressRequest"]())
        step()
        client.call("KV", "Put", key=b"/w/a", value=b"3")
        step()
        client.call("KV", "DeleteRange", key=b"/w/a")
        step(2, any_order=True)  # watch 1 (no puts) and watch 7
        rev = client.call("KV", "Range", key=b"/w/a").header.revision
        client.call("KV", "Compact", revision=rev - 1)
        stream.send(**create(key=b"/w/a", start_revision=rev - 2, watch_id=9))  # compacted
        step(2)
        stream.send(**create(key=b"/w/a", start_revision=rev - 1, watch_id=10))  # just not
        step(2)
        stream.send(**create(key=b"/w/a", start_revision=rev + 5, watch_id=11))  # the future
        step()
        client.call("KV", "Put", key=b"/w/q", value=b"-")
        step()  # watch 7 only
        assert not stream.pending(0.3), f"{side.name}: an answer too many"
    finally:
        stream.close()
    return answers


def test_watch_session(sides: tuple[Side, Side]) -> None:
    real, fake = (scenario(side) for side in sides)
    assert len(fake) == len(real)
    for number, (want, got) in enumerate(zip(real, fake, strict=True)):
        assert got == want, f"answer {number} differs"


def test_the_stream_stays_open_after_the_client_half_closes(side: Side) -> None:
    requests = [M["WatchRequest"](**create(key=b"/h/a"))]
    call = side.client.stream("Watch", "Watch", requests)
    try:
        created = next(call)
        assert created.created and created.watch_id == 0
        side.client.call("KV", "Put", key=b"/h/a", value=b"v")
        event = next(call)
        assert [e.kv.value for e in event.events] == [b"v"]
    finally:
        call.cancel()


#: More streams than the fake once had worker threads (64): each open stream held one, so
#: the 65th watcher and every unary call after it waited for a stream to end.
MANY_STREAMS = 100


def test_many_watch_streams_at_once_and_a_unary_call_still_answers(side: Side) -> None:
    """A 100-member v3 discovery: every member watches the prefix at once; all get the next
    member's event, and a unary Range answers while they are open."""
    clients = [V3Client(side.endpoint) for _ in range(MANY_STREAMS // 10)]  # 10 streams each
    streams: list[Stream] = []
    try:
        for i in range(MANY_STREAMS):
            stream = Stream(clients[i % len(clients)], "Watch", "Watch")
            streams.append(stream)
            stream.send(**create(key=b"/many/", range_end=b"/many0"))
        assert all(stream.next().created for stream in streams)
        assert side.client.call("KV", "Range", key=b"/many/", range_end=b"/many0").count == 0
        side.client.call("KV", "Put", key=b"/many/m1", value=b"m1=http://127.0.0.1:2380")
        events = [stream.next() for stream in streams]
        assert {tuple(e.kv.key for e in answer.events) for answer in events} == {(b"/many/m1",)}
    finally:
        for stream in streams:
            stream.close()
        for client in clients:
            client.close()
