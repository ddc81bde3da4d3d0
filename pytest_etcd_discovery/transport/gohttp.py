"""The live server's request handler, answering malformed requests like Go's ``net/http``.

Both real services are Go programs; Python's :mod:`http.server` answers the same bad
input differently, measured against ``/usr/bin/discovery.etcd.io`` (Go 1.x):

1. a malformed request line (a space in the path, no HTTP version, TLS or other bytes
   that are not HTTP, a non-numeric ``Content-Length``) gets Go's bare
   ``400 Bad Request`` text, not an HTML error page; an HTTP/0.9 request line
   (``GET /x``) is refused the same way instead of being answered without headers;
2. a bad ``%`` escape in the *path* (``/T/%zz``) is refused by Go's request parser
   before any handler runs (escapes in the query are the handler's business: etcd
   answers ``210 Invalid POST form``);
3. raw non-ASCII bytes in the path are UTF-8 (invalid bytes become U+FFFD in etcd's
   JSON), not Latin-1 as werkzeug's handler would read them;
4. a request line may be as long as Go's header limit (1 MiB + 4 KiB; beyond it
   ``431``), not 64 KiB; the status line has Go's canonical reason phrase;
5. connections stay open between requests (HTTP/1.1 keep-alive, no Nagle delay), as
   etcd's and Go's clients expect; werkzeug's handler closes every one.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["GoLikeRequestHandler", "GoLikeServer"]

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: Go writes this for every request it cannot parse (net/http server.go).
_GO_400 = "400 Bad Request"
#: Go's answer to headers over MaxHeaderBytes (Python trips earlier, at 64 KiB lines).
_GO_431 = "431 Request Header Fields Too Large"
_GO_MAX_LINE = (1 << 20) + 4096
_GO_505 = "505 HTTP Version Not Supported: unsupported protocol version"
_CTL = re.compile(r"[\x00-\x1f\x7f]")
#: net/http's bufferBeforeChunkingSize: a reply of unknown length that ends within it
#: is sent with a Content-Length.
_GO_CHUNKING_BUFFER = 2048


class GoLikeRequestHandler(WSGIRequestHandler):
    """werkzeug's handler with Go's answers to requests that cannot be parsed."""

    #: Buffered writes: a reply's head and body leave in one ``send`` at each flush (one
    #: packet instead of two, and one GIL round trip less per request).
    wbufsize = -1

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Go: "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n
        # Connection: close\r\n\r\n400 Bad Request", then it closes the connection.
        # Python's own messages ("Bad request syntax (...)") are not Go's: dropped.
        if code in (414, 431):
            text = _GO_431
        elif code == 505:
            text = _GO_505
        else:
            text = _GO_400
        self._go_error(text)

    def _go_error(self, text: str) -> None:
        self._write_raw(
            f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Connection: close\r\n\r\n{text}"
        )

    def send_response_only(self, code: int, message: str | None = None) -> None:
        # werkzeug passes "404 NOT FOUND"; Go writes the canonical "404 Not Found".
        with contextlib.suppress(ValueError):
            message = HTTPStatus(code).phrase
        # Go answers an HTTP/1.0 request with an HTTP/1.0 status line.
        protocol = self.protocol_version
        if self.request_version == "HTTP/1.0":
            self.protocol_version = "HTTP/1.0"
        try:
            super().send_response_only(code, message)
        finally:
            self.protocol_version = protocol

    def _write_raw(self, response: str) -> None:
        self.close_connection = True
        try:
            self.wfile.write(response.encode("ascii", "replace"))
            self.wfile.flush()
        except OSError:
            pass  # the client is gone already

    def handle_one_request(self) -> None:
        # http.server's loop with Go's limit: a request line may be up to
        # DefaultMaxHeaderBytes (1 MiB) + 4096, not 64 KiB (beyond it: 431).
        try:
            self.raw_requestline = self.rfile.readline(_GO_MAX_LINE + 1)
            if len(self.raw_requestline) > _GO_MAX_LINE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(431)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            getattr(self, "do_" + self.command)()  # werkzeug serves every method name
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def parse_request(self) -> bool:
        words = self.raw_requestline.split()
        if words[:3] == [b"PRI", b"*", b"HTTP/2.0"]:
            # An HTTP/2 preface on an HTTP/1 server: Go answers an empty 400.
            self._write_raw(
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            )
            return False
        if not super().parse_request():
            return False
        if _CTL.search(self.path):
            self.send_error(400)  # net/url: invalid control character in URL
            return False
        if self.headers.defects:
            self.send_error(400)  # a header line without a colon
            return False
        if self.request_version == "HTTP/1.1" and "Host" not in self.headers:
            self._go_error(f"{_GO_400}: missing required Host header")
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400)
            return False
        length = self.headers.get("Content-Length")
        if length is not None and not length.strip().isdigit():
            self.send_error(400)
            return False
        if _BAD_ESCAPE.search(self._raw_path()):
            self.send_error(400)
            return False
        return True

    # -- keep-alive: Go's server reuses connections, and so do etcd and requests ---------

    def setup(self) -> None:
        super().setup()
        # Like Go: no Nagle delay, or a reply's body waits ~40 ms for its headers' ACK.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            # The client left with part of a reply still buffered: closing wfile fails
            # its last flush (and closes it anyway); nobody is there to tell.
            self.rfile.close()

    def handle_expect_100(self) -> bool:
        # http.server would send "100 Continue" while parsing and run_wsgi again: the
        # real service sends one.
        return True

    def run_wsgi(self) -> None:
        """Serve one request and keep the connection for the next when the request allows.

        werkzeug's own version closes every connection (and, after the reply, reads
        away whatever the client sent next); this one reads exactly the request body, so
        the next request on the connection is intact.
        """
        http11 = self.request_version == "HTTP/1.1"
        if (
            http11
            and self.headers.get("Expect", "").lower().strip() == "100-continue"
            and self.headers.get("Content-Length", "0").strip() != "0"
        ):
            # Once, for a body to come (http.server's own is turned off above). Go sends it
            # when the handler starts reading the body; the fake's journal reads every
            # body, so it is sent for all (the real /health and /new send none and close).
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        environ = self.make_environ()
        body: LimitedStream | None = None
        # Like Go: HTTP/1.1 connections stay open unless the client says "close"; HTTP/1.0
        # ones only when it asks for "keep-alive" (and the reply's length is known, below).
        connection = self.headers.get("Connection", "").lower()
        keep = (
            (connection != "close" if http11 else connection == "keep-alive")
            and not environ.get("wsgi.input_terminated")  # chunked uploads: close after
        )
        if keep:
            body = LimitedStream(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))  # type: ignore[arg-type]
            environ["wsgi.input"] = body
        started: list[Any] = []
        sent = False
        chunked = False
        # Go holds a reply of unknown length in a 2 KiB buffer: if the handler ends before
        # it fills or is flushed, the reply gets a Content-Length instead of chunks.
        held = bytearray()
        holding = False

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal holding
            if exc_info and sent:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            holding = not any(name.lower() == "content-length" for name, _ in headers)
            return write

        def send_head(length: int | None) -> None:
            nonlocal sent, chunked, keep
            status, headers = started
            code_text, _, reason = status.partition(" ")
            code = int(code_text)
            self.send_response(code, reason)
            for name, value in headers:
                lowered = name.lower()
                if lowered == "connection":
                    continue
                if lowered == "content-length" and value == "0" and self.command == "HEAD":
                    # Go sets a HEAD reply's length only from what the handler wrote,
                    # and for HEAD its handlers here write nothing (405s, redirects).
                    continue
                self.send_header(name, value)
            bodiless = self.command == "HEAD" or code < 200 or code in (204, 304)
            if length is not None and not bodiless:
                self.send_header("Content-Length", str(length))
            elif holding and not bodiless:
                # Like Go: HTTP/1.1 bodies of unknown length are chunked; HTTP/1.0 ones
                # end when the connection closes.
                if http11:
                    chunked = True
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    keep = False
            if http11 and not keep:
                self.send_header("Connection", "close")
            elif keep and not http11:
                self.send_header("Connection", "keep-alive")
            self.end_headers()
            sent = True

        def send_body(data: bytes) -> None:
            if data:
                if chunked:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                else:
                    self.wfile.write(data)

        def write(data: bytes) -> None:
            # An empty piece is the app's flush (etcd sends a long poll's headers at once).
            if not sent and holding and data and len(held) + len(data) <= _GO_CHUNKING_BUFFER:
                held.extend(data)
                return
            if not sent:
                send_head(None)
                send_body(bytes(held))
                held.clear()
            send_body(data)
            self.wfile.flush()

        try:
            app_iter = self.server.app(environ, start_response)
            try:
                for data in app_iter:
                    write(data)
                if not sent:
                    # The whole reply fits what Go would have held: its length is known.
                    send_head(len(held) if holding else None)
                    send_body(bytes(held))
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
            if body is not None:
                body.exhaust()  # what the app did not read, so the next request starts clean
        except (ConnectionError, TimeoutError) as exc:
            self.connection_dropped(exc, environ)
            return
        except Exception:
            # The app answered nothing usable: Go's 500 if nothing was sent, then close.
            if not sent:
                self._go_error("500 Internal Server Error")
            self.close_connection = True
            return
        self.close_connection = not keep

    def connection_dropped(
        self, error: BaseException, environ: WSGIEnvironment | None = None
    ) -> None:
        # A "drop" fault (or a client that went away): close without a reply.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _raw_path(self) -> str:
        # The target as sent: http.server folds a leading "//" in self.path, Go doesn't.
        words = self.raw_requestline.split()
        target = words[1].decode("latin-1") if len(words) > 1 else self.path
        if target.startswith("/"):
            # Origin form, kept whole: "//new" is a path Go redirects, not a host.
            return target.split("?", 1)[0]
        return urlsplit(target).path  # absolute form: "http://host/path"

    def make_environ(self) -> WSGIEnvironment:
        environ: Any = super().make_environ()
        # PATH_INFO as WSGI wants it: the unescaped bytes, as a Latin-1 string.
        raw = self._raw_path().encode("latin-1", "replace")
        environ["PATH_INFO"] = unquote_to_bytes(raw).decode("latin-1")
        return environ  # type: ignore[no-any-return]


class GoLikeServer(ThreadedWSGIServer):
    """werkzeug's threaded server that keeps its connections and their threads, so that
    closing it ends them all: idle keep-alive connections (their threads wait for a next
    request) included, and no handler is left writing to stderr after ``stop()``."""

    daemon_threads = True  # handler threads never keep the interpreter alive
    #: How long ``server_close`` waits for each handler thread to end.
    join_timeout = 10.0
    #: False until ``__init__`` is done (werkzeug's calls ``server_close`` on its way).
    _serving = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._closed = False
        self._serving = True

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn's, but the thread is kept with its connection.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._lock:
            if self._closed:
                self.shutdown_request(request)
                return
            self._connections[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.pop(request, None)

    def server_close(self) -> None:
        """Stop listening, shut every connection still open, wait for their threads."""
        super().server_close()
        if not self._serving:
            return
        with self._lock:
            self._closed = True
            open_now = list(self._connections.items())
        for conn, _ in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in open_now:
            if thread is not threading.current_thread():
                thread.join(self.join_timeout)
