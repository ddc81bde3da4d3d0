"""The object the ``etcd_discovery`` fixture hands to a test.

:class:`EtcdDiscovery` wraps one discovery service, the fake (a live
:class:`~pytest_etcd_discovery.transport.server.DiscoveryServer` plus in-process interception) or a
real one given with ``--etcd-discovery-url``.  Its helpers speak the service's HTTP API,
so seeding a token looks exactly like the requests a real member sends; features that
need the fake's insides (clock, journal, faults, snapshots) skip with a clear reason
against a real service, whose interception forwards the discovery hosts to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest

from ._errors import Error
from ._etcd import CallCriteria, etcd_member_id, etcd_member_value, peer_url_list
from .constants import DEFAULT_HOSTS, TRANSPORT_FIXTURE, V04_TTL, normalize_host

# What a test may not need loads on first use: requests (a real service only) and
# responses (interception only). A session whose tests just use the live fake then pays
# for werkzeug and the fake alone.
if TYPE_CHECKING:
    import responses
    from typing_extensions import Unpack

    from .expectations import CallList
    from .service.app import DiscoveryApp
    from .service.faults import FaultPlan
    from .service.journal import Call
    from .transport.clients import ClientCover
    from .transport.forward import ForwardApp
    from .transport.intercept import Interceptor
    from .transport.mocks import DefaultMockPassthru
    from .transport.proxy import DiscoveryFront
    from .transport.server import DiscoveryServer
    from .v2store.clock import ControllableClock
    from .v2store.store import Store

__all__ = [
    "V04_TTL",
    "ClusterFullError",
    "DiscoveryError",
    "EtcdDiscovery",
    "Member",
    "TokenView",
    "etcd_member_id",
    "etcd_member_value",
]

#: Transport tag for the fixture's own seeding calls, kept out of ``.calls``.
FIXTURE_TRANSPORT = TRANSPORT_FIXTURE

#: Requests to a real service are bounded like etcd's own 5 s non-watch limit, with slack.
_REAL_TIMEOUT = 10.0


class DiscoveryError(Error):
    """The discovery service refused a helper's request (or, as
    :class:`ClusterFullError`, etcd's own check found the token full).

    ``status`` is the HTTP status, ``body`` the raw reply and ``error`` the decoded etcd
    error JSON (``errorCode``, ``message``, ``cause``, ``index``) when there was one.
    """

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        self.error: dict[str, Any] | None = None
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            self.error = decoded
        super().__init__(f"{method} {url} -> {status}: {body.strip()}")

    @property
    def error_code(self) -> int | None:
        """etcd's ``errorCode`` (105 = key exists, 100 = not found), if any."""
        code = (self.error or {}).get("errorCode")
        return code if isinstance(code, int) else None


class ClusterFullError(DiscoveryError):
    """etcd's ``discovery: cluster is full``: the token already has ``size`` other
    members, so etcd 3.4 does not register (it falls back to proxy or exits).

    A :class:`DiscoveryError`, so ``except DiscoveryError`` around :meth:`~EtcdDiscovery.register`
    sees every registration that did not happen. The service refused nothing here: etcd
    decides "full" from the token's listing, so ``method``/``url`` are that ``GET`` of the
    token, ``status`` is its 200 and ``error`` is None.
    """

    def __init__(self, token_url: str, size: int, members: Sequence[Member]) -> None:
        super().__init__("GET", token_url, 200, "")
        self.token_url = token_url
        self.size = size
        self.members = tuple(members)
        names = ", ".join(m.name for m in self.members)
        # etcd's words, not the HTTP summary DiscoveryError writes.
        self.args = (f"discovery: cluster is full ({size} of {size}: {names}) at {token_url}",)


@dataclass(frozen=True)
class Member:
    """One registration under a token, as the service lists it."""

    #: The key's last path segment: etcd 3.4's hex member id, or the etcd 0.4 name.
    key: str
    #: The raw value: ``name=url[,name=url]`` (etcd 3.4) or a peer URL (etcd 0.4).
    value: str
    created_index: int
    modified_index: int
    #: Seconds left (etcd's ``ttl``), None when the key does not expire.
    ttl: int | None = None
    #: etcd's ``expiration`` (RFC 3339), None when the key does not expire.
    expiration: str | None = None

    @property
    def name(self) -> str:
        """The member name (etcd 3.4 value prefix, else the key)."""
        first = self.value.split(",", 1)[0]
        if "=" in first:
            return first.split("=", 1)[0]
        return self.key

    @property
    def peer_urls(self) -> list[str]:
        """The peer URLs in the value, in order."""
        urls = []
        for part in self.value.split(","):
            urls.append(part.split("=", 1)[1] if "=" in part else part)
        return [u for u in urls if u]

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> Member:
        ttl = node.get("ttl")
        return cls(
            key=str(node["key"]).rsplit("/", 1)[-1],
            value=str(node.get("value", "")),
            created_index=int(node.get("createdIndex", 0)),
            modified_index=int(node.get("modifiedIndex", 0)),
            ttl=int(ttl) if ttl is not None else None,
            expiration=node.get("expiration"),
        )


