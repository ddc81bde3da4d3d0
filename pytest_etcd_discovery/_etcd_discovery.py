"""The object the ``etcd_discovery`` fixture hands to a test: :class:`EtcdDiscovery`, a
façade over one part per role: the backend (:mod:`._backend`: the fake, or a real service),
the token helpers (:mod:`._seeding`), the expectations (:mod:`._expectations`) and
interception with its drop-in front (:mod:`._interception`); values in :mod:`._model`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._backend import MODE_FAKE, backend_for
from ._constants import DEFAULT_HOSTS, TRANSPORT_FIXTURE, V04_TTL
from ._etcd_rules import etcd_member_id, etcd_member_value
from ._interception import Interception
from ._model import ClusterFullError, DiscoveryError, Member, TokenView
from ._seeding import Seeder

if TYPE_CHECKING:
    import responses
    from typing_extensions import Unpack

    from ._etcd_rules import CallCriteria
    from ._expectations import CallList
    from ._interception import InterceptionParts
    from ._service.app import DiscoveryApp
    from ._service.faults import FaultPlan
    from ._service.journal import Call
    from ._transport.forward import ForwardApp
    from ._transport.proxy import DiscoveryFront
    from ._transport.server import DiscoveryServer
    from ._v2store.clock import ControllableClock
    from ._v2store.store import Store
    from ._v3face import V3Discovery

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


class EtcdDiscovery:
    """A discovery service for one test: the fake, or a real one.

    Attributes: ``url`` (base URL of the live service), ``profile`` and ``hosts`` (what
    interception captures), ``errors`` (what the fake raised inside during the test),
    ``seeded_url`` (the marker's token), ``created_tokens`` (what :meth:`new_token`
    returned).  What needs the fake's insides skips the test against a real service.
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
        interception_parts: InterceptionParts | None = None,
    ) -> None:
        # The fake's backend when there is an app, else a real service's at ``url``.
        self._backend = backend_for(url, hosts, app, server, clock, forward, journal, store)
        self.url = self._backend.url
        self.profile = profile
        self.hosts = self._backend.hosts
        self._seeder = Seeder(self._backend)
        self._interception = Interception(self._backend, front, interception_parts)
        #: Errors the fake raised inside while this handle's test ran (set at its end).
        self.errors: list[BaseException] = []
        #: Set by the marker's seeding: the token URL it created, if any.
        self.seeded_url: str | None = None
        #: Token URLs :meth:`new_token` returned in this test (the report lists them).
        self.created_tokens = self._seeder.created_tokens
        self._v3: V3Discovery | None = None

    # -- what kind of service ----------------------------------------------------------

    @property
    def mode(self) -> str:
        """``"fake"``, or ``"real"`` with ``--etcd-discovery-url`` (the helpers' only service)."""
        return self._backend.mode

    @property
    def is_fake(self) -> bool:
        return self._backend.mode == MODE_FAKE

    # -- the fake's insides --------------------------------------------------------------

    @property
    def app(self) -> DiscoveryApp:
        """The fake's WSGI app."""
        return self._backend.fake("the app").app

    @property
    def server(self) -> DiscoveryServer:
        """The live server."""
        return self._backend.fake("the live server").server

    @property
    def clock(self) -> ControllableClock:
        """This test's clock: ``advance(seconds)``, ``freeze()``, ``unfreeze()``, ``now()``;
        real time until moved; advancing past a TTL expires the key and wakes watchers."""
        return self._backend.fake("the clock").clock

    @property
    def calls(self) -> CallList:
        """This test's requests (``Call``), oldest first, without the fixture's own seeding:
        a list with ``.filter(method=, route=, path=, token=, status=, transport=)``."""
        from ._expectations import CallList

        journal = self._backend.fake("the request journal").journal()
        return CallList(c for c in journal if c.transport != TRANSPORT_FIXTURE)

    def keep_journal(self) -> None:
        """Pin :attr:`calls` to this test's journal (the fixture does at teardown)."""
        self._backend.keep_journal()

    @property
    def faults(self) -> FaultPlan:
        """This test's fault plan, e.g. ``.fail(503, route="size", times=1)``, ``.delay(6)``,
        ``.drop(method="PUT")``; see :mod:`~pytest_etcd_discovery._service.faults`."""
        return self._backend.fake("fault injection").faults

    def tokens(self) -> list[str]:
        """Every token the fake knows, in creation order."""
        return self._backend.fake("listing tokens").tokens()

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data; see :meth:`restore`."""
        return self._backend.fake("snapshot()").snapshot()

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back a state taken with :meth:`snapshot`."""
        self._backend.fake("restore()").restore(dict(data["store"]))

    # -- etcd 3.6 and later: v3 discovery ----------------------------------------------------

    @property
    def v3(self) -> V3Discovery:
        """The fake's etcd v3 API, started on first use on this handle's clock, with etcd
        3.6's discovery helpers: ``new_token(size)`` (endpoints and token), ``register``,
        ``token``, ``env()``.  Needs the ``etcd-v3`` extra (gRPC); the fake only."""
        if self._v3 is None:
            from ._v3face import V3Discovery

            fake = self._backend.fake("the etcd v3 endpoint")
            self._v3 = V3Discovery(fake.clock)
        return self._v3

    def _close_v3(self) -> None:
        """Stop the v3 endpoint if one was started (the fixture does at teardown)."""
        face, self._v3 = self._v3, None
        if face is not None:
            face.close()

    # -- expectations --------------------------------------------------------------------

    def assert_requested(
        self, times: int | None = None, **criteria: Unpack[CallCriteria]
    ) -> CallList:
        """Fail unless the code under test made ``times`` requests (at least one: None)
        matching :attr:`calls`' filters, showing the closest misses; returns the matches."""
        __tracebackhide__ = True
        from ._expectations import check_requested

        return check_requested(lambda: self.calls, times, criteria, self._interception.off_hint)

    def assert_not_requested(self, **criteria: Unpack[CallCriteria]) -> None:
        """Fail if the code under test made a request matching the filters (none: any)."""
        __tracebackhide__ = True
        from ._expectations import check_not_requested

        check_not_requested(lambda: self.calls, criteria)

    def assert_registered(
        self, token_url: str, names: Sequence[str], state: str | None = None
    ) -> TokenView:
        """Fail unless ``token_url`` holds exactly the members ``names`` (etcd's member
        names), in registration order, and ``_state`` equal to ``state`` if given;
        returns the token's view.  Works against a real service too."""
        __tracebackhide__ = True
        from ._expectations import check_registered

        return check_registered(self.token, token_url, names, state)

    # -- seeding and reading tokens --------------------------------------------------------

    def token_url(self, token: str, base_url: str | None = None) -> str:
        """The URL of ``token`` on ``base_url`` (default: the live service); against a real
        service a discovery host's ``base_url`` gives the configured URL."""
        return self._seeder.token_url(token, base_url)

    def new_token(self, size: int = 3, *, base_url: str | None = None) -> str:
        """Create a token as ``GET /new?size=N`` does; its URL on the live service, or on
        ``base_url`` (``"https://discovery.etcd.io"``: what intercepted code would see)."""
        return self._seeder.new_token(size, base_url=base_url)

    def register(
        self,
        token_url: str,
        name: str,
        peer_urls: str | Sequence[str],
        *,
        discovery_url: str | None = None,
        check_full: bool = True,
    ) -> Member:
        """Register a member as etcd 3.4 does: :class:`ClusterFullError` when ``size``
        others are there (``check_full=False`` skips the check), else ``PUT <token>/<id>
        ?prevExist=false`` with etcd's id (:func:`etcd_member_id` of the peer URLs and
        ``discovery_url``, default ``token_url``); twice: :class:`DiscoveryError` 105."""
        return self._seeder.register(
            token_url, name, peer_urls, discovery_url=discovery_url, check_full=check_full
        )

    def register_v04(
        self, token_url: str, name: str, peer_url: str, *, ttl: int = V04_TTL, start: bool = True
    ) -> Member:
        """Register a member as etcd 0.4 did: ``PUT <token>/<name>`` with ``value=<peer
        url>`` and a 7-day ``ttl``, then (``start``) :meth:`create_state`, whose answer
        (was this member the first?) you get by passing ``start=False`` and calling it."""
        return self._seeder.register_v04(token_url, name, peer_url, ttl=ttl, start=start)

    def create_state(self, token_url: str, value: str = "started") -> bool:
        """``PUT <token>/_state?prevExist=false`` as an etcd 0.4 member does after it
        registered: True when this call created ``_state`` (the member that starts the
        cluster), False when it was there already."""
        return self._seeder.create_state(token_url, value)

    def set_state(self, token_url: str, value: str = "started") -> None:
        """Write ``_state`` whatever it holds (as an etcd 0.4 cluster that started)."""
        self._seeder.set_state(token_url, value)

    def token(self, token_url: str) -> TokenView:
        """Read a token: size, members in createdIndex order, ``_state``, TTLs left.
        Raises :class:`DiscoveryError` when the token does not exist."""
        return self._seeder.token(token_url)

    def delete(self, token_url: str, key: str | Member) -> None:
        """Delete one key under a token as an operator would: a :class:`Member`, its
        :attr:`~Member.key` or :attr:`~Member.id`, or ``"_state"``."""
        self._seeder.delete(token_url, key)

    # -- interception and the drop-in front ------------------------------------------------

    @property
    def intercepting(self) -> bool:
        """True while ``requests`` calls to the discovery hosts are intercepted (by the
        flag, the ini value, the marker or :meth:`intercept`)."""
        return self._interception.active

    @contextmanager
    def intercept(self) -> Iterator[EtcdDiscovery]:
        """Interception for the ``with`` block (see :meth:`start_intercept`)."""
        with self._interception.block():
            yield self

    def start_intercept(self) -> None:
        """Serve the discovery hosts from this service until :meth:`stop_intercept`:
        ``requests`` in-process, other clients through the TLS front (a real service:
        forwarded); what cannot be served fails at once (``DiscoveryHostGuardError``)."""
        self._interception.start()

    def stop_intercept(self) -> None:
        """Turn interception off (the fixture does at teardown)."""
        self._interception.stop()

    @property
    def front(self) -> DiscoveryFront:
        """The TLS + proxy front (of the live server, or of a forwarder to a real one)."""
        return self._interception.front

    @property
    def ca_file(self) -> str:
        """A CA bundle: the system roots plus the test CA that issued the front's cert."""
        return str(self.front.ca.bundle_file)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) plus what a child process needs to reach this
        service at ``https://discovery.etcd.io``: proxy variables, ``NO_PROXY``, the CA
        bundle in ``SSL_CERT_FILE`` and friends, a Node preload in ``NODE_OPTIONS``."""
        return self._interception.env(base)

    def add_to(self, mock: responses.RequestsMock) -> None:
        """Let your own ``responses.RequestsMock`` pass the discovery hosts through to this
        service (``@responses.activate`` gets it by itself); needs interception on."""
        self._interception.add_to(mock)

    def __repr__(self) -> str:
        return f"<EtcdDiscovery {self.mode} {self.url} profile={self.profile}>"
