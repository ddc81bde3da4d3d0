"""Go's HTTP/1.x framing, served to a WSGI application by the live server's connections
(:mod:`.server`, on one event loop).

Both real services are Go programs, so the live fake reads and writes HTTP the way Go's
``net/http`` server (1.19, measured against ``/usr/bin/discovery.etcd.io``) does:

1. **The request head.** It may be up to 1 MiB + 4 KiB (request line and headers
   together; beyond it ``431``). A malformed request line, method, version or header
   line, a bad ``%`` escape or a control byte in the target, a bad ``Content-Length``
   or two different ones, and more than one ``Host`` get Go's bare ``400 Bad Request``;
   a missing, malformed (non-ASCII included) or invalid ``Host``/header name/value get
   Go's ``400 Bad Request: <reason>``; a version other than 1.x ``505``; a transfer
   coding other than ``chunked`` ``501``. Then Go closes the connection.
2. **The request target.** The path is unescaped to bytes (raw non-ASCII bytes are kept,
   so UTF-8 paths stay UTF-8); ``//new`` stays a path; an absolute target
   (``GET http://host/new``, as proxies receive) routes by its path, and its host
   replaces ``Host``. ``OPTIONS *`` gets Go's ``200`` with no body, any other ``*``
   target ``ServeMux``'s ``400``, and an ``Expect`` other than ``100-continue`` ``417``,
   all before the application.
3. **The request body** is read as framed (``Content-Length`` or chunked) and never
   beyond ``max_body`` bytes: past that it reads as ended. A chunked body whose framing
   breaks (a bad chunk-size line, a client gone mid-body) also reads as ended where it
   broke. ``100 Continue`` goes out once, when the application first reads. After the
   reply Go reads away at most 256 KiB of what the application left; with more left, or
   a broken body, the connection closes (and the reply says ``Connection: close``).
4. **The reply.** Go's status line (its own reason phrase; ``HTTP/1.0`` for HTTP/1.0
   requests) and its header order: the handler's headers sorted by name, then the ones
   its server writes, in this order: ``Date``, ``Content-Length``, a sniffed
   ``Content-Type``, ``Connection``, ``Transfer-Encoding``. The application says which
   of its headers are the server's in ``environ[GO_SUPPLIED_KEY]``
   (:data:`pytest_etcd_discovery._service.app.GO_SUPPLIED_KEY`; by default ``Date`` and
   ``Content-Length``). A reply of unknown length that ends within Go's 2 KiB buffer
   without a flush (an empty piece from the application) gets a ``Content-Length``; a
   longer or flushed one is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0).
   ``HEAD`` replies carry a length only when the handler would have written a body.
5. **Connections** stay open between requests: HTTP/1.1 unless the client says
   ``close``; HTTP/1.0 when it asks for ``keep-alive`` and the reply's length is known
   (then the reply says ``Connection: keep-alive``). No Nagle delay.
6. **The head's deadline**, Go's ``ReadHeaderTimeout`` (the server's ``head_timeout``,
   10 s by default; None for none, as the real service, which sets no timeout): the
   whole request head must arrive within it, counted from the connection's start, or
   for a later request on a kept connection from its first byte (an idle connection
   waits, as Go's with no ``IdleTimeout``). Past it the connection closes without a
   reply, as Go's does. A head trickled a byte at a time cannot hold a connection longer
   (and never holds up another one: each connection is fed as its bytes arrive).
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import sys
import time
from collections.abc import Callable, Generator
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from .._constants import RAISE_BODY_LIMIT
from .._errors import Error
from .._service.app import GO_SUPPLIED_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "DEFAULT_MAX_BODY",
    "HEAD_TIMEOUT",
    "MAX_HEADER_BYTES",
    "GoExchange",
    "RequestBody",
]

#: Go's ``DefaultMaxHeaderBytes`` (1 MiB) plus the 4 KiB its reader allows on top: the
#: whole request head (request line and headers) must fit.
MAX_HEADER_BYTES = (1 << 20) + 4096
#: What the application is given of a body at most: Go's 10 MiB form limit plus one byte,
#: so that a form parser can still tell a body over the limit ("http: POST too large").
DEFAULT_MAX_BODY = (10 << 20) + 1
#: Seconds the whole request head may take by default (Go's ``ReadHeaderTimeout``, which
#: the real service leaves unset; a fake that may face a network bounds it).
HEAD_TIMEOUT = 10.0
#: Go's ``maxPostHandlerReadBytes``: how much of an unread body it reads away after the
#: handler to keep the connection; with more left it closes.
MAX_POST_HANDLER_READ = 256 << 10
#: Go's ``bufferBeforeChunkingSize``.
CHUNKING_BUFFER = 2048
_DEFAULT_SUPPLIED = ("Date", "Content-Length")
#: Go's own order for what its server adds to a handler's headers.
_EXTRA_ORDER = {"date": 0, "content-length": 1, "content-type": 2}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_CTL = re.compile(r"[\x00-\x1f\x7f]")
_VALUE_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is fine in a value
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)\Z")
#: httpguts.ValidHostHeader's bytes: ASCII only, no ``@`` (measured on the real service:
#: ``é.example``, ``\xff`` and ``a@b`` get ``400 Bad Request: malformed Host header``).
_HOST = re.compile(r"[0-9A-Za-z!$%&'()*+,\-.:;=\[\]_~]*\Z")
_URL_HOST = re.compile(r"[0-9A-Za-z\-._~!$&'()*+,;=\[\]<>\"%\x80-\xff]*(?::\d*)?\Z")
_CHUNK_LINE_MAX = 4096  # Go's maxLineLength for chunk-size lines
#: Reason phrases where Python's differ from Go 1.19's ``StatusText``.
_GO_REASONS = {
    413: "Request Entity Too Large",
    414: "Request URI Too Long",
    416: "Requested Range Not Satisfiable",
    418: "I'm a teapot",
    422: "Unprocessable Entity",
}


_NAME = operator.itemgetter(0)  # a header's name, as a sort key (in C, not a Python call)


def _by_extra_order(header: tuple[str, str]) -> int:
    return _EXTRA_ORDER.get(header[0].lower(), 3)


@functools.lru_cache(maxsize=128)
def status_line(code: int, http10: bool) -> str:
    """Go's status line: its reason phrase, whatever the application's was."""
    reason = _GO_REASONS.get(code)
    if reason is None:
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = f"status code {code}"
    return f"{'HTTP/1.0' if http10 else 'HTTP/1.1'} {code} {reason}\r\n"


class _Date:
    """``Date`` values, formatted once a second (a formatdate call costs a few µs)."""

    second = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        now = int(time.time())
        if now != cls.second:
            cls.text, cls.second = formatdate(now, usegmt=True), now
        return cls.text


class Refusal(Error):
    """A request Go's server refuses before any handler runs; ``reply`` is its answer."""

    def __init__(self, status: str = "400 Bad Request", body: str | None = None) -> None:
        super().__init__(status)
        self.reply = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Connection: close\r\n\r\n{status if body is None else body}"
        ).encode("latin-1", "replace")


