"""One connection of the live server (:class:`.server.GoHTTPServer`) on its event loop.

:class:`Connection` reads without blocking into a bounded buffer, feeds the request head
to Go's framing (:mod:`.gohttp`) as it arrives, runs the application once the head is in
(again once the body is buffered, when it reads body bytes that had not arrived), and
writes the reply through a bounded output buffer; a long poll or a delay fault is a
:class:`~.._service.messages.Pending` it arms, so a slow client holds up nobody else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import selectors
import socket
import ssl
import sys
import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from .._constants import RAISE_BODY_LIMIT
from .._errors import Error
from .._service.app import DEFER_KEY
from .._service.messages import Pending
from .gohttp import (
    _CHUNK_LINE_MAX,
    MAX_HEADER_BYTES,
    MAX_POST_HANDLER_READ,
    GoExchange,
    Refusal,
    ReplyWriter,
    RequestBody,
)
from .loop import Timer

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

    from .server import GoHTTPServer

__all__ = ["Connection"]

log = logging.getLogger("pytest_etcd_discovery")


class _NeedBody(Error):
    """The application asked for body bytes that have not arrived yet (a ``100-continue``
    body, or a limit it raised): it is run again once they are in the buffer."""


#: Bytes of a reply waiting to be sent past which a streamed body is not asked for more.
OUT_HIGH = 256 << 10
#: Bytes read from a socket at a time.
RECV_SIZE = 65536
#: Bytes buffered at most from a client whose request waits (a long poll), past which
#: its connection is not read until the reply is out.
WAIT_READ_MAX = RECV_SIZE
_HEAD, _BODY, _APP, _CLOSING = range(4)


class _BufReader:
    """A connection's buffered bytes from ``pos`` on, read like a socket file: a read
    the buffer cannot fill raises :class:`_NeedBody`, unless the client has ended (then
    it is short, as a socket's at its end)."""

    def __init__(self, conn: Connection, pos: int) -> None:
        self._conn = conn
        self.pos = pos

    def read(self, size: int) -> bytes:
        buf = self._conn.inbuf
        if len(buf) - self.pos < size and not self._conn.eof:
            raise _NeedBody
        data = bytes(buf[self.pos : self.pos + size])
        self.pos += len(data)
        return data

    def readline(self, size: int) -> bytes:
        buf = self._conn.inbuf
        newline = buf.find(b"\n", self.pos, self.pos + size)
        if newline >= 0:
            end = newline + 1
        elif len(buf) - self.pos >= size or self._conn.eof:
            end = min(len(buf), self.pos + size)
        else:
            raise _NeedBody
        data = bytes(buf[self.pos : end])
        self.pos = end
        return data


class _ChunkScan:
    """Where a chunked body's framing ends in a buffer, found incrementally: what
    :class:`~.gohttp.RequestBody` would read of it at most (its end, where its framing
    breaks, or its limit), so the application runs once all of that is buffered."""

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self._state = "line"  # "line", "data", "crlf", "trailer"
        self._left = 0
        self._data = 0
        self.done = False

    def scan(self, buf: bytearray, eof: bool, cap: int) -> bool:
        """Advance over what ``buf`` holds; True once the body is all there (``cap``:
        data bytes after which RequestBody stops reading)."""
        while not self.done:
            if eof and self.pos >= len(buf):
                self.done = True
                break
            if self._state in ("line", "trailer"):
                newline = buf.find(b"\n", self.pos, self.pos + _CHUNK_LINE_MAX + 1)
                if newline < 0:
                    if len(buf) - self.pos > _CHUNK_LINE_MAX or eof:
                        self.done = True  # a line too long, or cut: the framing broke
                    break
                line = bytes(buf[self.pos : newline + 1])
                self.pos = newline + 1
                if self._state == "trailer":
                    self.done = line in (b"\r\n", b"\n")
                    continue
                text = line.split(b";", 1)[0].strip(b" \t\r\n")
                if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", text):
                    self.done = True
                    break
                self._left = int(text, 16)
                self._state = "data" if self._left else "trailer"
            elif self._state == "data":
                take = min(self._left, len(buf) - self.pos)
                if take <= 0:
                    break
                self.pos += take
                self._left -= take
                self._data += take
                if self._data >= cap:
                    self.done = True
                elif self._left == 0:
                    self._state = "crlf"
            else:  # the CRLF after a chunk's data
                if len(buf) - self.pos < 2 and not eof:
                    break
                ok = buf[self.pos : self.pos + 2] == b"\r\n"
                self.pos += 2
                if not ok:
                    self.done = True
                self._state = "line"
        return self.done


class Connection(GoExchange):
    """One client connection on the event loop: its buffers, its request being read or
    answered, and Go's framing (:class:`~.gohttp.GoExchange`)."""

    def __init__(
        self, server: GoHTTPServer, sock: socket.socket, address: Any, first: bytes = b""
    ) -> None:
        self.server = server
        self.loop = server.loop
        self.sock = sock
        self.client_address = address
        self.max_body = server.max_body
        self._scheme = "https" if isinstance(sock, ssl.SSLSocket) else "http"
        where: Any = server.server_address
        self._server_name, self._server_port = str(where[0]), str(where[1])
        self.inbuf = bytearray(first)
        self.outbuf = bytearray()
        self.eof = False
        self.closed = False
        self._close_after_flush = False
        self._phase = _HEAD
        self._events = 0
        self._served = 0
        self._head: Generator[int, bytes, tuple[WSGIEnvironment, bool] | None] | None = None
        self._head_need = 0
        self._scan = 0
        self._searched = 0
        self._timer: Timer | None = None
        self._head_deadline: float | None = None
        self._request: tuple[WSGIEnvironment, bool] | None = None
        self._pristine: WSGIEnvironment = {}
        self._reader = _BufReader(self, 0)
        self._chunk_scan: _ChunkScan | None = None
        self._await_body = False
        self._reply: ReplyWriter | None = None
        self._chunks: Any = None
        self._iter: Iterator[bytes] | None = None
        self._paused = False
        # While the application's pieces are handed out, replies are only buffered and
        # go out in one send when it stops (a watch's event and its last chunk together).
        self._corked = False
        self._pending: Pending | None = None
        self._pending_timer: Timer | None = None
        self._wake_token: object | None = None
        self._worker: threading.Thread | None = None

    # -- the socket ---------------------------------------------------------------------

    def start(self) -> None:
        """Serve from now on (on the loop)."""
        if self.closed:
            return
        try:
            self.sock.setblocking(False)
        except OSError:
            self._close()
            return
        # Like Go: no Nagle delay (a reply never waits for an ACK).
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._begin_request()
        self._update()
        if self._scheme == "https":
            self._read()  # the handshake's last read may hold the request already
        elif self.inbuf:
            self._advance()

    def _update(self) -> None:
        """Ask the loop for what this connection waits for now."""
        if self.closed:
            return
        events = 0
        # While a request waits for a slow reader or a thread the connection is not
        # read: it must not spin on bytes it cannot take yet. One answered at once, or
        # waiting on the loop (a long poll, a delay), keeps its registration (no two
        # epoll calls a request): what arrives meanwhile is buffered for the next
        # request, up to WAIT_READ_MAX bytes.
        waiting = (
            self._paused
            or self._worker is not None
            or (self._pending is not None and len(self.inbuf) >= WAIT_READ_MAX)
        )
        phase = self._phase
        if not self.eof and (phase in (_HEAD, _BODY) or (phase == _APP and not waiting)):
            events |= selectors.EVENT_READ
        if self.outbuf and not self._corked:  # corked: flushed when the pump stops
            events |= selectors.EVENT_WRITE
        if events != self._events:
            try:
                if not self._events:
                    self.loop.register(self.sock, events, self._on_events)
                else:
                    self.loop.modify(self.sock, events, self._on_events)
            except (OSError, ValueError):
                self._close()
                return
            self._events = events

    def _on_events(self, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._flush()
        if events & selectors.EVENT_READ and not self.closed:
            self._read()

    def _read(self) -> None:
        sock = self.sock
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                self._close()  # reset, or a TLS error: nobody is there to answer
                return
            if not data:
                self.eof = True
                break
            self.inbuf += data
            # TLS may hold decrypted bytes the socket no longer signals.
            if not (self._scheme == "https" and sock.pending()):  # type: ignore[attr-defined]
                break
        self._advance()
        self._update()

    def send(self, data: bytes) -> None:
        if self.loop.thread is not None and not self.loop.in_loop():
            self.loop.call_soon_threadsafe(functools.partial(self._send_here, data))
            return
        self._send_here(data)

    def _send_here(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.outbuf and not self._corked:
            # Nothing queued: straight to the socket, no copy through the buffer (and
            # with all of it sent, nothing for the loop to watch).
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError:
                self._close()  # the client went away mid-reply
                return
            if sent == len(data):
                return
            data = data[sent:]
        self.outbuf += data
        self._flush()

    def _flush(self) -> None:
        out = self.outbuf
        while out:
            try:
                sent = self.sock.send(out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                break
            except OSError:
                self._close()  # the client went away mid-reply
                return
            del out[:sent]
        if not out:
            if self._close_after_flush:
                self._close(shut=True)
                return
            if self._paused:
                self._paused = False
                self.loop.call_soon(self._pump)
        self._update()

    def _close(self, shut: bool = False) -> None:
        """Close the connection now (``shut``: say so to the client first, as a server
        that closes after its reply does)."""
        if self.closed:
            return
        self.closed = True
        self._phase = _CLOSING
        self._cancel_timer()
        self._disarm()
        self._close_chunks()
        self.server._forget(self)  # before the client can see the close
        self.loop.unregister(self.sock)
        if shut:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def _finish(self) -> None:
        """Close once what is left of the reply is sent."""
        self._phase = _CLOSING
        self._close_after_flush = True
        self._flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the request head ---------------------------------------------------------------

    def _begin_request(self) -> None:
        self._phase = _HEAD
        self._body = None
        self._request = None
        self._chunk_scan = None
        self._await_body = False
        # One reader for all of a connection's requests (each starts at the buffer's
        # start); the line-by-line head reader only once a head comes in pieces.
        self.rfile = self._reader
        self._reader.pos = 0
        self._head = None
        self._scan = self._searched = 0
        if self._served == 0:
            self._start_head_clock()

    def _start_head_clock(self) -> None:
        # Go's ReadHeaderTimeout: from the connection's start, or for a later request
        # on a kept connection from its first byte. One timer per connection at most,
        # moved on lazily: a kept connection's requests do not each push one.
        timeout = self.server.head_timeout
        if timeout is None:
            return
        self._head_deadline = self.loop.now() + timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._head_deadline, self._head_clock)

    def _stop_head_clock(self) -> None:
        self._head_deadline = None  # its timer, when it comes, finds nothing to do

    def _head_clock(self) -> None:
        self._timer = None
        deadline = self._head_deadline
        if deadline is None or self.closed:
            return
        if self.loop.now() < deadline:
            self._timer = self.loop.call_at(deadline, self._head_clock)
        elif self._phase == _HEAD:
            self._close()  # past the deadline: closed without a reply, as Go's

    def _advance(self) -> None:
        if self._phase == _HEAD:
            self._feed_head()
        if self._phase == _BODY:
            self._check_body()

    def _feed_head(self) -> None:
        buf = self.inbuf
        if self._served and buf and self._head_deadline is None:
            self._start_head_clock()
        if self._served and not buf and self.eof:
            self._close()  # a kept connection the client closed
            return
        if self._head is None:
            # The usual case: the whole head is in the buffer (a kept connection's next
            # request), so it is parsed in one call, not fed a line at a time.
            end = buf.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
            if end >= 0:
                try:
                    result, self._scan = self.parse_head(buf[: end + 4].decode("latin-1"))
                except Refusal as refusal:
                    self._refuse(refusal)
                    return
                self._head_read(result)
                return
            self._head = self.read_head()
            self._head_need = next(self._head)
        while self._phase == _HEAD:
            need = self._head_need
            start = self._scan
            newline = buf.find(b"\n", max(start, self._searched), start + need)
            if newline >= 0:
                end = newline + 1
            elif len(buf) - start >= need or self.eof:
                end = min(len(buf), start + need)
            else:
                self._searched = len(buf)
                return
            line = bytes(buf[start:end])
            self._scan = self._searched = end
            try:
                self._head_need = self._head.send(line)
            except StopIteration as stop:
                self._head_read(stop.value)
                return
            except Refusal as refusal:
                self._refuse(refusal)
                return

    def _refuse(self, refusal: Refusal) -> None:
        self._stop_head_clock()
        self.send(refusal.reply)
        self._finish()

    def _head_read(self, result: tuple[WSGIEnvironment, bool] | None) -> None:
        self._stop_head_clock()
        if result is None:
            self._close()  # the client ended before a whole head
            return
        self._request = result
        # Kept for a rerun (an application that must wait for its body): only then.
        self._pristine = dict(result[0]) if self._body is not None else result[0]
        self._reader.pos = self._scan
        self._phase = _BODY

    # -- the request body ---------------------------------------------------------------

    def _check_body(self) -> None:
        body = self._body
        if body is not None and self._await_body and not self._body_buffered(body):
            return
        # The application runs as soon as the head is in, as Go's handler does (it may
        # answer from the head alone); when it reads body bytes that have not arrived it
        # stops (_NeedBody, before it did anything: handlers read their input first) and
        # runs again once the body is buffered, as far as it can read it.
        self._await_body = False
        self._phase = _APP
        self._start_app()
        self._update()

    def _body_buffered(self, body: RequestBody) -> bool:
        cap = body._limit + MAX_POST_HANDLER_READ + 1
        if not body._chunked:
            length = int(self._pristine.get("CONTENT_LENGTH") or 0)
            return self.eof or len(self.inbuf) - self._scan >= min(length, cap)
        if self._chunk_scan is None:
            self._chunk_scan = _ChunkScan(self._scan)
        return self._chunk_scan.scan(self.inbuf, self.eof, cap)

    # -- the application ----------------------------------------------------------------

    def _start_app(self) -> None:
        assert self._request is not None
        environ, keep = self._request
        special = self._go_server_reply(environ, keep)
        if special is not None:
            self.send(special)
            # Only OPTIONS * leaves the connection as the request asked.
            try:
                keep = keep and environ["REQUEST_METHOD"] == "OPTIONS" and self.body_done()
            except _NeedBody:
                keep = False  # a body still on its way after the reply: not worth waiting
            self._request_done(keep)
            return
        app = self.server.application
        if getattr(app, "serves_deferred", False):
            environ[DEFER_KEY] = True
            self._reply = ReplyWriter(self, environ, keep)
            try:
                self._chunks = app(environ, self._reply.start_response)
                self._iter = iter(self._chunks)
            except BaseException as exc:
                self._app_failed(exc)
                return
            self._pump()
        else:
            self._start_worker(app, environ, keep)

    def _rerun(self) -> None:
        """Run the application again on a fresh environ, its body as read so far (a
        100-continue already sent is not sent again, a raised limit stays raised)."""
        old = self._body
        assert old is not None and self._request is not None
        environ = dict(self._pristine)
        assert isinstance(self.rfile, _BufReader)
        self.rfile.pos = self._scan
        body = RequestBody(self.rfile, None if old._chunked else old._left + old._given, old._limit)
        self._body = body
        environ["wsgi.input"] = body
        environ[RAISE_BODY_LIMIT] = body.raise_limit
        self._request = (environ, self._request[1])
        self._phase = _BODY
        self._chunk_scan = None
        self._await_body = True
        self._update()
        self._advance()

    def _pump(self) -> None:
        """Hand the reply the application's next pieces until it ends or must wait."""
        reply, pieces = self._reply, self._iter
        if self.closed or reply is None or pieces is None:
            return
        self._corked = True
        try:
            while not self.closed:
                if len(self.outbuf) > OUT_HIGH:
                    self._paused = True  # _flush resumes once the client took some
                    self._update()
                    return
                piece = next(pieces, None)
                if piece is None:
                    reply.finish()
                    self._request_done(reply.keep)
                    return
                if type(piece) is not bytes and isinstance(piece, Pending):
                    self._wait(piece)
                    return
                reply.write(piece)
        except BaseException as exc:
            self._app_failed(exc)
        finally:
            self._corked = False
            if self.outbuf and not self.closed:
                self._flush()

    def _app_failed(self, exc: BaseException) -> None:
        reply = self._reply
        self._close_chunks()
        if isinstance(exc, _NeedBody):
            self._rerun()
        elif isinstance(exc, OSError):
            # A "drop" fault (or the client gone): close without (more of) a reply.
            self._finish()
        elif isinstance(exc, Exception):
            # The application failed without answering (it answers its own bugs itself):
            # Go would close the connection; say 500 first when nothing was sent.
            if reply is None or not reply.sent:
                self.send(Refusal("500 Internal Server Error").reply)
            sys.stderr.write(f"etcd discovery fake: the application failed: {exc!r}\n")
            self._finish()
        else:
            raise exc

    def _wait(self, pending: Pending) -> None:
        """Wait for ``pending`` on the loop: its wake-up (from any thread) or its timer
        resumes :meth:`_pump`; nothing blocks meanwhile."""
        token = self._wake_token = object()
        loop = self.loop

        def wake() -> None:
            loop.call_soon_threadsafe(functools.partial(self._woken, token))

        self._pending = pending
        timeout = pending.arm(wake)
        if timeout is not None and self._wake_token is token:
            self._pending_timer = loop.call_later(timeout, functools.partial(self._woken, token))
        self._update()

    def _woken(self, token: object) -> None:
        if token is not self._wake_token or self.closed:
            return
        self._disarm()
        self._pump()

    def _disarm(self) -> None:
        self._wake_token = None
        if self._pending is not None:
            self._pending.disarm()
            self._pending = None
        if self._pending_timer is not None:
            self._pending_timer.cancel()
            self._pending_timer = None

    def _close_chunks(self) -> None:
        chunks, self._chunks, self._iter = self._chunks, None, None
        close = getattr(chunks, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.debug("etcd discovery fake: closing a reply failed", exc_info=True)

    def _request_done(self, keep: bool) -> None:
        self._close_chunks()
        self._reply = None
        self._served += 1
        end = self._scan if self._body is None else self.rfile.pos
        if not keep or self.closed:
            self._finish()
            return
        del self.inbuf[:end]
        self._begin_request()
        self._update()
        if self.inbuf or self.eof:
            self.loop.call_soon(self._advance_later)

    def _advance_later(self) -> None:
        if not self.closed:
            self._advance()
            self._update()

    # -- an application that may block: a thread for the request --------------------

    def _start_worker(self, app: WSGIApplication, environ: WSGIEnvironment, keep: bool) -> None:
        thread = threading.Thread(
            target=self._work,
            args=(app, environ, keep),
            name=f"etcd-discovery-fake:{self.client_address}",
            daemon=True,
        )
        self._worker = thread
        self._update()
        if not self.server._start_worker(thread):
            self._worker = None
            self._close()

    def _work(self, app: WSGIApplication, environ: WSGIEnvironment, keep: bool) -> None:
        reply = ReplyWriter(self, environ, keep)
        outcome: tuple[str, Any] = ("done", False)
        try:
            chunks = app(environ, reply.start_response)
            try:
                for data in chunks:
                    reply.write(data)
                reply.finish()
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            outcome = ("done", reply.keep)
        except BaseException as exc:  # handed to the loop, which treats it as inline
            outcome = ("failed", exc)
            if not isinstance(exc, (_NeedBody, OSError)) and isinstance(exc, Exception):
                if not reply.sent:
                    self.send(Refusal("500 Internal Server Error").reply)
                outcome = ("failed", OSError())
                sys.stderr.write(f"etcd discovery fake: the application failed: {exc!r}\n")
        finally:
            self.server._worker_ended(threading.current_thread())
            self.loop.call_soon_threadsafe(functools.partial(self._worker_done, outcome))

    def _worker_done(self, outcome: tuple[str, Any]) -> None:
        self._worker = None
        if self.closed:
            return
        kind, value = outcome
        if kind == "done":
            self._request_done(bool(value))
        else:
            self._app_failed(value)
