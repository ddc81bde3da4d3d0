"""Simulated etcd members as one selector loop: every member a connection, none a thread.

Real etcd members are separate Go programs: each sends its next request as soon as its
reply is in, whatever the others do.  Run as 100 threads of one Python process, the
members instead take turns on one GIL: a member whose reply came back fast runs on
while others have not sent their first request, so against a fast service the early
members list the token long before the late ones register, and then need one watch per
later registration.  The benchmark then measured its own scheduling as much as the
service.  Here one thread owns every member's connection in a selector and advances a
member (:meth:`SimulatedMember.steps`, the same logic the threaded driver runs) the
moment its whole reply has arrived, so no member waits on another's CPU time.

Plain ``http`` only (the TLS front of ``python -m bench.dropin`` keeps the threaded
:class:`~bench.etcdsim.WireClient`).  The request bytes are those ``http.client`` sends
for :class:`~bench.etcdsim.WireClient`; replies are parsed as HTTP/1.1 (a length, chunks,
or the end of the connection).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import selectors
import socket
import time
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from .etcdsim import Reply, Request, Steps


class Joiner(Protocol):
    """What the loop drives: :class:`~bench.etcdsim.SimulatedMember` (etcd's protocol)
    or :class:`~bench.etcdsim.ScriptedMember` (the fixed script)."""

    name: str
    token_url: str

    def steps(self) -> Steps: ...


#: Timers of members pausing before their next request: (due, tie-breaker, member).
_Timers = list[tuple[float, int, "_Member"]]
_sequence = itertools.count()


class MemberError(RuntimeError):
    """A member's connection failed, or a reply could not be parsed."""


def request_bytes(netloc: str, request: Request) -> bytes:
    """The bytes ``http.client`` writes for :class:`~bench.etcdsim.WireClient`'s request:
    ``Host`` and ``Accept-Encoding`` first, then ``Content-Length`` for a body, then the
    client's own headers."""
    parts = urlsplit(request.url)
    if parts.netloc != netloc:
        raise ValueError(f"{request.url} is not on {netloc}")
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path or "/"
    head = [f"{request.method} {target} HTTP/1.1", f"Host: {netloc}", "Accept-Encoding: identity"]
    body = b""
    if request.form is not None:
        body = urlencode(request.form).encode()
        head.append(f"Content-Length: {len(body)}")
    head.append("User-Agent: Go-http-client/1.1")
    if request.form is not None:
        head.append("Content-Type: application/x-www-form-urlencoded")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _ReplyParser:
    """One HTTP/1.1 reply read incrementally from a kept connection."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self._head_done = False
        self._length: int | None = None
        self._chunked = False
        self._chunk_left = 0  # bytes (data + CRLF) of the current chunk still to take
        self._trailers = False

    @property
    def close_after(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"

    def feed(self, data: bytes) -> bool:
        """Take ``data`` (``b""``: the peer closed); True once the reply is complete."""
        eof = not data
        self.buffer += data
        if not self._head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if eof:
                    raise MemberError(f"connection closed in a reply head: {bytes(self.buffer)!r}")
                return False
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self._head_done = True
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                self._chunked = True
            elif "content-length" in self.headers:
                self._length = int(self.headers["content-length"])
        if self._chunked:
            return self._feed_chunks(eof)
        if self._length is not None:
            self.body += self.buffer
            self.buffer.clear()
            if len(self.body) > self._length:
                raise MemberError("more body than its Content-Length")
            if len(self.body) == self._length:
                return True
            if eof:
                raise MemberError("connection closed before the whole body")
            return False
        self.body += self.buffer  # delimited by the end of the connection
        self.buffer.clear()
        return eof

    def _feed_chunks(self, eof: bool) -> bool:
        while True:
            if self._trailers:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    break
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                if not line:
                    return True
                continue
            if self._chunk_left:
                take = min(self._chunk_left, len(self.buffer))
                data = self.buffer[:take]
                del self.buffer[:take]
                self._chunk_left -= take
                if self._chunk_left >= 2:
                    self.body += data
                else:  # part of the CRLF after the data
                    self.body += data[: max(len(data) - (2 - self._chunk_left), 0)]
                if self._chunk_left:
                    break
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
            del self.buffer[: end + 2]
            if size == 0:
                self._trailers = True
            else:
                self._chunk_left = size + 2
        if eof:
            raise MemberError("connection closed inside a chunked body")
        return False


class _Member:
    """A member, its connection and where it is in its join."""

    def __init__(self, member: Joiner, address: tuple[str, int], netloc: str) -> None:
        self.member = member
        self.address = address
        self.netloc = netloc
        self.steps: Steps = member.steps()
        self.sock: socket.socket | None = None
        self.out = b""
        self.parser = _ReplyParser()
        self.request: Request | None = None
        self.reused = False  # the request went out on a connection that served before
        self.retried = False
        self.found: list[str] | None = None
        self.done_at = 0.0

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's dialer does
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise MemberError(f"{self.member.name}: connect: {errno.errorcode.get(code, code)}")
        self.sock = sock
        return sock

    def send(self, request: Request) -> None:
        self.request = request
        self.out = request_bytes(self.netloc, request)
        self.parser = _ReplyParser()


def run_members(members: Sequence[Joiner], timeout: float) -> tuple[float, float, list[list[str]]]:
    """Run every member's join at once on one selector; returns when the first request
    went out and the last member was done (``time.monotonic()``), and the member ids each
    member ended up with.  A request with a ``delay`` goes out that long after the
    previous reply (its connection unwatched meanwhile)."""
    if not members:
        raise ValueError("no members")
    parts = urlsplit(members[0].token_url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"{members[0].token_url}: the loop speaks plain http only")
    address = (parts.hostname, parts.port or 80)
    states = [_Member(m, address, parts.netloc) for m in members]
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as sel:
            start = time.monotonic()
            for state in states:
                state.send(next(state.steps))
                sel.register(state.connect(), selectors.EVENT_WRITE, state)
            pending = len(states)
            timers: _Timers = []
            while pending:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _resume(heapq.heappop(timers)[2], sel)
                left = deadline - now
                if left <= 0:
                    raise MemberError(
                        f"{pending} of {len(states)} members still joining after {timeout} s"
                    )
                wait = min(left, timers[0][0] - now) if timers else left
                for key, events in sel.select(wait):
                    state = key.data
                    if events & selectors.EVENT_WRITE:
                        _write(state, sel)
                    elif _read(state, sel, timers):
                        pending -= 1
    finally:
        for state in states:
            if state.sock is not None:
                state.sock.close()
    return start, max(s.done_at for s in states), [s.found or [] for s in states]


def _write(state: _Member, sel: selectors.BaseSelector) -> None:
    sock = state.sock
    assert sock is not None
    try:
        sent = sock.send(state.out)
    except BlockingIOError:
        return
    except OSError as exc:
        _retry(state, sel, exc)
        return
    state.out = state.out[sent:]
    if not state.out:
        sel.modify(sock, selectors.EVENT_READ, state)


def _read(state: _Member, sel: selectors.BaseSelector, timers: _Timers) -> bool:
    """Take what arrived; True when the member has finished its join."""
    sock = state.sock
    assert sock is not None and state.request is not None
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except ConnectionResetError as exc:
        if state.parser.status or state.parser.buffer:
            raise MemberError(f"{state.member.name}: connection reset in a reply") from exc
        data = b""
    if not data and not state.parser.buffer and not state.parser.status:
        _retry(state, sel, MemberError("closed before any reply"))
        return False
    if not state.parser.feed(data):
        return False
    parser = state.parser
    reply = Reply(parser.status, parser.headers.get("x-etcd-index"), bytes(parser.body))
    try:
        request = state.steps.send(reply)
    except StopIteration as done:
        state.found = done.value
        state.done_at = time.monotonic()
        sel.unregister(sock)
        sock.close()
        state.sock = None
        return True
    state.send(request)
    state.retried = False
    if parser.close_after or not data:
        state.reused = False
        sel.unregister(sock)
        sock.close()
        state.sock = None
    else:
        state.reused = True
    if request.delay > 0:
        if state.sock is not None:
            sel.unregister(state.sock)  # nothing to read until it asks again
        heapq.heappush(timers, (time.monotonic() + request.delay, next(_sequence), state))
    elif state.sock is not None:
        sel.modify(sock, selectors.EVENT_WRITE, state)
    else:
        _resume(state, sel)
    return False


def _resume(state: _Member, sel: selectors.BaseSelector) -> None:
    """Send the member's pending request: on its kept connection, else on a new one."""
    sock = state.sock if state.sock is not None else state.connect()
    sel.register(sock, selectors.EVENT_WRITE, state)


def _retry(state: _Member, sel: selectors.BaseSelector, exc: Exception) -> None:
    """A kept connection the server had closed while idle: send the request again once
    on a new one, as Go's transport does; anything else fails the run."""
    if not state.reused or state.retried or state.request is None:
        raise MemberError(f"{state.member.name}: {exc}") from exc
    state.retried = True
    state.reused = False
    state.send(state.request)
    _reconnect(state, sel)


def _reconnect(state: _Member, sel: selectors.BaseSelector) -> None:
    old = state.sock
    if old is not None:
        sel.unregister(old)
        old.close()
    sel.register(state.connect(), selectors.EVENT_WRITE, state)