class RequestBody:
    """``wsgi.input``: the request body as framed, bounded while it is read.

    :param rfile: the connection's buffered reader.
    :param length: the ``Content-Length``, or ``None`` for a chunked body.
    :param limit: bytes the application gets at most; past them the body reads as ended.
    :param on_first_read: called before the first byte is read (``100 Continue``).
    """

    def __init__(
        self,
        rfile: Any,
        length: int | None,
        limit: int,
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self._rfile = rfile
        self._chunked = length is None
        self._left = 0 if length is None else length  # of the body, or of this chunk
        self._ended = length == 0  # the framing says the body is over
        self._given = 0
        self._limit = limit
        self._on_first_read = on_first_read
        #: The framing broke (bad chunk line, client gone): the connection cannot go on.
        self.broken = False

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while piece := self._read_some(65536):
                parts.append(piece)
            return b"".join(parts)
        return self._read_some(size) if size else b""

    def readline(self, size: int | None = -1) -> bytes:
        # Rarely used (forms are parsed from read()): a byte at a time is fine.
        line = bytearray()
        while size is None or size < 0 or len(line) < size:
            byte = self._read_some(1)
            line += byte
            if not byte or byte == b"\n":
                break
        return bytes(line)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def _read_some(self, size: int) -> bytes:
        """At most ``size`` bytes of the body (fewer when a chunk or the limit ends)."""
        room = self._limit - self._given
        if self._ended or room <= 0:
            return b""
        if self._on_first_read is not None:
            self._on_first_read()
            self._on_first_read = None
        if self._chunked and self._left == 0 and not self._next_chunk():
            return b""
        want = min(size, room, self._left)
        data: bytes = self._rfile.read(want)
        if len(data) < want:  # the client went away mid-body
            self._break()
        self._given += len(data)
        self._left -= len(data)
        if self._left == 0 and not self._chunked:
            self._ended = True
        elif self._left == 0 and self._rfile.read(2) != b"\r\n":  # after a chunk's data
            self._break()
        return data

    def _next_chunk(self) -> bool:
        """Read a chunk-size line (and at the last chunk, the trailer); False at the end."""
        line = self._rfile.readline(_CHUNK_LINE_MAX + 1)
        text = line.split(b";", 1)[0].strip(b" \t\r\n")
        # Go: hex digits only, at most 16 of them, on a whole line.
        if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9a-fA-F]{1,16}", text):
            self._break()
            return False
        self._left = int(text, 16)
        if self._left == 0:
            while True:  # trailer lines, then the empty line
                trailer = self._rfile.readline(_CHUNK_LINE_MAX + 1)
                if not trailer.endswith(b"\n"):
                    self._break()
                    break
                if trailer in (b"\r\n", b"\n"):
                    break
            self._ended = True
            return False
        return True

    def raise_limit(self, limit: int) -> None:
        """Let the application read up to ``limit`` bytes (never lowers the limit): the
        control API's own routes take bigger bodies than the discovery routes."""
        self._limit = max(self._limit, limit)

    def _break(self) -> None:
        self.broken = self._ended = True
        self._left = 0

    def drain(self) -> bool:
        """Read away what the application left, as Go does after its handler: at most
        256 KiB. True when the body ended cleanly (the connection can carry on)."""
        if self.broken or self._on_first_read is not None:
            # Go neither asks for a body it was told to wait for ("100-continue") nor
            # reads one it cannot finish reading.
            return self._ended and not self.broken
        if not self._chunked and self._left > MAX_POST_HANDLER_READ:
            return False  # Go does not even try
        self._limit = self._given + MAX_POST_HANDLER_READ + 1
        while self._read_some(65536):
            pass
        return self._ended and not self.broken


