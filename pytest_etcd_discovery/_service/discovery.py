"""The fake discovery service: one entry point, :meth:`DiscoveryService.answer`.

A request goes through the same steps whoever carried it:

1. routing (:mod:`.routes`), once: the endpoint, the token, the form, whether it is a
   long poll; the journal (:mod:`.journal`) records it at once, so a long poll still
   waiting shows as pending;
2. Go's ServeMux redirect of an unclean path (``//new``), before anything else runs;
3. the ``before_request`` hooks, then the fault plan (:mod:`.faults`), which decides;
4. the endpoint: fixed routes here, token routes by the profile (:mod:`.profiles`),
   the keys API by :mod:`.keys`; ``/metrics`` counts what the real one counts.

Transports adapt it: the WSGI app (:mod:`.app`) for the live server, direct calls
in-process (:mod:`pytest_etcd_discovery._transport.intercept`).
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .._constants import TRANSPORT_FIXTURE
from .._etcd_rules import TOKEN_RE
from .._v2store import errors as etcd_errors
from .._v2store.clock import Clock
from .._v2store.errors import EtcdError
from .._v2store.store import Store
from .faults import Decision, FaultPlan
from .forms import go_atoi, parse_form
from .go_net_http import bare_response, body_reply, http_error, redirect, redirect_to_clean
from .go_net_http import status_text as go_status_text
from .journal import MAX_JOURNAL_BYTES, Call, Journal, Streamed
from .keys import KeysAPI, is_etcd_watch
from .messages import (
    DATED,
    DEFERRING,
    SNIFFED,
    Later,
    Pending,
    Reply,
    ServiceRequest,
    as_text,
    request_from_url,
)
from .metrics import Metrics
from .profiles import Profile, get_profile
from .routes import ENDPOINTS, NOT_FOUND, REDIRECT, TOKEN_ENDPOINTS, Route, Router

__all__ = ["ROUTE_METHODS", "DiscoveryService"]

# Methods each token route accepts; anything else is gorilla mux's empty 405.
ROUTE_METHODS = {
    "token": ("GET", "PUT"),
    "machine": ("GET", "PUT", "DELETE"),
    "size": ("GET",),
}
#: A hook run before faults and endpoints; the first reply one returns answers.
Hook = Callable[[ServiceRequest], Reply | None]
#: The store each request works on: the service's store when the request arrived.  A
#: request still running when the store is replaced (its test ended) keeps its own,
#: retired one, and is dropped rather than reaching the new one.
_REQUEST_STORE: ContextVar[tuple[DiscoveryService, Store] | None] = ContextVar(
    "etcd_discovery_request_store", default=None
)


def random_token() -> str:
    """A new token as the real service makes one: 16 random bytes in hex."""
    return secrets.token_hex(16)


def seeded_token_source(seed: int) -> Callable[[], str]:
    """Tokens in the same order on every run (``--seed``): same format, not secret."""
    rng = random.Random(seed)
    return lambda: format(rng.getrandbits(128), "032x")


class DiscoveryService:
    """The fake discovery service, free of any transport.

    :param store: the state; a fresh :class:`Store` on ``clock`` by default.
    :param profile: ``"etcd-v2"`` (default) or ``"discoveryserver"``, or a
        :class:`~.profiles.Profile`.
    :param public_url: the prefix ``/new`` hands out; ``None`` uses the URL of the host
        the request was addressed to, so the live server hands out its URL and the
        in-process transport hands out ``https://discovery.etcd.io``.
    :param clock: the clock of a default store.
    :param max_calls: keep at most about this many journal entries (the oldest go);
        None keeps all that fit ``max_journal_bytes``.
    :param max_journal_bytes: keep journal entries holding at most this many bytes of
        memory in all (each entry costed with ``sys.getsizeof``, see
        :func:`~.journal.entry_bytes`; each keeps at most
        :data:`~.journal.MAX_ENTRY_CHARS` characters of query and form values).
    :param max_journal_chars: the old name of ``max_journal_bytes``.
    :param keys_api: serve the generic etcd v2 keys API at ``/v2/keys`` (a "custom etcd
        discovery" URL). The real discovery service answers 404 there, and the keys API
        lets any client list and delete every token, so it is off by default.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        profile: str | Profile = "etcd-v2",
        public_url: str | None = None,
        clock: Clock | None = None,
        max_calls: int | None = None,
        max_journal_bytes: int = MAX_JOURNAL_BYTES,
        max_journal_chars: int | None = None,
        keys_api: bool = False,
    ) -> None:
        self.profile = get_profile(profile)
        self._store = store if store is not None else self.new_store(clock)
        self.public_url = public_url
        #: Serve the keys API at ``/v2/keys`` (the profile permitting); may change any time.
        self.keys_api = keys_api
        if max_journal_chars is not None:
            max_journal_bytes = max_journal_chars
        self.journal = Journal(max_calls, max_journal_bytes)
        #: Exceptions the fake raised while answering (its own bugs); see take_errors().
        self.errors: list[BaseException] = []
        self.metrics = Metrics()
        self.cluster_id = secrets.token_hex(8)
        self.raft_term = 2
        #: Where :meth:`new_token` gets its tokens (``seeded_token_source`` for ``--seed``).
        self.token_source: Callable[[], str] = random_token
        #: The fault plan every request is matched against (see :mod:`.faults`).
        self.faults = FaultPlan()
        self._closed = False  # between close() and open(): a server stopped
        #: Hooks run after routing, before faults; the first one returning a reply answers.
        self.before_request: list[Hook] = []
        self.keys = KeysAPI(self)
        self._router = Router()
        self._errors_lock = threading.Lock()
        self._endpoints: dict[str, Callable[[ServiceRequest, Route], Reply]] = {
            "home": self._on_home,
            "health": self._on_health,
            "robots": self._on_robots,
            "metrics": self._on_metrics,
            "token": self._on_token_route,
            "machine": self._on_token_route,
            "size": self._on_token_route,
            "keys": self._on_keys,
        }

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

    @property
    def calls(self) -> list[Call]:
        """The journal: one :class:`~.journal.Call` per request, oldest first."""
        return self.journal.calls

    # -- the Python API ------------------------------------------------------------------

    def new_store(self, clock: Clock | None = None) -> Store:
        """An empty store that behaves as this profile's (see :mod:`.profiles`)."""
        return Store(clock, rules=self.profile.store_rules)

    def token_key(self, token: str) -> str:
        """The store key of ``token`` (where its members live)."""
        return f"{self.profile.key_prefix}/{token}"

    def token_names(self) -> list[str]:
        """Every token in the store, oldest first (by ``createdIndex``)."""
        try:
            # etcd-v2 keeps tokens under /_etcd/registry like the real proxy; the rewrite at /.
            listing = self.store.get(self.profile.key_prefix or "/", sorted=True).to_json()
        except EtcdError:
            return []
        dirs = [n for n in listing.get("node", {}).get("nodes", []) or [] if n.get("dir")]
        dirs.sort(key=lambda n: int(n.get("createdIndex", 0)))
        names = (str(n["key"]).rsplit("/", 1)[-1] for n in dirs)
        return [name for name in names if TOKEN_RE.fullmatch(name)]

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
                if err.code != etcd_errors.NODE_EXIST:
                    raise
        else:
            raise EtcdError(etcd_errors.NODE_EXIST, "no unused token", self.store.index)
        if self.profile.gc_records:
            self.store.bump_index()  # discoveryserver's garbage-collection record
        return token

    def reset(self, store: Store | None = None, *, retire: bool = True) -> None:
        """Start over with an empty store on the same clock and an empty journal.

        The old store is retired: watches blocked on it are released, and a request that
        arrived before and is still running (held by a fault) is dropped rather than
        reaching the new store.  The old journal list is left as it is (a new one takes
        its place), so whoever holds it still sees those late requests.
        ``retire=False`` keeps the old store serving (the shared state while a test
        works on its copy).
        """
        old = self._store
        self._store = store if store is not None else self.new_store(old.clock)
        if retire:
            old.close()
        self.journal.renew()
        with self._errors_lock:
            self.errors = []
        self.metrics.clear()

    def take_errors(self) -> list[BaseException]:
        """The exceptions raised inside the fake since the last call, and forget them."""
        with self._errors_lock:
            taken, self.errors = self.errors, []
        return taken

    def close(self) -> None:
        """Release every blocked long poll and every request a fault delays (the server
        calls this when it stops: its waiting requests must end now)."""
        self._closed = True
        self.faults.release()
        self.store.close()

    def open(self) -> None:
        """Serve again after :meth:`close`, with the same state (a server restart)."""
        self._closed = False
        self.store.open()

    def answer_url(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        transport: str = TRANSPORT_FIXTURE,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer ``method url`` (``form`` as an urlencoded body) in-process, as if it
        arrived at the URL's host; returns ``(status, headers, body)``. The fixture seeds
        with it (transport ``"fixture"``: never faulted, left out of ``calls``)."""
        request = request_from_url(method, url, form=form, transport=transport)
        reply = self.answer(request)
        if reply.drop:
            raise ConnectionAbortedError("etcd discovery fake: connection dropped on purpose")
        return reply.status, reply.headers, reply.read(method)

    # -- the entry point -----------------------------------------------------------------

    def route(self, request: ServiceRequest) -> Route:
        """Route ``request`` (done once: :meth:`handle` takes the result)."""
        endpoint, token = self._router.endpoint(request.path)
        # werkzeug upper-cased methods for everything but the 405 checks; so does the fake.
        method = request.method.upper()
        form = parse_form(method, request.query, request.header("Content-Type"), request.body)
        is_watch = False
        if endpoint in TOKEN_ENDPOINTS:
            is_watch = self.profile.is_watch(method, form)
        elif endpoint == "keys":
            if self.keys_api and self.profile.serves_keys_api:
                is_watch = is_etcd_watch(method, form)
            else:
                endpoint = NOT_FOUND  # the real service: 404 for every /v2 path
        return Route(endpoint, request.path, form, token, is_watch)

    def may_block(self, route: Route) -> bool:
        """True when answering may wait: a long poll, or a fault plan with delays.
        Everything else answers at once (a caller can run it inline)."""
        return route.is_watch or self.faults.may_delay

    def answer(self, request: ServiceRequest, route: Route | None = None) -> Reply:
        """Answer ``request`` (``route``: its :meth:`route`, if the caller has it);
        waits here for what it waits for (a fault's delay, a long poll)."""
        # on_store(None), without a generator-based context manager per request.
        bound = _REQUEST_STORE.get()
        if bound is not None and bound[0] is self:
            return self._journaled(request, route).settled()
        token = _REQUEST_STORE.set((self, self._store))
        try:
            return self._journaled(request, route).settled()
        finally:
            _REQUEST_STORE.reset(token)

    def answer_deferred(self, request: ServiceRequest, route: Route | None = None) -> Reply:
        """:meth:`answer` for a caller that must not block (the live server's event
        loop): the reply may be late (:attr:`Reply.later`) and a long poll's body may
        yield :class:`~.messages.Pending` waits; the caller waits for them its own way."""
        token = DEFERRING.set(True)
        try:
            with self.on_store(None):
                return self._journaled(request, route)
        finally:
            DEFERRING.reset(token)

    @contextmanager
    def on_store(self, store: Store | None) -> Iterator[None]:
        """Work on ``store`` in this thread for the ``with`` block (None: the store of
        now, kept even if a reset replaces it meanwhile; a block already inside one for
        this service keeps that one)."""
        bound = _REQUEST_STORE.get()
        if store is None and bound is not None and bound[0] is self:
            yield
            return
        token = _REQUEST_STORE.set((self, store if store is not None else self._store))
        try:
            yield
        finally:
            _REQUEST_STORE.reset(token)

    def _journaled(self, request: ServiceRequest, route: Route | None) -> Reply:
        if route is None:
            route = self.route(request)
        call = self.journal.record(
            method=request.method.upper(),
            path=request.display_path,
            query=as_text(request.query),
            transport=request.transport,
            form=route.form.values,
            time=self.clock.now(),
            # The routing fault rules match, so a test can filter calls by it.
            route=route.endpoint if route.endpoint in ENDPOINTS else None,
            watch=route.is_watch,
            headers=request.headers,
            body=request.body,
        )
        try:
            reply = self._reply(request, route, call)
        except Exception as exc:
            reply = self._bug(exc)
        if reply.later is not None:
            bound = _REQUEST_STORE.get()
            store = bound[1] if bound is not None else self._store
            return Reply.late(self._journaled_later(reply.later, call, store))
        return self._journal_reply(reply, call)

    def _bug(self, exc: Exception) -> Reply:
        # A bug in the fake, never a behaviour of the real service: keep it so the
        # test that caused it fails at teardown (the plugin checks), answer a bare 500.
        with self._errors_lock:
            self.errors.append(exc)
        return http_error("Internal Server Error", 500)

    def _journaled_later(self, later: Later, call: Call, store: Store) -> Later:
        """A late reply's steps, each on the request's own store (bound per step: a
        binding must not outlive a step, or an event loop's other requests would see
        it), then journaled like any reply."""
        deferring = DEFERRING.get()
        while True:
            token = DEFERRING.set(deferring)
            try:
                with self.on_store(store):
                    try:
                        wait = next(later)
                    except StopIteration as stop:
                        reply: Reply = stop.value
                        if reply.later is not None:
                            later = reply.later  # waits again (a delayed long poll)
                            continue
                        return self._journal_reply(reply, call)
                    except Exception as exc:
                        return self._journal_reply(self._bug(exc), call)
            finally:
                DEFERRING.reset(token)
            try:
                yield wait
            except GeneratorExit:
                later.close()  # the caller gave up (client gone, server stopping)
                raise

    def _journal_reply(self, reply: Reply, call: Call) -> Reply:
        call.status = 0 if reply.drop else reply.status
        if reply.streamed:
            # A long poll: the reply is complete only when its body is.
            call.streaming = True
            assert not isinstance(reply.body, bytes)
            reply.body = Streamed(reply.body, call)
        return reply

    def _reply(self, request: ServiceRequest, route: Route, call: Call) -> Reply:
        method = request.method.upper()
        if route.endpoint == REDIRECT:
            # Go's ServeMux redirects unclean paths before any handler (or fault) runs.
            clean = redirect_to_clean(request.path, request.query, method)
            assert clean is not None
            return clean
        for hook in self.before_request:
            hooked = hook(request)
            if hooked is not None:
                return hooked
        decision = self.faults.decide(request, route)
        if decision is not None:
            call.fault = decision.label
            if decision.delay > 0:
                return Reply.late(self._delayed(decision, request, route, call))
        return self._decided(decision, request, route, call)

    def _delayed(
        self, decision: Decision, request: ServiceRequest, route: Route, call: Call
    ) -> Later:
        """A request held by a delay fault: the wait, then the rest of its answer."""
        waiting: Pending = self.faults.waiting(decision)
        while not waiting.ready():
            yield waiting
        return self._decided(decision, request, route, call)

    def _decided(
        self, decision: Decision | None, request: ServiceRequest, route: Route, call: Call
    ) -> Reply:
        """The answer once the fault plan has decided (and a delay is over)."""
        faulted = None
        if decision is not None:
            faulted = self._carry_out(decision, request, route)
        retired = self.store is not self._store and self.store.closed
        if retired or (decision is not None and self._closed):
            # Held (by a fault) until its store was retired or the server stopped: it
            # must not write anywhere, and its client hears what a server that went away
            # says.  (A store still open is one asked for on purpose: the shared state
            # beside a test's copy.)
            return Reply(0, drop=True)
        if faulted is not None:
            return faulted
        if route.endpoint == NOT_FOUND:
            return http_error("404 page not found", 404)
        if route.endpoint == "new":
            return self._on_new(request, route, call)  # it notes the token in the journal
        return self._endpoints[route.endpoint](request, route)

    # -- faults --------------------------------------------------------------------------

    def _carry_out(self, decision: Decision, request: ServiceRequest, route: Route) -> Reply | None:
        """Do what a fault decided (its delay waited out already): a reply, or None to
        answer normally."""
        action = decision.action
        if action == "delay":
            return None
        if action == "callback":
            on_match = decision.rule.on_match
            assert on_match is not None
            on_match(request)
            return None
        if action == "drop":
            return Reply(0, drop=True)
        if action == "empty":
            return bare_response(200)
        return self.fault_reply(request.method.upper(), route, decision)

    def fault_reply(self, method: str, route: Route, decision: Decision) -> Reply:
        """The reply a ``status`` fault gives: the body the real service sends with it."""
        status = decision.status or 503
        if decision.body is not None:
            return http_error(decision.body.removesuffix("\n"), status)
        if route.endpoint in TOKEN_ENDPOINTS or route.endpoint == "keys":
            reply = self.profile.fault_reply(self, method, route, status, decision.error_code)
            if reply is not None:
                return reply
        if route.endpoint == "new" and status == 400:
            return http_error(self.profile.new_error, 400)
        if route.endpoint == "health" and status == 400:
            return http_error("health failed to setupToken", 400)
        # A proxy, load balancer or maintenance page in front: Go's http.Error text.
        return http_error(go_status_text(status), status)

    # -- endpoints -----------------------------------------------------------------------

    def _count(self, endpoint: str, method: str, reply: Reply) -> Reply:
        self.metrics.count(endpoint, reply.status, method)
        return reply

    def _on_home(self, request: ServiceRequest, route: Route) -> Reply:
        return redirect(self.profile.home_url, request.method.upper())

    def _on_robots(self, request: ServiceRequest, route: Route) -> Reply:
        reply = body_reply(200, "User-agent: *\nDisallow: /")
        reply.server_headers = SNIFFED
        return reply

    def _on_metrics(self, request: ServiceRequest, route: Route) -> Reply:
        reply = body_reply(
            200, self.metrics.render(), (), "text/plain; version=0.0.4; charset=utf-8"
        )
        reply.server_headers = DATED
        return reply

    def _on_new(self, request: ServiceRequest, route: Route, call: Call) -> Reply:
        method = request.method.upper()
        size = 3
        raw = route.form.get("size")  # Go's FormValue ignores parse errors
        if raw:
            try:
                size = go_atoi(raw)
            except ValueError as exc:
                return self._count("new", method, http_error(str(exc), 400))
        try:
            token = self.new_token(size)
        except EtcdError:
            return self._count("new", method, http_error(self.profile.new_error, 400))
        base = (self.public_url or request.host_url).rstrip("/")
        call.created_url = f"{base}/{token}"  # the report lists the token where it went
        reply = body_reply(200, call.created_url)
        reply.server_headers = SNIFFED
        return self._count("new", method, reply)

    def _on_health(self, request: ServiceRequest, route: Route) -> Reply:
        # Not from a seeded source: health checks must not shift the tokens /new hands out.
        token = self.new_token(0, source=random_token)
        self.store.delete(self.token_key(token), dir=True, recursive=True)
        if self.profile.gc_records:
            self.store.bump_index()
        reply = body_reply(200, "OK")
        reply.server_headers = SNIFFED
        return self._count("health", request.method.upper(), reply)

    def _on_token_route(self, request: ServiceRequest, route: Route) -> Reply:
        # Go compares methods case-sensitively ("get" is not GET).
        if request.method not in ROUTE_METHODS[route.endpoint]:
            return bare_response(405)
        token = route.token
        # The rest of the path with its original bytes.
        key = self.token_key(token) + route.path[1 + len(token) :]
        reply, counted = self.profile.answer_token(self, request.method, key, route)
        if reply.later is not None:
            return Reply.late(self._counted_later(reply.later, request.method))
        if counted:
            self._count("token", request.method, reply)
        return reply

    def _counted_later(self, later: Later, method: str) -> Later:
        """A late token reply (discoveryserver's long poll), counted once it is known
        (one that gave up is an empty 200 its handler returns before counting)."""
        reply = yield from later
        if not reply.uncounted:
            self._count("token", method, reply)
        return reply

    def _on_keys(self, request: ServiceRequest, route: Route) -> Reply:
        return self.keys.answer_route(
            request.method.upper(), request.method, route.path, route.form
        )
