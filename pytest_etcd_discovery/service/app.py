"""The fake discovery service as one werkzeug WSGI application.

The same :class:`DiscoveryApp` answers the live server (:mod:`.server`) and
in-process ``requests`` calls (:mod:`.intercept`), so both share one store.
Routes, statuses, bodies and headers follow the real services; see
:mod:`.profiles` for what differs between the two we imitate.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import BaseConverter, Map, MapAdapter, Rule
from werkzeug.wrappers import Request, Response

from ..v2store import errors
from ..v2store.clock import Clock
from ..v2store.errors import EtcdError
from ..v2store.events import Event
from ..v2store.store import Store, clean_path
from ..v2store.watchers import Watcher, is_hidden
from . import gojson
from .forms import Form, go_atoi, go_parse_bool, go_parse_uint64, parse_form, parse_query
from .metrics import Metrics
from .profiles import Profile, get_profile

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TRANSPORT_KEY = "etcd_discovery.transport"
FORM_KEY = "etcd_discovery.form"
PATH_KEY = "etcd_discovery.path"
#: The store each request works on: the app's store when the request arrived.  A request
#: still running when the store is replaced (its test ended) keeps its own, retired one.
_REQUEST_STORE: ContextVar[tuple[DiscoveryApp, Store] | None] = ContextVar(
    "etcd_discovery_request_store", default=None
)
#: The request body as bytes, from transports that have it whole (in-process calls):
#: the same bytes as ``wsgi.input``, without streaming them through werkzeug.
BODY_KEY = "etcd_discovery.body"
#: Set by the app before ``start_response``, read by the live server (transport.gohttp)
#: to write Go's header order: the names of the headers Go's *server* writes for this
#: reply, not its handler. The handler's headers come first, sorted by name (``Date``
#: among them when it is not listed: the server writes it there), then the listed ones
#: in Go's order: Date, Content-Length, Content-Type. Default ``("Date",
#: "Content-Length")``. The original service's proxied token replies copy etcd's whole
#: head, its Date and Content-Length included: ``()``; Go handlers that write text
#: without a Content-Type (Go sniffs it) add ``"Content-Type"``.
GO_SUPPLIED_KEY = "etcd_discovery.go_supplied"
_SNIFFED = ("Date", "Content-Length", "Content-Type")
_COPIED: tuple[str, ...] = ()
_DATED = ("Date",)  # Prometheus' handler sets its Content-Length and Content-Type
CORS_HEADERS = (
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
)
KEYS_METHODS = ("HEAD", "GET", "PUT", "POST", "DELETE")
PROXY_BUFFER = 4096  # Go's per-connection write buffer, which the original proxy never flushes


class TokenConverter(BaseConverter):
    """A discovery token: 32 lowercase hex digits, nothing else (gorilla mux's regex)."""

    regex = "[a-f0-9]{32}"


# Both slash spellings of a route are listed, so strict slashes never redirect;
# Go's path cleaning is done by hand in _clean_redirect.
URL_MAP = Map(
    [
        Rule("/", endpoint="home"),
        Rule("/new", endpoint="new"),
        Rule("/health", endpoint="health"),
        Rule("/robots.txt", endpoint="robots"),
        Rule("/metrics", endpoint="metrics"),
        Rule("/<token:token>", endpoint="token"),
        Rule("/<token:token>/", endpoint="token"),
        Rule("/<token:token>/<machine>", endpoint="machine"),
        Rule("/<token:token>/_config/size", endpoint="size"),
        Rule("/v2/keys", endpoint="keys"),
        Rule("/v2/keys/", endpoint="keys"),
        Rule("/v2/keys/<path:key>", endpoint="keys"),
    ],
    converters={"token": TokenConverter},
    strict_slashes=True,
    merge_slashes=False,
    redirect_defaults=False,
)

#: The environ values ``bind_to_environ`` and ``Request.host_url`` read besides the
#: request line: requests that agree on them bind the URL map alike.
_HOST_KEYS = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "wsgi.url_scheme",
    "HTTP_CONNECTION",  # with HTTP_UPGRADE: a WebSocket upgrade matches no route
    "HTTP_UPGRADE",
)
_MAX_HOSTS = 64
_MAX_ROUTES = 256


