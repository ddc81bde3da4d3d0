"""The request journal (``DiscoveryApp.calls``): pending long polls and bounded growth,
in entries and in bytes."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Callable

import pytest
from werkzeug.test import Client

from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.journal import (
    MAX_BODY_CHARS,
    MAX_ENTRY_CHARS,
    MAX_HEADER_CHARS,
    TRUNCATED,
    _Shared,
)
from pytest_etcd_discovery._service.messages import ServiceRequest

MIB = 1024 * 1024


def test_max_calls_keeps_the_newest_entries() -> None:
    app = DiscoveryApp(max_calls=5)
    client = Client(app)
    for i in range(23):
        client.get(f"/robots.txt?n={i}")
    assert 5 <= len(app.calls) < 10
    assert app.calls[-1].query == "n=22"
    queries = [int(c.query.split("=")[1]) for c in app.calls]
    assert queries == sorted(queries) == list(range(23 - len(queries), 23))


def test_large_bodies_are_not_kept_whole() -> None:
    """40 requests with 5 MiB form bodies (200 MiB) leave a journal of a few hundred KiB:
    each entry keeps MAX_ENTRY_CHARS of its values, the cut ones marked."""
    app = DiscoveryApp()
    body = b"value=" + b"v" * (5 * MIB)
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(40):
            request = ServiceRequest("PUT", "/health", f"n={i}", form, body, "inprocess")
            assert app.answer(request).status == 200
        gc.collect()
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(app.calls) == 40
    assert kept < 10 * MIB, f"the journal holds {kept / MIB:.1f} MiB after 200 MiB of bodies"
    for i, call in enumerate(app.calls):
        (value,) = call.form["value"]
        assert call.truncated and call.query == f"n={i}"
        assert value.endswith(TRUNCATED) and value.startswith("v" * 1000)
        assert len(value) + len(call.query) + len("value") <= MAX_ENTRY_CHARS
        assert len(call.body) == MAX_BODY_CHARS and call.body.endswith(TRUNCATED)
        assert call.body.startswith("value=vvv") and call.body_size == len(body)
    # Bytes as held: a cut value ends with "…", which makes the string 2 bytes a character.
    per_entry = 2 * (MAX_ENTRY_CHARS + MAX_BODY_CHARS + MAX_HEADER_CHARS) + 2048
    assert app.journal.bytes <= 40 * per_entry


def test_small_forms_are_kept_as_sent() -> None:
    app = DiscoveryApp()
    token = app.new_token(3)
    app.answer_url(
        "PUT", f"https://discovery.etcd.io/{token}/m1?x=1", form={"value": "m1=http://a:2380"}
    )
    (call,) = app.calls
    assert call.form == {"value": ["m1=http://a:2380"], "x": ["1"]}
    assert not call.truncated


def test_the_journal_is_bounded_in_bytes() -> None:
    """Past max_journal_bytes the oldest entries go, however many entries that is."""
    app = DiscoveryApp(max_journal_bytes=40 * MAX_ENTRY_CHARS)
    for i in range(100):
        app.answer_url("PUT", f"https://discovery.etcd.io/health?n={i}", form={"value": "x" * MIB})
    assert app.journal.bytes <= 40 * MAX_ENTRY_CHARS
    assert 5 <= len(app.calls) < 100
    assert app.calls[-1].query == "n=99"
    numbers = [int(c.query.split("=")[1]) for c in app.calls]
    assert numbers == list(range(100 - len(numbers), 100))


def test_unbounded_by_default() -> None:
    app = DiscoveryApp()
    client = Client(app)
    for _ in range(50):
        client.get("/robots.txt")
    assert len(app.calls) == 50


def test_a_waiting_long_poll_is_journalled_as_pending() -> None:
    # discoveryserver answers a long poll only once it has the event (etcd-v2's status is
    # known at once: the body streams later).
    app = DiscoveryApp(profile="discoveryserver")
    token = app.new_token(1)
    client = Client(app)
    done = threading.Event()

    def poll() -> None:
        client.get(f"/{token}/m1?wait=true")
        done.set()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        assert app.store.wait_for_watchers(1, timeout=5)
        (call,) = app.calls
        assert call.status is None and "pending" in str(call)
        app.store.set(f"{app.token_key(token)}/m1", "x")
        assert done.wait(5)
        assert call.status == 200
    finally:
        app.close()
        thread.join(5)


def test_an_error_inside_the_fake_is_a_500_and_kept_for_the_test() -> None:
    app = DiscoveryApp()

    def broken(request: object) -> None:
        raise ValueError("boom")

    app.before_request.append(broken)
    response = Client(app).get("/new")
    assert response.status_code == 500
    assert app.calls[-1].status == 500
    (error,) = app.take_errors()
    assert isinstance(error, ValueError) and str(error) == "boom"
    assert app.take_errors() == []


def test_the_journal_bound_is_in_bytes_as_measured() -> None:
    """What the journal holds, measured with tracemalloc, stays within its bound: an
    entry of a small request holds ~0.8 KB, which a count of characters plus 200 missed
    (the journal grew to 2-3 times its bound)."""
    cap = 512 * 1024
    app = DiscoveryApp(max_journal_bytes=cap)
    token = app.new_token(3)
    url = f"https://discovery.etcd.io/{token}?recursive=true"
    app.answer_url("GET", url)  # warm what is made once
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(10_000):
            app.answer_url("GET", url)
        gc.collect()
        with_journal = tracemalloc.get_traced_memory()[0]
        kept = len(app.calls)
        app.journal.renew()  # the entries go, nothing else does
        gc.collect()
        held = with_journal - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 10_000, "the bound never trimmed"
    assert cap / 4 < held <= cap, f"{kept} entries hold {held} bytes, bound {cap}"


def test_the_old_name_of_the_bound_still_works() -> None:
    app = DiscoveryApp(max_journal_chars=1000)
    assert app.journal.max_bytes == app.journal.max_chars == 1000
    app.answer_url("GET", "https://discovery.etcd.io/health")
    assert app.journal.chars == app.journal.bytes > 0


def test_headers_and_bodies_are_kept_bounded_and_counted_as_held() -> None:
    """Entries keep the request's header fields and body (cut to their bounds), and the
    bytes the journal counts for them are the bytes they hold (tracemalloc)."""
    cap = 512 * 1024
    app = DiscoveryApp(max_journal_bytes=cap)
    headers = [(f"X-Field-{n}", "v" * 40) for n in range(20)]
    body = "value=é".encode() + b"\xff" + b"x" * 900

    def ask() -> None:
        request = ServiceRequest("PUT", "/health", "", list(headers), body, "inprocess")
        app.answer(request)

    ask()  # warm what is made once
    (first,) = app.calls
    assert first.headers == headers and not first.truncated
    assert first.body == "value=é\ufffd" + "x" * 900 and first.body_size == len(body)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(3000):
            ask()
        gc.collect()
        with_journal = tracemalloc.get_traced_memory()[0]
        kept = len(app.calls)
        app.journal.renew()
        gc.collect()
        held = with_journal - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 3000, "the bound never trimmed"
    assert cap / 4 < held <= cap, f"{kept} entries hold {held} bytes, bound {cap}"


def test_long_headers_are_cut() -> None:
    app = DiscoveryApp()
    headers = [("X-Small", "1"), ("X-Big", "b" * (2 * MAX_HEADER_CHARS)), ("X-Late", "2")]
    app.answer(ServiceRequest("GET", "/health", "", headers, b"", "inprocess"))
    (call,) = app.calls
    assert call.truncated
    assert [name for name, _ in call.headers] == ["X-Small", "X-Big"]
    big = call.headers[1][1]
    assert big.endswith(TRUNCATED) and sum(len(n) + len(v) for n, v in call.headers) <= (
        MAX_HEADER_CHARS
    )


#: What ``requests`` sends with every call.
CLIENT_HEADERS = [
    ("User-Agent", "python-requests/2.32.3"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Accept", "*/*"),
    ("Connection", "keep-alive"),
]


def held_and_counted(
    app: DiscoveryApp, ask: Callable[[int], object], count: int
) -> tuple[float, float]:
    """Bytes per entry for ``count`` calls of ``ask``: held (tracemalloc: what emptying
    the journal frees) and counted (``journal.bytes``)."""
    for i in range(20):
        ask(i)  # warm what is made once
    app.journal.clear()
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(count):
            ask(i)
        gc.collect()
        with_journal = tracemalloc.get_traced_memory()[0]
        counted = app.journal.bytes / len(app.calls)
        app.journal.renew()
        gc.collect()
        held = (with_journal - tracemalloc.get_traced_memory()[0]) / count
    finally:
        tracemalloc.stop()
    return held, counted


def test_entries_share_what_requests_repeat() -> None:
    """A client's header fields, the method, the query and form names are one object
    for all entries; each entry keeps lists and a form of its own."""
    app = DiscoveryApp()
    for value in ("a", "b"):
        body = f"value={value}&prevExist=false".encode()
        headers = [*CLIENT_HEADERS, ("Content-Type", "application/x-www-form-urlencoded")]
        app.answer(ServiceRequest("PUT", "/health", "x=1", headers, body, "inprocess"))
    first, second = app.calls
    assert first.headers == second.headers
    assert all(a is b for a, b in zip(first.headers, second.headers, strict=True))
    assert first.method is second.method and first.query is second.query
    assert first.form == {"value": ["a"], "prevExist": ["false"], "x": ["1"]}
    assert [a is b for a, b in zip(first.form, second.form, strict=True)] == [True, True, True]
    assert first.form["prevExist"][0] is second.form["prevExist"][0]
    # Entries stay independent: a test may edit one.
    second.headers.append(("X-Added", "1"))
    second.form["value"].append("c")
    assert first.headers[-1] != ("X-Added", "1") and first.form["value"] == ["a"]


@pytest.mark.parametrize("unique", [False, True], ids=["repeated", "unique-header"])
def test_bytes_counted_are_the_bytes_held(unique: bool) -> None:
    """What the journal counts per entry is what the entry holds (tracemalloc), within a
    few percent below and 30 % above, whether its header fields are shared with earlier
    entries or not (a field no entry had before is paid for by the entry that brings
    it). Before the sharing it counted 1.5-1.9 times what an entry held."""
    app = DiscoveryApp()

    def ask(i: int) -> None:
        headers = [*CLIENT_HEADERS, ("X-Request-Id", f"{i:032x}")] if unique else CLIENT_HEADERS
        body = f"value=m{i}%3Dhttp%3A%2F%2F10.0.0.1%3A2380".encode()
        form = [*headers, ("Content-Type", "application/x-www-form-urlencoded")]
        app.answer(ServiceRequest("PUT", f"/health/{i}", "a=1", form, body, "inprocess"))

    held, counted = held_and_counted(app, ask, 2000)
    assert 0.95 * held <= counted <= 1.3 * held, (
        f"held {held:.0f} B, counted {counted:.0f} B an entry"
    )


def test_the_shared_copies_are_bounded() -> None:
    """Values that never repeat do not pile up in the table of shared copies."""
    app = DiscoveryApp()
    limit = _Shared.LIMIT
    for i in range(3 * limit):
        request = ServiceRequest("GET", "/health", f"n={i}", [("X-Id", str(i))], b"", "inprocess")
        app.answer(request)
    assert len(app.journal._shared.items) <= limit
    assert [c.query for c in app.calls] == [f"n={i}" for i in range(3 * limit)]
    assert [c.headers for c in app.calls[-2:]] == [
        [("X-Id", str(i))] for i in (3 * limit - 2, 3 * limit - 1)
    ]