@dataclass(frozen=True)
class TokenView:
    """A read-only look at one token: what a bootstrapping member would see."""

    url: str
    #: ``_config/size``, None when the key is missing.
    size: int | None
    #: Registered members, oldest first (createdIndex order, as etcd sorts them).
    members: tuple[Member, ...]
    #: The ``_state`` value etcd 0.4 writes (``started``), None when absent.
    state: str | None
    #: The store index when the view was taken (``X-Etcd-Index``).
    index: int

    @property
    def token(self) -> str:
        return urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def full(self) -> bool:
        """True when at least ``size`` members registered."""
        return self.size is not None and len(self.members) >= self.size

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]


class EtcdDiscovery:
    """A discovery service for one test: the fake, or a real one.

    Attributes: ``url`` (base URL of the live service), ``mode`` (``"fake"`` or
    ``"real"``), ``profile`` and ``hosts`` (what interception captures).
    """

    def __init__(
        self,
        url: str,
        *,
        app: DiscoveryApp | None = None,
        server: DiscoveryServer | None = None,
        clock: ControllableClock | None = None,
        profile: str = "etcd-v2",
        hosts: Sequence[str] = DEFAULT_HOSTS,
        front: Callable[[], DiscoveryFront] | None = None,
        forward: ForwardApp | None = None,
        journal: Callable[[], list[Call]] | None = None,
        store: Callable[[], Store] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.profile = profile
        self.hosts = tuple(hosts)
        self._app = app
        self._server = server
        self._clock = clock
        self._interceptor: Interceptor | None = None
        #: Real mode: what interception calls (it forwards to the configured service);
        #: the plugin shares one with the front's backend, else made on first use.
        self._forward = forward
        #: The journal pinned by :meth:`keep_journal` when the test ended.
        self._journal: list[Call] | None = None
        #: Where the journal comes from instead of the app's (the shared handle's).
        self._journal_source = journal
        #: The store the helpers act on instead of the one served now (the shared
        #: handle's: the shared state, also while a test works on its copy).
        self._store_source = store
        #: Errors the fake raised inside while this handle's test ran (set at its end).
        self.errors: list[BaseException] = []
        # The TLS/proxy front, started on first use (a test that only uses requests or
        # the plain live URL never makes a certificate); in real mode it forwards too.
        self._front_factory = front
        self._cover: ClientCover | None = None
        self._default_passthru: DefaultMockPassthru | None = None
        #: Set by the marker's seeding: the token URL it created, if any.
        self.seeded_url: str | None = None
        #: Token URLs :meth:`new_token` created in this test (the report lists them).
        self.created_tokens: list[str] = []

    # -- what kind of service -------------------------------------------------------

    @property
    def mode(self) -> str:
        """``"fake"``, or ``"real"`` with ``--etcd-discovery-url`` (then :attr:`url` is
        that service and the helpers talk to it alone)."""
        return "fake" if self._app is not None else "real"

    @property
    def is_fake(self) -> bool:
        return self._app is not None

    def _need_fake(self, feature: str) -> DiscoveryApp:
        __tracebackhide__ = True
        if self._app is None:
            pytest.skip(
                f"etcd discovery: {feature} needs the fake's insides; this run uses the real "
                f"service at {self.url} (--etcd-discovery-url)"
            )
        return self._app

    @property
    def app(self) -> DiscoveryApp:
        """The fake's WSGI app (skips the test against a real service)."""
        return self._need_fake("the app")

    @property
    def server(self) -> DiscoveryServer:
        """The live server (skips the test against a real service)."""
        self._need_fake("the live server")
        assert self._server is not None
        return self._server

    @property
    def clock(self) -> ControllableClock:
        """This test's clock: ``advance(seconds)``, ``freeze()``, ``unfreeze()``, ``now()``.

        It follows real time until moved; advancing past a TTL expires the key at once and
        wakes its watchers.  Skips the test against a real service.
        """
        self._need_fake("the clock")
        assert self._clock is not None
        return self._clock

    @property
    def calls(self) -> CallList:
        """The request journal of this test, both transports (live and in-process).

        Each entry has ``method``, ``path``, ``query``, ``status`` (None while still being
        answered, 0 for a dropped connection), ``route``, ``transport``, ``form`` and
        ``fault``.  The fixture's own seeding requests are left out.  A list, with
        ``.filter(method=, route=, path=, token=, status=, transport=)``.
        """
        from .expectations import CallList

        app = self._need_fake("the request journal")
        if self._journal is not None:
            journal = self._journal
        elif self._journal_source is not None:
            journal = self._journal_source()
        else:
            journal = app.calls
        return CallList(c for c in journal if c.transport != FIXTURE_TRANSPORT)

    def keep_journal(self) -> None:
        """Pin :attr:`calls` to this test's journal (the fixture calls it at teardown).

        The app starts a new journal for the next test; this one keeps the requests this
        test made, including one still running when the test ended (it shows as dropped,
        ``status`` 0, once it goes on).
        """
        if self._app is not None and self._journal_source is None:
            self._journal = self._app.calls

    # -- expectations ---------------------------------------------------------------

    def assert_requested(
        self,
        times: int | None = None,
        **criteria: Unpack[CallCriteria],
    ) -> CallList:
        """Fail unless the code under test made ``times`` requests matching the filters
        (at least one when ``times`` is None); returns the matching calls.

        The filters (``method``, ``route``, ``path``, ``token``, ``status``,
        ``transport``) are :attr:`calls`' ``filter()`` ones.  The failure shows what was
        expected, what matched, and the closest requests that did not with what each
        missed.  Fake only (it reads the journal).
        """
        __tracebackhide__ = True
        from .expectations import CallFilter, CallList, requested_failure

        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 0
        ):
            raise ValueError(f"times: expected a count >= 0, got {times!r}")
        flt = CallFilter.make(**criteria)
        calls = self.calls
        hint = (
            None
            if self.intercepting
            else (f"interception is off: requests to {', '.join(self.hosts)} do not reach the fake")
        )
        message = requested_failure(calls, flt, times, hint)
        if message is not None:
            raise AssertionError(message)
        return CallList(call for call in calls if flt.matches(call))

    def assert_not_requested(
        self,
        **criteria: Unpack[CallCriteria],
    ) -> None:
        """Fail if the code under test made any request matching the filters (with none,
        any request at all), listing each one.  Fake only."""
        __tracebackhide__ = True
        from .expectations import CallFilter, not_requested_failure

        flt = CallFilter.make(**criteria)
        message = not_requested_failure(self.calls, flt)
        if message is not None:
            raise AssertionError(message)

    def assert_registered(
        self, token_url: str, names: Sequence[str], state: str | None = None
    ) -> TokenView:
        """Fail unless ``token_url`` holds exactly the members ``names``, in registration
        order (and ``_state`` equal to ``state``, if given); returns the token's view.

        Names are the member names etcd registered (etcd 3.4 keys a member by its id; the
        name is in the value).  Works against a real service too.
        """
        __tracebackhide__ = True
        from .expectations import registered_failure

        if isinstance(names, str):
            raise TypeError("names: expected a sequence of member names, not one string")
        try:
            view = self.token(token_url)
        except DiscoveryError as exc:
            raise AssertionError(
                f"etcd discovery: token {token_url} cannot be read: {exc}"
            ) from None
        message = registered_failure(view, names, state)
        if message is not None:
            raise AssertionError(message)
        return view

    @property
    def faults(self) -> FaultPlan:
        """This test's fault plan (fake only; cleared after the test), e.g.
        ``.fail(503, route="size", times=1)``, ``.delay(6, method="GET")``,
        ``.drop(method="PUT")``, ``.empty_watch()``; see
        :mod:`~pytest_etcd_discovery.service.faults`.
        Faulted requests show in :attr:`calls` with their rule in ``fault``."""
        from .service.faults import FaultPlan

        return FaultPlan.of(self._need_fake("fault injection"))

    # -- HTTP, in-process for the fake, over the network for a real service ---------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        if self._app is None:
            url = self._on_service(url)
        if self._app is not None:
            with self._on_store(self._app):
                status, headers, body = self._app.call(
                    method, url, form=form, transport=FIXTURE_TRANSPORT
                )
            return status, dict(headers), body.decode("utf-8", "replace")
        import requests

        # A real service, over the network (its host is not one interception captures).
        with requests.Session() as session:
            reply = session.request(method, url, data=form, timeout=_REAL_TIMEOUT)
        return reply.status_code, dict(reply.headers), reply.text

    def _checked(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[dict[str, str], Any]:
        __tracebackhide__ = True
        status, headers, body = self._request(method, url, params=params, form=form)
        if not 200 <= status < 300:
            raise DiscoveryError(method, url, status, body)
        return headers, json.loads(body) if body.strip() else None

    def token_url(self, token: str, base_url: str | None = None) -> str:
        """The URL of ``token`` on ``base_url`` (default: the live service).

        Against a real service (``--etcd-discovery-url``) every URL is on that service:
        ``base_url`` naming a discovery host (``https://discovery.etcd.io``) gives the
        configured URL, so nothing a test hands on reaches the public service.
        """
        base = (base_url or self.url).rstrip("/")
        if self._app is None:
            base = self._on_service(base)
        return f"{base}/{token}"

    def _on_service(self, url: str) -> str:
        """Real mode: ``url`` moved to the configured service if it names a discovery
        host; any other host is refused (the helpers talk to the configured one only)."""
        if url == self.url or url.startswith((f"{self.url}/", f"{self.url}?")):
            return url
        parts = urlsplit(url)
        try:
            host = normalize_host(f"{parts.scheme}://{parts.netloc}")
        except ValueError:
            host = ""
        if host in self.hosts:
            return self.url + url[len(parts.scheme) + 3 + len(parts.netloc) :]
        raise ValueError(
            f"etcd discovery: {url} is not on the configured service {self.url} "
            "(--etcd-discovery-url) nor on a discovery host; the helpers talk to that "
            "service only"
        )

    # -- the API users call ----------------------------------------------------------

    def new_token(self, size: int = 3, *, base_url: str | None = None) -> str:
        """Create a token for ``size`` members, the way ``GET /new?size=N`` does.

        Returns the token URL on the live service (usable by subprocesses such as real
        etcd); pass ``base_url="https://discovery.etcd.io"`` to get the URL code under
        interception would see.
        """
        status, _, body = self._request("GET", f"{self.url}/new", params={"size": str(size)})
        if status != 200:
            raise DiscoveryError("GET", f"{self.url}/new?size={size}", status, body)
        token = body.strip().rstrip("/").rsplit("/", 1)[-1]
        self.created_tokens.append(self.token_url(token))
        return self.token_url(token, base_url)

    def register(
        self,
        token_url: str,
        name: str,
        peer_urls: str | Sequence[str],
        *,
        discovery_url: str | None = None,
        check_full: bool = True,
    ) -> Member:
        """Register a member the way etcd 3.4 does when it bootstraps through discovery.

        ``PUT <token>/<member id>?prevExist=false`` with ``value=name=url,...``; the id is
        derived exactly as etcd derives it (:func:`etcd_member_id`) from the sorted peer
        URLs and the discovery URL the member was started with (``discovery_url``,
        default ``token_url``).  Registering the same member twice raises
        :class:`DiscoveryError` with ``error_code == 105``, as etcd sees after a data-dir
        wipe.

        Like etcd, it first reads ``_config/size`` and the members, and raises
        :class:`ClusterFullError` without registering when ``size`` others are there
        (``check_full=False`` skips that and just writes).  A missing size key raises
        :class:`DiscoveryError` (etcd stops there too).
        """
        urls = peer_url_list(peer_urls)
        if not urls:
            raise ValueError("a member needs at least one peer URL")
        member_id = etcd_member_id(urls, discovery_url or token_url)
        if check_full:
            self._check_not_full(token_url, member_id)
        _, reply = self._checked(
            "PUT",
            f"{token_url.rstrip('/')}/{member_id}",
            params={"prevExist": "false"},
            form={"value": etcd_member_value(name, urls)},
        )
        return Member.from_node(reply["node"])

    def _check_not_full(self, token_url: str, member_id: str) -> None:
        # etcd's checkCluster: members sorted by createdIndex; full when `size` of them
        # come before this member's own key (or it is absent and `size` are there).
        base = token_url.rstrip("/")
        _, reply = self._checked("GET", f"{base}/_config/size")
        try:
            size = int(reply["node"]["value"])
        except (KeyError, TypeError, ValueError):
            return  # etcd gives up with "size key is bad"; the PUT shows what happens
        view = self.token(base)
        for position, member in enumerate(view.members):
            if member.key == member_id:
                return
            if size > 0 and position >= size - 1:
                raise ClusterFullError(base, size, view.members[:size])

    def register_v04(
        self,
        token_url: str,
        name: str,
        peer_url: str,
        *,
        ttl: int = V04_TTL,
        start: bool = True,
    ) -> tuple[Member, bool]:
        """Register a member the way etcd 0.4 did (the seed article's era).

        ``PUT <token>/<name>`` with ``value=<peer url>`` and a 7-day ``ttl``, then (with
        ``start``) ``PUT <token>/_state?prevExist=false value=started``.  Returns the
        member and whether this member was the first (it created ``_state``).
        """
        _, reply = self._checked(
            "PUT", f"{token_url.rstrip('/')}/{name}", form={"value": peer_url, "ttl": str(ttl)}
        )
        member = Member.from_node(reply["node"])
        first = False
        if start:
            status, _, body = self._request(
                "PUT",
                f"{token_url.rstrip('/')}/_state",
                params={"prevExist": "false"},
                form={"value": "started"},
            )
            if status not in (200, 201, 412):
                raise DiscoveryError("PUT", f"{token_url}/_state", status, body)
            first = status != 412
        return member, first

    def set_state(self, token_url: str, value: str = "started") -> None:
        """Write ``_state`` (as an etcd 0.4 cluster that started would)."""
        self._checked("PUT", f"{token_url.rstrip('/')}/_state", form={"value": value})

    def token(self, token_url: str) -> TokenView:
        """Read a token: size, members in createdIndex order, ``_state``, TTLs left.

        Raises :class:`DiscoveryError` when the token does not exist.
        """
        base = token_url.rstrip("/")
        headers, reply = self._checked("GET", base)
        nodes = (reply or {}).get("node", {}).get("nodes", []) or []
        members = sorted(
            (Member.from_node(n) for n in nodes if not n.get("dir")),
            key=lambda m: m.created_index,
        )
        size: int | None = None
        status, _, body = self._request("GET", f"{base}/_config/size")
        if status == 200:
            try:
                size = int(json.loads(body)["node"]["value"])
            except (ValueError, KeyError, TypeError):
                size = None
        state: str | None = None
        status, _, body = self._request("GET", f"{base}/_state")
        if status == 200:
            try:
                state = str(json.loads(body)["node"]["value"])
            except (ValueError, KeyError, TypeError):
                state = None
        index = int(headers.get("X-Etcd-Index", "0") or 0)
        return TokenView(url=base, size=size, members=tuple(members), state=state, index=index)

    def delete(self, token_url: str, key: str) -> None:
        """Delete one key under a token (a member or ``_state``), as an operator would."""
        self._checked("DELETE", f"{token_url.rstrip('/')}/{key}")

    def tokens(self) -> list[str]:
        """Every token the fake knows, in creation order (fake only)."""
        app = self._need_fake("listing tokens")
        with self._on_store(app):
            return app.token_names()

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (fake only); see :meth:`restore`."""
        app = self._need_fake("snapshot()")
        with self._on_store(app):
            return {"store": app.store.snapshot()}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back a state taken with :meth:`snapshot` (fake only)."""
        app = self._need_fake("restore()")
        with self._on_store(app):
            app.store.restore(dict(data["store"]))

    def _on_store(self, app: DiscoveryApp) -> AbstractContextManager[None]:
        return app.on_store(self._store_source() if self._store_source is not None else None)

    @contextmanager
    def intercept(self) -> Iterator[EtcdDiscovery]:
        """Serve calls to ``https://discovery.etcd.io`` (and the ``etcd_discovery_hosts``)
        from this fake for the ``with`` block: ``requests`` in-process, and every other
        client in this process (``urllib``, ``http.client``, ``httpx``, ``aiohttp``)
        through the TLS front (see :meth:`start_intercept`).

        Against a real service (``--etcd-discovery-url``) the same calls are forwarded to
        it instead, unchanged but for the host."""
        if self.intercepting:
            yield self  # already on for this test (flag or marker)
            return
        self.start_intercept()
        try:
            yield self
        finally:
            self.stop_intercept()

    def _intercepted_app(self) -> Any:
        if self._app is not None:
            return self._app
        if self._forward is None:
            from .transport.forward import ForwardApp

            self._forward = ForwardApp(self.url)
        return self._forward

    def start_intercept(self) -> None:
        """Turn interception on until :meth:`stop_intercept` (the plugin uses this).

        ``requests`` is served in-process; other clients in this process resolve the
        discovery hosts to the fake's TLS front, which the test CA lets them verify; a
        discovery host asked for in a way the fake cannot serve fails at once
        (:class:`~pytest_etcd_discovery.transport.clients.DiscoveryHostGuardError`);
        ``responses``' default mock passes the discovery hosts through to the fake.
        Against a real service the same happens, but what answers is the configured
        service: ``requests`` calls are forwarded in-process, and the front's backend
        forwards the rest (see :mod:`~pytest_etcd_discovery.transport.forward`).
        """
        if self._interceptor is None:
            from .transport.intercept import Interceptor

            self._interceptor = Interceptor(self._intercepted_app(), self.hosts)
        self._interceptor.start()
        if self._front_factory is not None and self._cover is None:
            from .transport.clients import ClientCover
            from .transport.mocks import DefaultMockPassthru

            self._cover = ClientCover(self.hosts, self._front_factory)
            self._cover.start()
            self._default_passthru = DefaultMockPassthru(self.hosts)
            self._default_passthru.start()

    def stop_intercept(self) -> None:
        """Turn interception off (the fixture does at teardown)."""
        if self._default_passthru is not None:
            self._default_passthru.stop()
            self._default_passthru = None
        if self._cover is not None:
            self._cover.stop()
            self._cover = None
        if self._interceptor is not None:
            self._interceptor.stop()
            self._interceptor = None
        if self._forward is not None:
            # Long polls still forwarded end with the test (in-process or through the
            # front); the forwarder itself serves the next one.
            self._forward.close()

    # -- the drop-in front: subprocesses, other clients, responses mocks -------------------

    @property
    def front(self) -> DiscoveryFront:
        """The TLS + proxy front, started on first use: in front of the live server, or,
        against a real service, of a forwarder to it."""
        if self._front_factory is None:
            where = "" if self.is_fake else f" (no discovery host to forward to {self.url})"
            raise RuntimeError(f"this EtcdDiscovery has no TLS front{where}")
        return self._front_factory()

    @property
    def ca_file(self) -> str:
        """Path of a CA bundle: the system roots plus this session's test CA, which
        issued the front's certificate for the discovery hosts."""
        return str(self.front.ca.bundle_file)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a child process that should reach the fake (against a
        real service: that service) at ``https://discovery.etcd.io``: ``base`` (default
        ``os.environ``) plus the proxy variables (the front), ``NO_PROXY`` for loopback,
        and the CA bundle in ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``,
        ``CURL_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS`` and a ``WGETRC``.

        Node ignores the proxy variables, so ``NODE_OPTIONS`` gets ``--require`` of a
        preload (appended to the caller's) that sends Node's connections to the discovery
        hosts (``https.get``/``request``, ``fetch``, ``http``, ``net``, ``tls``) to the
        front; proved with Node 18 (Debian 12) and 20.  Code that looks the name up
        itself (``dns.lookup``) and connects to the address is not served; other
        JavaScript runtimes were not tested.

        ``subprocess.run(["curl", "-s", "https://discovery.etcd.io/new?size=3"],
        env=etcd_discovery.env())``.
        """
        from .transport.childenv import child_env

        return child_env(self.front, base)

    def add_to(self, mock: responses.RequestsMock) -> None:
        """Let a ``responses.RequestsMock`` of your own pass the discovery hosts through
        to this fake, or the real service it forwards to (``responses``' default mock,
        ``@responses.activate``, gets it automatically while interception is on)."""
        from .transport.mocks import add_to

        if not self.intercepting:
            # Passing the hosts through with nothing to catch them would turn what the
            # mock refuses into a request to the real service.
            raise RuntimeError(
                "etcd discovery: add_to() needs interception on (the etcd_discovery fixture, "
                "--etcd-discovery-fake or intercept()); with it off the discovery hosts "
                "would pass through to the real service"
            )
        add_to(mock, self.hosts)

    @property
    def intercepting(self) -> bool:
        """True while ``requests`` calls to the discovery hosts are intercepted (by the
        flag, the ini value, the marker or :meth:`intercept`)."""
        return self._interceptor is not None and self._interceptor.active

    def __repr__(self) -> str:
        return f"<EtcdDiscovery {self.mode} {self.url} profile={self.profile}>"