class _Host:
    """What requests to one host share: the URL map bound to it, the routes of the
    paths asked for, and its host URL.

    Binding the map costs as much as matching a path, and clients ask for the same
    paths again and again (members poll their token), so each is done once.
    """

    __slots__ = ("adapter", "routes", "url")

    def __init__(self, adapter: MapAdapter) -> None:
        self.adapter = adapter
        self.routes: dict[str, tuple[str, Mapping[str, Any]]] = {}
        self.url: str | None = None

    def match(self, path: str, method: str) -> tuple[str, Mapping[str, Any]]:
        """``adapter.match(path, method)``. No rule limits methods, so a path routes
        alike for all; a path that routes nowhere raises each time (not kept)."""
        route = self.routes.get(path)
        if route is None:
            route = self.adapter.match(path, method)
            if len(self.routes) >= _MAX_ROUTES:
                self.routes.clear()  # unique paths (member PUTs): stay bounded
            self.routes[path] = route
        return route


_HOSTS: dict[tuple[object, ...], _Host] = {}


def _host(environ: WSGIEnvironment) -> _Host:
    """The :class:`_Host` of ``environ``: ``URL_MAP.bind_to_environ(environ)`` once.

    The adapter's own path, query and method are never used: :meth:`_Host.match` is
    given the path and method, and dispatch swallows the redirects that use the query.
    """
    key = tuple([environ.get(name) for name in _HOST_KEYS])
    host = _HOSTS.get(key)
    if host is None:
        host = _Host(URL_MAP.bind_to_environ(environ))  # a bad Host raises here, as before
        if len(_HOSTS) >= _MAX_HOSTS:
            _HOSTS.clear()  # many hosts (a fuzzer): stay bounded
        _HOSTS[key] = host
    return host


def _host_url(request: Request) -> str:
    """``request.host_url``, worked out once per host."""
    host = _host(request.environ)
    if host.url is None:
        host.url = request.host_url
    return host.url


def _werkzeug_path(environ: WSGIEnvironment) -> str:
    """The path ``bind_to_environ`` would have matched: PATH_INFO decoded as werkzeug
    does (invalid UTF-8 replaced), "/" when there is none."""
    raw: str | None = environ.get("PATH_INFO")
    if raw is None:
        return "/"
    return raw.encode("latin-1").decode("utf-8", "replace")


# Methods each token route accepts; anything else is gorilla mux's empty 405.
ROUTE_METHODS = {
    "token": ("GET", "PUT"),
    "machine": ("GET", "PUT", "DELETE"),
    "size": ("GET",),
}


@dataclass
class Call:
    """One request the fake answered: the journal entry tests and reports read."""

    method: str
    path: str
    query: str
    #: None while the request is still being answered (a long poll), 0 for a dropped one
    status: int | None
    transport: str
    form: dict[str, list[str]] = field(default_factory=dict)
    time: float = 0.0
    #: the fault rule that answered this request (see :mod:`.faults`), else None
    fault: str | None = None
    #: the route it took, named as fault rules name them (``new``, ``token``,
    #: ``machine``, ``size``, ...); None when the path routes nowhere
    route: str | None = None
    #: a long poll: a GET that waits (what a fault rule's ``route="watch"`` matches)
    watch: bool = False
    #: True while a streamed reply (an etcd-v2 long poll) is still being sent: its
    #: status is known at once, its body is not
    streaming: bool = False

    @property
    def in_flight(self) -> bool:
        """True until the reply is complete: no status yet, or a body still streaming."""
        return self.status is None or self.streaming

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        status = "pending" if self.status is None else self.status
        return f"{self.method} {self.path}{query} -> {status} ({self.transport})"


class _StreamedReply:
    """A streamed reply's body that marks its journal entry complete once the body has
    ended, or when the transport closes it early (PEP 3333: every server calls
    ``close()``, also for a client that went away)."""

    __slots__ = ("_body", "_call")

    def __init__(self, body: Iterable[bytes], call: Call) -> None:
        self._body = body
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        # Before the transport ends the reply (last chunk, Content-Length, close), so a
        # client that has the whole reply never sees its entry still streaming.
        self._call.streaming = False

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._call.streaming = False


def is_watch(request: Request) -> bool:
    """A long poll: a GET whose first ``wait`` value is a Go true (fault rules'
    ``route="watch"``)."""
    if request.method != "GET":
        return False
    query = request.environ.get("QUERY_STRING", "")
    if "wait" not in query and "%" not in query:  # no parsing for most requests
        return False
    values = request.args.getlist("wait")
    try:
        return bool(values) and go_parse_bool(values[0])
    except ValueError:
        return False