class ReplyWriter:
    """One reply on its way out: ``start_response`` and ``write`` for the application,
    with Go's head and framing (see the module docstring, point 4)."""

    def __init__(self, handler: GoExchange, environ: WSGIEnvironment, keep: bool) -> None:
        self._handler = handler
        self._environ = environ
        self._head_only = environ["REQUEST_METHOD"] == "HEAD"
        self._http10 = environ["SERVER_PROTOCOL"] == "HTTP/1.0"
        self.keep = keep
        self.sent = False
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._length: str | None = None  # the application's Content-Length
        self._held = bytearray()  # Go's 2 KiB buffer, for a reply of unknown length
        self._chunked = False
        self._has_date = False  # the application set its own Date

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self._status = int(status[:3])
        self._headers = []
        self._length = None
        self._has_date = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "date":
                self._has_date = True
                self._headers.append((name, value))
            elif lowered == "content-length":
                self._length = value
            elif lowered == "connection":
                if "close" in value.lower():
                    self.keep = False  # Go honours a handler's "Connection: close"
            elif lowered != "transfer-encoding":  # the framing is the server's business
                self._headers.append((name, value))
        return self.write

    def write(self, data: bytes) -> None:
        """A piece of the body; an empty one is a flush (etcd sends a watch's head at once)."""
        if self.sent:
            if data:
                self._handler.send(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
            return
        if self._length is None and data and len(self._held) + len(data) <= CHUNKING_BUFFER:
            self._held += data
            return
        self._send_head(known=False, body=bytes(self._held) + data)

    def finish(self) -> None:
        """The application is done: send what is still held, end the chunks."""
        if not self.sent:
            self._send_head(known=True, body=bytes(self._held))
        elif self._chunked:
            self._handler.send(b"0\r\n\r\n")

    def _send_head(self, known: bool, body: bytes) -> None:
        code = self._status
        bodiless = code < 200 or code in (204, 304)
        length = self._length
        if length is None and known and not self._head_only and not bodiless:
            length = str(len(body))  # the whole reply fitted Go's buffer: its length is known
        if self._head_only and length == "0":
            length = None  # Go sets a HEAD reply's length only from what the handler wrote
        if bodiless:
            length = None
        body_read = self._handler.body_done()  # Go reads away the rest before its head
        self.keep = self.keep and body_read
        transfer = None
        if length is None and not self._head_only and not bodiless:
            if self._http10:
                self.keep = False  # the body ends with the connection
            else:
                self._chunked = True
                transfer = "chunked"
        supplied = self._environ.get(GO_SUPPLIED_KEY, _DEFAULT_SUPPLIED)
        handler_headers: list[tuple[str, str]] = []
        extras: list[tuple[str, str]] = []
        for name, value in self._headers:
            (extras if name in supplied else handler_headers).append((name, value))
        if length is not None:
            # A length the server computed is its own; the application's is where it says.
            computed = self._length is None or "Content-Length" in supplied
            (extras if computed else handler_headers).append(("Content-Length", length))
        if not self._has_date:
            date = ("Date", _Date.now())
            (extras if "Date" in supplied else handler_headers).append(date)
        handler_headers.sort(key=_NAME)
        extras.sort(key=_by_extra_order)
        if self._http10 and self.keep and (length is not None or self._head_only or bodiless):
            extras.append(("Connection", "keep-alive"))
            self.keep = length is not None
        elif not self._http10 and not self.keep:
            extras.append(("Connection", "close"))
        if transfer:
            extras.append(("Transfer-Encoding", transfer))
        lines = [status_line(code, self._http10)]
        lines += [f"{name}: {value}\r\n" for name, value in handler_headers + extras]
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1", "replace")
        self.sent = True
        if self._head_only or bodiless or not body:
            self._handler.send(head)
        elif self._chunked:
            self._handler.send(head + b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self._handler.send(head + body)


def _go_reply(
    code: int, handler_headers: list[tuple[str, str]], *, empty: bool, http10: bool, close: bool
) -> bytes:
    """A bodiless reply Go's own server code writes: the handler's headers sorted, then
    Date and (when the handler set none and wrote nothing) ``Content-Length: 0``."""
    lines = [status_line(code, http10)]
    lines += [f"{name}: {value}\r\n" for name, value in sorted(handler_headers)]
    lines.append(f"Date: {_Date.now()}\r\n")
    if empty:
        lines.append("Content-Length: 0\r\n")
    if close and not http10 and ("Connection", "close") not in handler_headers:
        lines.append("Connection: close\r\n")
    return ("".join(lines) + "\r\n").encode("latin-1")


#: A parsed request line: method, target, major and minor version, then PATH_INFO,
#: QUERY_STRING and the URL's host (:meth:`GoExchange._parse_target`).
_RequestLine = tuple[str, str, int, int, str, str, "str | None"]


def _header_line(headers: list[list[str]], text: str) -> bool:
    """Add one header line (without its line end) to ``headers``, as Go's
    ``ReadMIMEHeader`` reads it; False at the empty line that ends the head."""
    if not text:
        return False
    if text[0] in " \t":
        if not headers:
            raise Refusal()  # malformed MIME header initial line
        headers[-1][1] += " " + text.strip(" \t")  # an obsolete folded line
        return True
    name, colon, value = text.partition(":")
    if not colon:
        raise Refusal()  # malformed MIME header line
    if name:
        headers.append([name, value.strip(" \t")])
    return True


@functools.lru_cache(maxsize=256)
def _environ_key(name: str) -> str:
    """A header's environ key (``CONTENT_TYPE``/``CONTENT_LENGTH`` without ``HTTP_``);
    cached: a client sends the same few names with every request."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


class GoExchange:
    """Go's framing of one connection's requests, without the socket: the live server's
    connection (:mod:`.server`) feeds it lines and bytes from its buffer and provides
    :meth:`send`, ``rfile`` (the buffered bytes after the head) and the attributes below.
    A TLS connection is served with ``wsgi.url_scheme = "https"``.
    """

    max_body: int = DEFAULT_MAX_BODY
    client_address: Any = None
    rfile: Any = None
    _scheme = "http"
    _server_name = ""
    _server_port = ""
    _body: RequestBody | None = None
    _base: dict[str, Any] | None = None

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def body_done(self) -> bool:
        """Whether the request body ended cleanly (after reading away a small rest)."""
        return self._body is None or self._body.drain()

    def _go_server_reply(self, environ: WSGIEnvironment, keep: bool) -> bytes | None:
        """What Go's server answers before any handler (``*`` targets, ``Expect``)."""
        http10 = environ["SERVER_PROTOCOL"] == "HTTP/1.0"
        closing = [] if http10 else [("Connection", "close")]
        if environ["REQUEST_URI"] == "*":
            if environ["REQUEST_METHOD"] == "OPTIONS":  # serverHandler's globalOptionsHandler
                headers = [("Content-Length", "0")]
                return _go_reply(200, headers, empty=False, http10=http10, close=not keep)
            # ServeMux: a "*" target is for OPTIONS only.
            return _go_reply(400, closing, empty=True, http10=http10, close=True)
        expect = environ.get("HTTP_EXPECT")
        if expect is not None and not _has_token(expect, "100-continue"):
            return _go_reply(417, closing, empty=True, http10=http10, close=True)
        return None

    # -- the request head -----------------------------------------------------------------

    def read_head(self) -> Generator[int, bytes, tuple[WSGIEnvironment, bool] | None]:
        """Read and check a request head like Go's ``readRequest``: its WSGI environ and
        whether the connection may carry on, or None when it ended before a whole head.

        It is fed line by line: it yields how many bytes a line may have at most and is
        sent the line (as ``readline(n)`` gives it: shorter without its newline when the
        client ended), so a connection can feed it from a buffer as bytes arrive. A
        head already whole in the buffer takes :meth:`parse_head` instead (the same
        rules, one call)."""
        budget = MAX_HEADER_BYTES
        raw = yield budget + 1
        if len(raw) > budget:
            raise Refusal("431 Request Header Fields Too Large")
        if not raw.endswith(b"\n"):
            return None  # the client left mid-line
        budget -= len(raw)
        request = self._request_line(raw.decode("latin-1").rstrip("\r\n"))
        headers: list[list[str]] = []
        while True:
            raw = yield budget + 1
            if len(raw) > budget:
                raise Refusal("431 Request Header Fields Too Large")
            if not raw.endswith(b"\n"):
                return None
            budget -= len(raw)
            if not _header_line(headers, raw.decode("latin-1").rstrip("\r\n")):
                break
        return self._head_environ(request, headers)

    def parse_head(self, text: str) -> tuple[tuple[WSGIEnvironment, bool], int]:
        """:meth:`read_head` on a head that is all there: ``text`` (the buffer as Latin-1,
        at most :data:`MAX_HEADER_BYTES`) holds it up to and with its empty line. Returns
        what read_head does and how many bytes the head took."""
        lines = text.split("\n")
        request = self._request_line(lines[0].rstrip("\r"))
        used = len(lines[0]) + 1
        headers: list[list[str]] = []
        for line in itertools.islice(lines, 1, None):
            used += len(line) + 1
            if not _header_line(headers, line.rstrip("\r")):
                return self._head_environ(request, headers), used
        raise ValueError("parse_head: no empty line ends the head")

    @classmethod
    def _request_line(cls, line: str) -> _RequestLine:
        method, sp1, rest = line.partition(" ")
        target, sp2, version = rest.partition(" ")
        if not (sp1 and sp2) or not _TOKEN.match(method):
            raise Refusal()  # malformed request line, invalid method
        match = _VERSION.match(version)
        if match is None:
            raise Refusal()  # malformed HTTP version
        major, minor = int(match[1]), int(match[2])
        return (method, target, major, minor, *cls._parse_target(target))

    def _base_environ(self) -> dict[str, Any]:
        """The environ keys that stay the same for a connection's requests (built once)."""
        base = self._base
        if base is None:
            address = self.client_address
            base = self._base = {
                "SCRIPT_NAME": "",
                "SERVER_NAME": self._server_name,
                "SERVER_PORT": self._server_port,
                "REMOTE_ADDR": str(address[0]) if address else "",
                "REMOTE_PORT": str(address[1]) if address else "",
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": self._scheme,
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
        return base

    def _head_environ(
        self, request: _RequestLine, headers: list[list[str]]
    ) -> tuple[WSGIEnvironment, bool]:
        """The checks Go makes once the whole head is read, and the WSGI environ."""
        method, target, major, minor, path, query, url_host = request
        http11 = minor >= 1 or major > 1
        hosts: list[str] = []
        lengths: list[str] = []
        encodings: list[str] = []
        connection: list[str] = []
        environ: dict[str, Any] = self._base_environ().copy()
        environ["REQUEST_METHOD"] = method
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = query
        environ["REQUEST_URI"] = environ["RAW_URI"] = target
        environ["SERVER_PROTOCOL"] = "HTTP/1.1" if http11 else "HTTP/1.0"
        for name, value in headers:
            key = _environ_key(name)
            if key == "CONTENT_LENGTH":
                lengths.append(value)
                continue
            if key == "HTTP_TRANSFER_ENCODING":
                encodings.append(value)
                continue
            if key == "HTTP_CONNECTION":
                connection.append(value)
            elif key == "HTTP_HOST":
                hosts.append(value)
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        if len(hosts) > 1:
            raise Refusal()  # too many Host headers
        length = self._body_length(lengths, encodings if http11 else [])
        if major != 1 and not (method == "PRI" and target == "*" and (major, minor) == (2, 0)):
            raise Refusal("505 HTTP Version Not Supported: unsupported protocol version")
        if http11 and not hosts and method != "CONNECT" and method != "PRI":
            raise Refusal("400 Bad Request: missing required Host header")
        if hosts and not _HOST.match(hosts[0]):
            raise Refusal("400 Bad Request: malformed Host header")
        for name, value in headers:
            if not _TOKEN.match(name):
                raise Refusal("400 Bad Request: invalid header name")
            if _VALUE_CTL.search(value):
                raise Refusal("400 Bad Request: invalid header value")
        if url_host is not None:
            if _HOST.match(url_host):
                environ["HTTP_HOST"] = url_host  # Go: the URL's host wins over the header
            else:
                # Go takes a URL host that no Host header could carry (non-ASCII); no
                # URL can be built on it, so the fake's own address stands in, as the
                # real service hands out its own URL whatever the request's host.
                environ.pop("HTTP_HOST", None)
        if connection:
            tokens = ",".join(connection)
            close = _has_token(tokens, "close")
            keep = not close if http11 else _has_token(tokens, "keep-alive") and not close
        else:
            keep = http11  # no Connection header: HTTP/1.1 keeps, HTTP/1.0 closes
        if method == "PRI":
            keep = False
        if length != 0:
            environ["CONTENT_LENGTH"] = "" if length is None else str(length)
            continue_first = http11 and _has_token(environ.get("HTTP_EXPECT", ""), "100-continue")
            self._body = RequestBody(
                self.rfile, length, self.max_body, self._send_continue if continue_first else None
            )
            environ["wsgi.input"] = self._body
            environ["wsgi.input_terminated"] = True  # the stream ends where the body does
            environ[RAISE_BODY_LIMIT] = self._body.raise_limit
        else:
            environ["wsgi.input"] = _EMPTY
        return environ, keep

    def _send_continue(self) -> None:
        self.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    @staticmethod
    def _parse_target(target: str) -> tuple[str, str, str | None]:
        """PATH_INFO, QUERY_STRING and the URL's host, as Go's ``url.ParseRequestURI``."""
        if _CTL.search(target):
            raise Refusal()  # net/url: invalid control character in URL
        if target == "*":
            return "*", "", None
        raw, _, query = target.partition("?")
        host = None
        if not raw.startswith("/"):
            scheme, colon, rest = raw.partition(":")
            if not colon or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+\-.]*", scheme):
                raise Refusal()  # invalid URI for request
            if rest.startswith("//"):
                authority, slash, path = rest[2:].partition("/")
                host = authority.rpartition("@")[2]
                if not _URL_HOST.match(host) or _BAD_ESCAPE.search(host):
                    raise Refusal()  # invalid character in host name, bad port
                raw = slash + path
            elif not rest.startswith("/"):
                raise Refusal()  # an opaque URL: nothing to route
            else:
                raw = rest
        if _BAD_ESCAPE.search(raw):
            raise Refusal()  # invalid URL escape
        # WSGI's PATH_INFO: the unescaped bytes as Latin-1 (the app reads them as UTF-8).
        path = unquote_to_bytes(raw.encode("latin-1")).decode("latin-1") if "%" in raw else raw
        return path, query, host

    @staticmethod
    def _body_length(lengths: list[str], encodings: list[str]) -> int | None:
        """The body's length (None: chunked), as Go's ``readTransfer``."""
        if encodings:
            if len(encodings) > 1 or encodings[0].strip(" \t").lower() != "chunked":
                raise Refusal("501 Not Implemented", "Unsupported transfer encoding")
            return None
        if not lengths:
            return 0
        first = lengths[0].strip(" \t")
        if any(other.strip(" \t") != first for other in lengths[1:]):
            raise Refusal()  # multiple different Content-Length headers
        if not first:
            return 0
        if not first.isdigit() or not first.isascii() or int(first) >= 1 << 63:
            raise Refusal()  # bad Content-Length
        return int(first)


def _has_token(value: str, token: str) -> bool:
    """Whether the comma-separated header ``value`` lists ``token`` (any case)."""
    return any(part.strip(" \t").lower() == token for part in value.split(","))


class _Empty:
    """``wsgi.input`` of a request without a body."""

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Any:
        return iter(())


_EMPTY = _Empty()
