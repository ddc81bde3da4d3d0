"""The service's entry point types: a plain request in, a plain reply out.

Transports turn what they received into a :class:`ServiceRequest` and hand it to
:meth:`DiscoveryService.answer <pytest_etcd_discovery._service.discovery.DiscoveryService.answer>`;
they turn the :class:`Reply` back into their own world (a WSGI reply for the live server,
a ``responses`` callback result in-process). Neither type knows any HTTP library.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import CLOCK_MONOTONIC, clock_gettime
from urllib.parse import SplitResult, unquote_to_bytes, urlencode, urlsplit

from .._constants import TRANSPORT_FIXTURE

__all__ = [
    "DATED",
    "DEFERRING",
    "PROXIED",
    "SNIFFED",
    "Pending",
    "Reply",
    "ServiceRequest",
    "as_text",
    "host_url_of",
    "request_from_url",
]

#: ``Reply.server_headers`` of a handler that writes text without a Content-Type.
SNIFFED = ("Date", "Content-Length", "Content-Type")
#: ... of Prometheus' handler, which sets its own length and type.
DATED = ("Date",)
#: ... of a reply proxied whole from etcd (its Date and length among its headers).
PROXIED: tuple[str, ...] = ()


@dataclass
class ServiceRequest:
    """One request as the service sees it.

    :param method: the method as sent (Go compares methods case-sensitively).
    :param path: the path, percent-decoded but not cleaned (``"//new"`` stays so);
        bytes that are not UTF-8 are kept as surrogate escapes, so keys keep their bytes.
    :param query: the query string as sent (still escaped), without the ``?``.
    :param headers: the header fields in the order received.
    :param body: the whole body.
    :param transport: who carried it: ``"live"``, ``"inprocess"``, ``"fixture"`` (see
        :mod:`pytest_etcd_discovery._constants`).
    :param host_url: the URL of the host it was addressed to, e.g.
        ``"https://discovery.etcd.io/"``: ``/new`` hands out tokens below it.
    """

    method: str
    path: str
    query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    transport: str = TRANSPORT_FIXTURE
    host_url: str = "http://localhost/"

    def header(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (case-insensitive), else ``default``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    @property
    def display_path(self) -> str:
        """The path as text: bytes that are not UTF-8 shown as U+FFFD (journal, faults)."""
        return as_text(self.path)


def as_text(text: str) -> str:
    """``text`` with the surrogate escapes of bytes that are not UTF-8 as U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


#: True while a caller that can wait without blocking (the live server's event loop)
#: asks for an answer: long polls then hand it :class:`Pending` waits instead of blocking.
DEFERRING: ContextVar[bool] = ContextVar("etcd_discovery_deferring", default=False)


def monotonic() -> float:
    """Seconds on the monotonic clock that freezegun leaves alone (it patches
    ``time.monotonic``): waits and timeouts run on real time in a frozen test, as the
    condition waits that measured them before did."""
    return clock_gettime(CLOCK_MONOTONIC)


class Pending(bytes):
    """Something an answer waits for (a watcher's next event, a fault's delay).

    The same rule code serves both kinds of caller: it loops ``while not p.ready():
    yield p``. A blocking caller (in-process, :meth:`Reply.read`) calls :meth:`block`;
    the live server's event loop calls :meth:`arm` with a wake-up and goes on serving
    others. It is an empty ``bytes`` so it can travel through a WSGI body iterator
    (only a caller that set :data:`DEFERRING` ever sees one there).
    """

    def __new__(cls, *args: object, **kwargs: object) -> Pending:
        return super().__new__(cls, b"")

    def ready(self) -> bool:
        """Whether the wait is over (its event came, it was released, or it timed out)."""
        raise NotImplementedError

    def block(self) -> None:
        """Wait in this thread until :meth:`ready` may be true."""
        raise NotImplementedError

    def arm(self, wake: Callable[[], None]) -> float | None:
        """Call ``wake`` (from any thread, maybe more than once) when :meth:`ready` may
        have become true; returns the seconds after which to look again anyway (its
        timeout), None for no timeout."""
        raise NotImplementedError

    def disarm(self) -> None:
        """Forget the ``wake`` of :meth:`arm` (idempotent)."""