def route_of(environ: WSGIEnvironment) -> str | None:
    """The endpoint ``environ``'s path routes to, as fault rules match it; None for a
    path (or a Host) that routes nowhere."""
    try:
        endpoint, _ = _host(environ).match(_werkzeug_path(environ), "GET")
    except HTTPException:
        return None
    return str(endpoint)


def go_clean_path(path: str) -> str:
    """Go's ``http`` cleanPath: ``path.Clean`` keeping a trailing slash."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        # No empty, "." or ".." segment: already clean (the common case, kept cheap).
        return path
    cleaned = clean_path(path)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _request_body(request: Request) -> bytes:
    """The body etcd's ParseForm would read: ``request.get_data(cache=True)``, except
    that a transport's :data:`BODY_KEY` is taken as it is, and a request werkzeug would
    give an empty stream (no or zero Content-Length, a stream the server does not
    terminate) skips building the stream to read nothing."""
    environ = request.environ
    body: bytes | None = environ.get(BODY_KEY)
    if body is not None:
        return body
    if environ.get("CONTENT_LENGTH") in (None, "", "0") and (
        "wsgi.input_terminated" not in environ
    ):
        return b""
    return request.get_data(cache=True)


def _raw_query(request: Request) -> str:
    """The query string with its original bytes (WSGI hands them over as latin-1)."""
    raw: str = request.environ.get("QUERY_STRING", "")
    return raw.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def _time_left(timeout: float | None) -> Callable[[], float | None]:
    """A function giving the seconds left of ``timeout`` from now (None: no limit)."""
    if timeout is None:
        return lambda: None
    deadline = time.monotonic() + timeout
    return lambda: max(deadline - time.monotonic(), 0.0)


def _with_cors(response: Response) -> Response:
    """etcd's CORS headers (it allows any origin by default)."""
    response.headers.extend(CORS_HEADERS)
    return response


def _wsgi_reply(
    response: Response, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """``response(environ, start_response)``, minus the work that changes nothing.

    werkzeug copies the headers for the environ to fix up ``Location`` and
    ``Content-Location``, compute a missing ``Content-Length`` and empty HEAD, 1xx,
    204 and 304 replies.  Most replies here are a buffered body that already has its
    length and none of those headers: they are sent as they are.
    """
    status = response.status_code
    body = response.response
    if (
        type(body) is list  # what set_data makes: [bytes]
        and len(body) == 1
        and type(body[0]) is bytes
        and status >= 200
        and status not in (204, 304)
        and environ["REQUEST_METHOD"] != "HEAD"
        # No close callbacks (a private list: if werkzeug renames it, take the long way).
        and not getattr(response, "_on_close", True)
        and type(response) is Response
    ):
        headers = response.headers.to_wsgi_list()
        has_length = False
        for name, _ in headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in ("location", "content-location"):
                has_length = False
                break
        if has_length:
            start_response(response.status, headers)
            return body
    return response(environ, start_response)


def random_token() -> str:
    """A new token as the real service makes one: 16 random bytes in hex."""
    return secrets.token_hex(16)


def seeded_token_source(seed: int) -> Callable[[], str]:
    """Tokens in the same order on every run (``--seed``): same format, not secret."""
    rng = random.Random(seed)
    return lambda: format(rng.getrandbits(128), "032x")


class RequestRetired(ConnectionAbortedError):
    """A request outlived the state it was made against (its test ended, or the app was
    reset): it is dropped, like a request to a server that went away."""


def _drop_retired(request: Request) -> NoReturn:
    message = (
        f"etcd discovery fake: {request.method} {request.path} arrived before its test "
        "ended (or the fake was reset) and was held past it; dropped so that it cannot "
        "touch the next test's state"
    )
    if request.environ.get(TRANSPORT_KEY) == "inprocess":
        import requests  # interception loaded it already

        # What requests raises for a connection closed without a reply.
        raise requests.exceptions.ConnectionError(message)
    raise RequestRetired(message)


def http_error(body: str, status: int) -> Response:
    """``http.Error``: text/plain, nosniff, and a newline after the message."""
    resp = Response(body + "\n", status=status, mimetype="text/plain")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def bare_response(status: int) -> Response:
    """A status with no body and no Content-Type, like Go's ``WriteHeader`` alone."""
    resp = Response(b"", status=status)
    del resp.headers["Content-Type"]
    return resp


def _redirect(location: str, method: str) -> Response:
    """``http.Redirect`` with 301: a tiny HTML body for GET only."""
    # Go escapes non-ASCII bytes of the target (hexEscapeNonASCII).
    location = "".join(
        chr(b) if b < 0x80 else f"%{b:02x}" for b in location.encode("utf-8", "surrogateescape")
    )
    if method == "GET":
        escaped = location.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        escaped = escaped.replace('"', "&#34;").replace("'", "&#39;")
        resp = Response(f'<a href="{escaped}">Moved Permanently</a>.\n\n', status=301)
        resp.headers["Content-Type"] = "text/html; charset=utf-8"
    elif method == "HEAD":
        resp = Response(b"", status=301)
        resp.headers["Content-Type"] = "text/html; charset=utf-8"
    else:
        resp = bare_response(301)
    resp.headers["Location"] = location
    return resp


class DiscoveryApp:
    """The fake discovery service (a WSGI application).

    :param store: the state; a fresh :class:`Store` on ``clock`` by default.
    :param profile: ``"etcd-v2"`` (default) or ``"discoveryserver"``.
    :param public_url: the prefix ``/new`` hands out; ``None`` uses the request's own
        host URL, so the live server hands out its URL and the in-process transport
        hands out ``https://discovery.etcd.io``.
    :param clock: the clock of a default store.
    :param max_calls: keep at most about this many journal entries (the oldest go);
        None keeps all (tests reset the journal anyway; a long-running server should not).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        profile: str | Profile = "etcd-v2",
        public_url: str | None = None,
        clock: Clock | None = None,
        max_calls: int | None = None,
    ) -> None:
        self.profile = get_profile(profile)
        self.max_calls = max_calls
        self._store = store if store is not None else self.new_store(clock)
        self.public_url = public_url
        self.calls: list[Call] = []
        #: How many journal entries were trimmed away: ``calls[i]`` is call number
        #: ``calls_dropped + i`` since the last reset (see :meth:`calls_since`).
        self.calls_dropped = 0
        #: Where :meth:`new_token` gets its tokens (``seeded_token_source`` for ``--seed``).
        self.token_source: Callable[[], str] = random_token
        #: Exceptions the fake raised while answering (its own bugs); see take_errors().
        self.errors: list[BaseException] = []
        self.metrics = Metrics()
        self.cluster_id = secrets.token_hex(8)
        self.raft_term = 2
        self._calls_lock = threading.Lock()
        #: Hooks run before routing; the first one returning a response answers the request.
        self.before_request: list[Callable[[Request], Response | None]] = []

    @property
    def store(self) -> Store:
        """The state: inside a request, the store that was current when it arrived."""
        bound = _REQUEST_STORE.get()
        if bound is not None and bound[0] is self:
            return bound[1]
        return self._store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store

    @property
    def clock(self) -> Clock:
        return self.store.clock

    # -- the Python API ------------------------------------------------------------------

    def new_store(self, clock: Clock | None = None) -> Store:
        """An empty store that behaves as this profile's (see :mod:`.profiles`)."""
        return Store(clock, rules=self.profile.store_rules)

    def token_key(self, token: str) -> str:
        """The store key of ``token`` (where its members live)."""
        return f"{self.profile.key_prefix}/{token}"

    def new_token(self, size: int = 3, *, source: Callable[[], str] | None = None) -> str:
        """Create a token as ``/new?size=`` does; returns the 32-hex token.

        ``source`` overrides :attr:`token_source` (``/health``'s throwaway token).
        """
        for _ in range(100):
            token = (source or self.token_source)()
            try:
                self.store.create(f"{self.token_key(token)}/_config/size", str(size))
                break
            except EtcdError as err:
                # A seeded source repeats the tokens of a restored state: take the next.
                if err.code != errors.NODE_EXIST:
                    raise
        else:
            raise EtcdError(errors.NODE_EXIST, "no unused token", self.store.index)
        if self.profile.gc_records:
            self.store.bump_index()  # discoveryserver's garbage-collection record
        return token

    def reset(self, store: Store | None = None) -> None:
        """Start over with an empty store on the same clock and an empty journal.

        The old store is retired: watches blocked on it are released, and a request that
        arrived before and is still running (held by a fault) is dropped rather than
        reaching the new store.  The old journal list is left as it is (a new one takes
        its place), so whoever holds it still sees those late requests.
        """
        old = self._store
        self._store = store if store is not None else self.new_store(old.clock)
        old.close()
        with self._calls_lock:
            self.calls = []
            self.calls_dropped = 0
            self.errors = []
        self.metrics.clear()

    def calls_since(self, number: int) -> tuple[int, list[Call]]:
        """The journal from call ``number`` on (0 = the first since the last reset),
        as far as it is still kept, and the number the next call will get."""
        with self._calls_lock:
            start = max(number - self.calls_dropped, 0)
            return self.calls_dropped + len(self.calls), self.calls[start:]

    def take_errors(self) -> list[BaseException]:
        """The exceptions raised inside the fake since the last call, and forget them."""
        with self._calls_lock:
            taken, self.errors = self.errors, []
        return taken

    def close(self) -> None:
        """Release every blocked long poll (the server calls this when it stops)."""
        self.store.close()

    def open(self) -> None:
        """Serve again after :meth:`close`, with the same state (a server restart)."""
        self.store.open()

    # -- WSGI ----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # The request works on the store of now, even if a reset replaces it meanwhile.
        bound = _REQUEST_STORE.set((self, self._store))
        try:
            request = Request(environ)
            # Journal the call first, so a long poll still waiting shows as pending.
            call = self._record(request)
            try:
                response = self.dispatch(request)
            except OSError:
                # A drop (a fault, or a request that outlived its test): journal it
                # (status 0), let the transport see it.
                call.status = 0
                raise
            except Exception as exc:
                # A bug in the fake, never a behaviour of the real service: keep it so the
                # test that caused it fails at teardown (the plugin checks), answer a 500.
                with self._calls_lock:
                    self.errors.append(exc)
                response = http_error("Internal Server Error", 500)
            finally:
                call.fault = environ.get("etcd_discovery.fault")
            call.status = response.status_code
            reply = _wsgi_reply(response, environ, start_response)
            if response.is_streamed:
                # A long poll: the reply is complete only when its body is.
                call.streaming = True
                return _StreamedReply(reply, call)
            return reply
        finally:
            _REQUEST_STORE.reset(bound)

    def _record(self, request: Request) -> Call:
        call = Call(
            method=request.method,
            path=request.path,
            query=request.environ.get("QUERY_STRING", ""),
            status=None,
            transport=request.environ.get(TRANSPORT_KEY, "live"),
            form=self._form(request).values,
            time=self.clock.now(),
            route=route_of(request.environ),
            watch=is_watch(request),
        )
        with self._calls_lock:
            self.calls.append(call)
            # Trim in batches so recording stays O(1) amortised.
            if self.max_calls is not None and len(self.calls) >= 2 * self.max_calls:
                self.calls_dropped += len(self.calls) - self.max_calls
                del self.calls[: -self.max_calls]
        return call

    def dispatch(self, request: Request) -> Response:
        hooked: Response | None = None
        for hook in self.before_request:
            hooked = hook(request)
            if hooked is not None:
                break
        if self.store is not self._store:
            # Held (by a fault) until its store was retired: it must not write anywhere,
            # and its client hears what a server that went away says.
            _drop_retired(request)
        if hooked is not None:
            return hooked
        # PATH_INFO itself: werkzeug's request.path folds a leading "//" that Go redirects.
        raw: str = request.environ.get("PATH_INFO", "")
        # Invalid UTF-8 stays as surrogate escapes, so keys keep their bytes like Go's.
        path = raw.encode("latin-1", "replace").decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = "/" + path
        request.environ[PATH_KEY] = path
        cleaned = go_clean_path(path)
        if cleaned != path:
            # Go's ServeMux redirects unclean paths before any handler runs.
            query = request.environ.get("QUERY_STRING", "")
            # Go's mux redirects to url.String(): the path escaped, so "\r" is "%0D".
            location = quote(cleaned, safe="/$&+,:;=@", errors="surrogateescape")
            return _redirect(location + (f"?{query}" if query else ""), request.method)
        host = _host(request.environ)
        try:
            endpoint, args = host.match(_werkzeug_path(request.environ), request.method)
        except NotFound:
            return http_error("404 page not found", 404)
        except HTTPException:
            return http_error("404 page not found", 404)
        if endpoint == "keys" and not self.profile.serves_keys_api:
            return http_error("404 page not found", 404)
        handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
        return handler(request, **args)

    # -- fixed routes --------------------------------------------------------------------

    def on_home(self, request: Request) -> Response:
        return _redirect(self.profile.home_url, request.method)

    def on_robots(self, request: Request) -> Response:
        request.environ[GO_SUPPLIED_KEY] = _SNIFFED
        return Response("User-agent: *\nDisallow: /", mimetype="text/plain")

    def on_metrics(self, request: Request) -> Response:
        request.environ[GO_SUPPLIED_KEY] = _DATED
        return Response(
            self.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8"
        )

    def on_new(self, request: Request) -> Response:
        form = self._form(request)
        size = 3
        raw = form.get("size")  # Go's FormValue ignores parse errors
        if raw:
            try:
                size = go_atoi(raw)
            except ValueError as exc:
                return self._count("new", request, http_error(str(exc), 400))
        try:
            token = self.new_token(size)
        except EtcdError:
            return self._count("new", request, http_error(self.profile.new_error, 400))
        base = (self.public_url or _host_url(request)).rstrip("/")
        request.environ[GO_SUPPLIED_KEY] = _SNIFFED
        return self._count("new", request, Response(f"{base}/{token}", mimetype="text/plain"))

    def on_health(self, request: Request) -> Response:
        # Not from a seeded source: health checks must not shift the tokens /new hands out.
        token = self.new_token(0, source=random_token)
        self.store.delete(self.token_key(token), dir=True, recursive=True)
        if self.profile.gc_records:
            self.store.bump_index()
        request.environ[GO_SUPPLIED_KEY] = _SNIFFED
        return self._count("health", request, Response("OK", mimetype="text/plain"))

    # -- token routes --------------------------------------------------------------------

    def on_token(self, request: Request, token: str) -> Response:
        return self._token_route(request, "token", token)

    def on_machine(self, request: Request, token: str, machine: str) -> Response:
        return self._token_route(request, "machine", token)

    def on_size(self, request: Request, token: str) -> Response:
        return self._token_route(request, "size", token)

    def _token_route(self, request: Request, route: str, token: str) -> Response:
        # Go compares methods case-sensitively ("get" is not GET); werkzeug upper-cases.
        if request.environ.get("REQUEST_METHOD", "GET") not in ROUTE_METHODS[route]:
            return bare_response(405)
        # The rest of the path with its original bytes (werkzeug's args lose invalid UTF-8).
        key = self.token_key(token) + request.environ[PATH_KEY][1 + len(token) :]
        if self.profile.name == "discoveryserver":
            response = self._discoveryserver_token(request, key)
            if response.status_code == 200 and "Content-Type" not in response.headers:
                return response  # a long poll that gave up returns before it is counted
        else:
            # The original service proxies to etcd: the v2 keys API, flushed at the end,
            # with etcd's head copied (its Date and length among the sorted headers).
            response = self._keys(request, key, flush_early=False)
            request.environ[GO_SUPPLIED_KEY] = _COPIED
        return self._count("token", request, response)

    def on_keys(self, request: Request, key: str = "") -> Response:
        # etcd's CORS wrapper answers OPTIONS itself and heads every reply.
        if request.method == "OPTIONS":
            return _with_cors(bare_response(200))
        if request.environ.get("REQUEST_METHOD", "GET") not in KEYS_METHODS:
            resp = http_error("Method Not Allowed", 405)
            resp.headers["Allow"] = ",".join(KEYS_METHODS)
            return _with_cors(resp)
        key = request.environ[PATH_KEY][len("/v2/keys") :] or "/"
        return self._keys(request, key, flush_early=True)

    # -- the etcd v2 keys API ------------------------------------------------------------

    def _form(self, request: Request) -> Form:
        """The request's parameters as etcd sees them, parsed once per request."""
        form: Form | None = request.environ.get(FORM_KEY)
        if form is None:
            form = parse_form(
                request.method,
                _raw_query(request),
                # What request.content_type reads, without the headers view around it.
                request.environ.get("CONTENT_TYPE") or "",
                _request_body(request),
            )
            request.environ[FORM_KEY] = form
        return form

    def _keys(self, request: Request, key: str, *, flush_early: bool) -> Response:
        try:
            response = self._keys_request(request, key, flush_early)
        except EtcdError as err:
            response = self._etcd_error(err)
        return _with_cors(response)

    def _keys_request(self, request: Request, key: str, flush_early: bool) -> Response:
        params = KeyParams.parse(request.method, self._form(request))
        store = self.store
        method = request.method
        if method in ("GET", "HEAD"):
            if params.wait and method == "GET":
                watcher = store.watch(
                    key,
                    recursive=params.recursive,
                    stream=params.stream,
                    since_index=params.wait_index,
                )
                return self._watch_response(watcher, params.stream, flush_early)
            return self._event(store.get(key, recursive=params.recursive, sorted=params.sorted))
        if method == "PUT":
            return self._event(self._put(key, params), params.no_value_on_success)
        if method == "POST":
            event = store.create(key, params.value, dir=params.dir, ttl=params.ttl, unique=True)
            return self._event(event, params.no_value_on_success)
        # DELETE
        if params.prev_index > 0 or params.prev_value:
            event = store.compare_and_delete(key, params.prev_value, params.prev_index)
        else:
            event = store.delete(key, dir=params.dir, recursive=params.recursive)
        return self._event(event)

    def _put(self, key: str, p: KeyParams) -> Event:
        store = self.store
        if p.prev_exist is True:
            if p.prev_index == 0 and not p.prev_value:
                return store.update(key, p.value, ttl=p.ttl, refresh=p.refresh)
            return store.compare_and_swap(
                key, p.prev_value, p.prev_index, p.value, ttl=p.ttl, refresh=p.refresh
            )
        if p.prev_exist is False:
            return store.create(key, p.value, dir=p.dir, ttl=p.ttl)
        if p.prev_index > 0 or p.prev_value:
            return store.compare_and_swap(
                key, p.prev_value, p.prev_index, p.value, ttl=p.ttl, refresh=p.refresh
            )
        return store.set(key, p.value, dir=p.dir, ttl=p.ttl, refresh=p.refresh)

    def _headers(self, etcd_index: int) -> list[tuple[str, str]]:
        return [
            ("Content-Type", "application/json"),
            ("X-Etcd-Cluster-Id", self.cluster_id),
            ("X-Etcd-Index", str(etcd_index)),
            ("X-Raft-Index", str(self.store.index + 1000)),
            ("X-Raft-Term", str(self.raft_term)),
        ]

    def _event(self, event: Event, no_value: bool = False) -> Response:
        body = event.to_json()
        if no_value and event.action in ("set", "compareAndSwap", "create", "update"):
            body = {"action": event.action}
        status = 201 if event.is_created else 200
        return Response(
            gojson.encode_line(body), status=status, headers=self._headers(event.etcd_index)
        )

    def _etcd_error(self, err: EtcdError) -> Response:
        headers = [
            ("Content-Type", "application/json"),
            ("X-Etcd-Cluster-Id", self.cluster_id),
            ("X-Etcd-Index", str(err.index)),
        ]
        return Response(gojson.encode_line(err.to_json()), status=err.status, headers=headers)

    def _watch_response(self, watcher: Watcher, stream: bool, flush_early: bool) -> Response:
        """A long poll. ``flush_early``: etcd itself, which sends the headers at once
        and every streamed event as it comes; otherwise the original service's proxy,
        which copies etcd's reply into Go's 4 KiB connection buffer without flushing, so
        a stream reaches the client in 4 KiB pieces, headers included."""
        left = _time_left(self.profile.watch_timeout)

        def body() -> Iterator[bytes]:
            held = bytearray()
            try:
                if flush_early:
                    yield b""
                while True:
                    event = watcher.get(timeout=left())
                    if event is None:
                        break
                    held += gojson.encode_line(event.to_json())
                    if not stream:
                        break
                    if flush_early or len(held) >= PROXY_BUFFER:
                        yield bytes(held)
                        held.clear()
                if held:
                    yield bytes(held)
            finally:
                watcher.remove()

        return Response(
            body(), status=200, headers=self._headers(watcher.start_index), direct_passthrough=True
        )

    # -- discoveryserver's token handler -------------------------------------------------

    def _discoveryserver_token(self, request: Request, key: str) -> Response:
        store = self.store
        form = self._form(request)
        event: Event
        if request.method == "GET":
            query = Form()
            parse_query(_raw_query(request), query.values)
            try:
                recursive = go_parse_bool(query.get("recursive"))
            except ValueError:
                recursive = False
            try:
                wait_index = go_parse_uint64(query.get("waitIndex"))
            except ValueError:
                wait_index = 0
            if query.get("wait") != "":
                return self._discoveryserver_watch(key, recursive, wait_index)
            try:
                event = store.get(key, recursive=recursive, sorted=True)
            except EtcdError:
                return http_error("unable to GET token", 400)
        elif request.method == "DELETE":
            try:
                # Its store deletes as a directory: members and _state cannot be deleted.
                if not store.get(key).node.get("dir"):
                    return http_error("unable to DELETE token", 400)
                event = store.delete(key, dir=True, recursive=True)
            except EtcdError:
                return http_error("unable to DELETE token", 400)
        else:
            try:
                event = store.set(key, form.get("value"))
            except EtcdError:
                return http_error("unable to PUT token", 400)
        return Response(
            gojson.dumps(event.to_json()),
            status=200,
            headers=[("Content-Type", "application/json"), ("X-Etcd-Index", str(event.etcd_index))],
        )

    def _discoveryserver_watch(self, key: str, recursive: bool, wait_index: int) -> Response:
        """discoveryserver's long poll over its v2v3 store.

        It asks for v3 revision ``waitIndex + 1``, which is v2 index ``waitIndex``: the
        first event at or after ``waitIndex`` (no ``waitIndex``: from the oldest one kept).
        Its watcher drops events below the key through a ``_`` name, replayed ones too.
        """
        left = _time_left(self.profile.watch_timeout)
        since = max(wait_index, 1, self.store.hub.history.start_index)
        while True:
            try:
                watcher = self.store.watch(key, recursive=recursive, since_index=since)
            except EtcdError:
                return bare_response(200)
            try:
                event = watcher.get(timeout=left())
            finally:
                watcher.remove()
            if event is None:
                return bare_response(200)
            if event.key == key or not is_hidden(key, event.key):
                return Response(
                    gojson.dumps(event.to_json()),
                    status=200,
                    headers=[
                        ("Content-Type", "application/json"),
                        ("X-Etcd-Index", str(event.etcd_index)),
                    ],
                )
            since = event.index + 1

    def _count(self, endpoint: str, request: Request, response: Response) -> Response:
        self.metrics.count(endpoint, response.status_code, request.method)
        return response


@dataclass
class KeyParams:
    """A keys-API request's parameters, validated as etcd's ``parseKeyRequest`` does."""

    value: str = ""
    dir: bool = False
    prev_value: str = ""
    prev_index: int = 0
    prev_exist: bool | None = None
    wait: bool = False
    wait_index: int = 0
    recursive: bool = False
    sorted: bool = False
    stream: bool = False
    ttl: int | None = None
    refresh: bool = False
    no_value_on_success: bool = False

    @classmethod
    def parse(cls, method: str, form: Form) -> KeyParams:
        if form.error is not None:
            raise EtcdError(errors.INVALID_FORM, form.error)
        p = cls()
        values = form.values
        if not values:
            return p  # no parameters at all (most GETs): every default holds
        p.prev_index = _uint_param(values, "prevIndex")
        p.wait_index = _uint_param(values, "waitIndex")
        p.recursive = _flag_param(values, "recursive")
        p.sorted = _flag_param(values, "sorted")
        p.wait = _flag_param(values, "wait")
        p.dir = _flag_param(values, "dir")
        _flag_param(values, "quorum")
        p.stream = _flag_param(values, "stream")
        if p.wait and method != "GET":
            raise EtcdError(errors.INVALID_FIELD, '"wait" can only be used with GET requests')
        p.prev_value = form.get("prevValue")
        if "prevValue" in values and not p.prev_value:
            raise EtcdError(errors.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty')
        p.no_value_on_success = _flag_param(values, "noValueOnSuccess")
        if form.get("ttl"):
            try:
                p.ttl = go_parse_uint64(values["ttl"][0])
            except ValueError:
                raise EtcdError(errors.TTL_NAN, 'invalid value for "ttl"') from None
        if "prevExist" in values:
            p.prev_exist = _flag_param(values, "prevExist", "invalid value for prevExist")
        if "refresh" in values:
            p.refresh = _flag_param(values, "refresh", "invalid value for refresh")
            if p.refresh:
                if form.get("value"):
                    raise EtcdError(errors.REFRESH_VALUE, "A value was provided on a refresh")
                if p.ttl is None:
                    raise EtcdError(errors.REFRESH_TTL_REQUIRED, "No TTL value set")
        p.value = form.get("value")
        return p


def _uint_param(values: dict[str, list[str]], name: str) -> int:
    """A uint64 parameter, 0 when absent; etcd's INDEX_NAN when not a number."""
    given = values.get(name)
    if given is None:
        return 0
    try:
        return go_parse_uint64(given[0])
    except ValueError:
        raise EtcdError(errors.INDEX_NAN, f'invalid value for "{name}"') from None


def _flag_param(values: dict[str, list[str]], name: str, cause: str | None = None) -> bool:
    """A boolean parameter, False when absent; etcd's INVALID_FIELD when not a bool."""
    given = values.get(name)
    if given is None:
        return False
    try:
        return go_parse_bool(given[0])
    except ValueError:
        raise EtcdError(errors.INVALID_FIELD, cause or f'invalid value for "{name}"') from None