#: An answer still to come: yields what it waits for, returns the reply.
Later = Generator[Pending, None, "Reply"]


def wait_out(later: Later) -> Reply:
    """Drive ``later`` to its reply, blocking this thread on each wait."""
    try:
        while True:
            next(later).block()
    except StopIteration as stop:
        reply: Reply = stop.value
        return reply


@dataclass
class Reply:
    """What the service answers.

    :param status: the status code.
    :param headers: the header fields in the order to send them.
    :param body: the whole body, or an iterator of pieces for a long poll (reading it
        is where a long poll waits; :meth:`close` ends it early).
    :param flush_early: send the headers before the first piece, as etcd does for
        its long polls (a client sees the status at once).
    :param drop: close the connection without any reply (a ``drop`` fault); each
        transport turns it into what its clients see when a server does that.
    :param server_headers: the names of the headers Go's *server* writes for this reply,
        not its handler (the live server writes Go's header order from it): None is
        Go's default, ``Date`` and ``Content-Length``; ``()`` for the original service's
        proxied replies (etcd's whole head copied); :data:`SNIFFED` for handlers that
        write text without a Content-Type (Go sniffs it).
    :param later: an answer that must wait first (a fault's delay, discoveryserver's
        long poll) before its status is known; the other fields are then unused.
        :meth:`settled` waits for it in this thread.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterator[bytes] = b""
    flush_early: bool = False
    drop: bool = False
    server_headers: tuple[str, ...] | None = None
    later: Later | None = None
    #: ``/metrics`` leaves it out (a discoveryserver long poll that gave up)
    uncounted: bool = False

    @classmethod
    def late(cls, later: Later) -> Reply:
        """A reply that waits (see :class:`Pending`) before it is known."""
        return cls(0, later=later)

    def settled(self) -> Reply:
        """This reply, or (when it is late) the one it becomes, waited for here."""
        reply = self
        while reply.later is not None:
            reply = wait_out(reply.later)
        return reply

    @property
    def streamed(self) -> bool:
        """True when the body is an iterator of pieces (a long poll)."""
        return not isinstance(self.body, bytes)

    def pieces(self, method: str) -> Iterable[bytes]:
        """The body pieces to send for a ``method`` request: none for HEAD or a status
        that has no body (1xx, 204, 304), like every HTTP server."""
        if method == "HEAD" or 100 <= self.status < 200 or self.status in (204, 304):
            self.close()
            return ()
        if isinstance(self.body, bytes):
            return (self.body,)
        return self.body

    def read(self, method: str = "GET") -> bytes:
        """The whole body to send (waits for a long poll to end), then :meth:`close`."""
        try:
            return b"".join(self.pieces(method))
        finally:
            self.close()

    def close(self) -> None:
        """End a long poll (releases its watcher); a no-op for a whole body."""
        if not isinstance(self.body, bytes):
            close = getattr(self.body, "close", None)
            if close is not None:
                close()


def host_url_of(scheme: str, netloc: str) -> str:
    """``scheme://netloc/`` without the scheme's default port (as werkzeug's host_url)."""
    if scheme == "http":
        netloc = netloc.removesuffix(":80")
    elif scheme == "https":
        netloc = netloc.removesuffix(":443")
    return f"{scheme}://{netloc}/"


def request_from_url(
    method: str,
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    form: dict[str, str] | None = None,
    transport: str = TRANSPORT_FIXTURE,
) -> ServiceRequest:
    """A :class:`ServiceRequest` for ``method url``, as if it arrived at the URL's host;
    ``form`` is sent as an urlencoded body."""
    if form:
        body = urlencode(form).encode("ascii")
        headers = [*headers, ("Content-Type", "application/x-www-form-urlencoded")]
    parts: SplitResult = urlsplit(url)
    path = unquote_to_bytes(parts.path or "/").decode("utf-8", "surrogateescape")
    return ServiceRequest(
        method=method,
        path=path,
        query=parts.query,
        headers=headers,
        body=body,
        transport=transport,
        host_url=host_url_of(parts.scheme, parts.netloc),
    )
