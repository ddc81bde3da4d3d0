"""What an :class:`~pytest_etcd_discovery._etcd_discovery.EtcdDiscovery` talks to: one interface,
:class:`Backend`, and its two kinds.

- :class:`FakeBackend`: the in-process fake.  The helpers' requests are answered by its
  app directly (transport ``"fixture"``, never faulted, left out of the test's journal),
  on the store the handle is bound to; it has the insides a test may reach (clock,
  journal, faults, app, server, snapshots).
- :class:`RealBackend`: a real service given with ``--etcd-discovery-url``, reached over
  HTTP; URLs naming a discovery host are moved onto it, and what needs the fake's
  insides skips the test.

The handle never asks which kind it has: :meth:`Backend.fake` hands back the fake or
skips, and the rest is one method with two bodies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from ._constants import TRANSPORT_FIXTURE, normalize_host

if TYPE_CHECKING:
    from ._service.app import DiscoveryApp
    from ._service.faults import FaultPlan
    from ._service.journal import Call
    from ._transport.forward import ForwardApp
    from ._transport.server import DiscoveryServer
    from ._v2store.clock import ControllableClock
    from ._v2store.store import Store

__all__ = ["MODE_FAKE", "MODE_REAL", "Backend", "FakeBackend", "RealBackend", "backend_for"]

MODE_FAKE = "fake"
MODE_REAL = "real"

#: Requests to a real service are bounded like etcd's own 5 s non-watch limit, with slack.
REAL_TIMEOUT = 10.0

#: ``(status, headers, body)`` of one answered request.
Answer = tuple[int, dict[str, str], str]


class Backend(ABC):
    """The discovery service behind one handle.

    :param url: the service's base URL (the live fake, or the configured service).
    :param hosts: the discovery hosts interception captures.
    """

    #: ``"fake"`` or ``"real"``.
    mode: str
    #: Why there is no TLS front, told when a test asks for one (see :meth:`front`).
    no_front_reason: str = ""

    def __init__(self, url: str, hosts: Sequence[str]) -> None:
        self.url = url.rstrip("/")
        self.hosts = tuple(hosts)

    @abstractmethod
    def request(self, method: str, url: str, form: dict[str, str] | None = None) -> Answer:
        """Send one request (``form`` as an urlencoded body) to the service; body as text."""

    @abstractmethod
    def place(self, url: str) -> str:
        """``url`` as this backend reaches it (a real service takes the discovery hosts'
        URLs on itself)."""

    @abstractmethod
    def fake(self, feature: str) -> FakeBackend:
        """The fake, for a ``feature`` that needs its insides (a real service skips)."""

    @abstractmethod
    def interception_target(self) -> DiscoveryApp | ForwardApp:
        """What intercepted ``requests`` calls are answered by."""

    @abstractmethod
    def end_interception(self) -> None:
        """Interception just stopped: end what it left running (forwarded long polls)."""

    @abstractmethod
    def keep_journal(self) -> None:
        """Pin the journal the handle reads to the one of now (the test is ending)."""


class FakeBackend(Backend):
    """The in-process fake.

    :param app: the fake's app.
    :param server: the live server serving it, if any.
    :param clock: the clock of the store the helpers act on.
    :param journal: where the journal comes from instead of the app's (the shared
        handle's: every request made while no test ran).
    :param store: the store the helpers act on instead of the one served now (the
        shared handle's: the shared state, also while a test works on its copy).
    """

    mode = MODE_FAKE

    def __init__(
        self,
        url: str,
        hosts: Sequence[str],
        *,
        app: DiscoveryApp,
        server: DiscoveryServer | None = None,
        clock: ControllableClock | None = None,
        journal: Callable[[], list[Call]] | None = None,
        store: Callable[[], Store] | None = None,
    ) -> None:
        super().__init__(url, hosts)
        self.app = app
        self._server = server
        self._clock = clock
        self._journal_source = journal
        self._store_source = store
        #: The journal pinned by :meth:`keep_journal` when the test ended.
        self._journal: list[Call] | None = None

    def request(self, method: str, url: str, form: dict[str, str] | None = None) -> Answer:
        with self.on_store():
            status, headers, body = self.app.answer_url(
                method, url, form=form, transport=TRANSPORT_FIXTURE
            )
        return status, dict(headers), body.decode("utf-8", "replace")

    def place(self, url: str) -> str:
        return url  # the fake answers every host in-process

    def fake(self, feature: str) -> FakeBackend:
        return self

    def interception_target(self) -> DiscoveryApp:
        return self.app

    def end_interception(self) -> None:
        pass  # the test's end releases the fake's long polls (the stack does)

    def keep_journal(self) -> None:
        if self._journal_source is None:
            self._journal = self.app.calls

    # -- the insides -----------------------------------------------------------------------

    def on_store(self) -> AbstractContextManager[None]:
        """Work on the handle's store for the ``with`` block."""
        return self.app.on_store(self._store_source() if self._store_source is not None else None)

    @property
    def server(self) -> DiscoveryServer:
        if self._server is None:
            raise RuntimeError("this EtcdDiscovery was made without a live server")
        return self._server

    @property
    def clock(self) -> ControllableClock:
        if self._clock is None:
            raise RuntimeError("this EtcdDiscovery was made without a clock")
        return self._clock

    def journal(self) -> list[Call]:
        """Every request of this handle's test (or phase), the helpers' own included."""
        if self._journal is not None:
            return self._journal
        if self._journal_source is not None:
            return self._journal_source()
        return self.app.calls

    @property
    def faults(self) -> FaultPlan:
        from ._service.faults import FaultPlan

        return FaultPlan.of(self.app)

    def tokens(self) -> list[str]:
        with self.on_store():
            return self.app.token_names()

    def snapshot(self) -> dict[str, Any]:
        with self.on_store():
            return {"store": self.app.store.snapshot()}

    def restore(self, data: dict[str, Any]) -> None:
        with self.on_store():
            self.app.store.restore(data)


class RealBackend(Backend):
    """A real discovery service at ``url``, over the network.

    :param forward: what interception calls (it forwards to ``url``); the plugin shares
        one with the front's backend, else one is made on first use.
    """

    mode = MODE_REAL

    def __init__(
        self, url: str, hosts: Sequence[str], *, forward: ForwardApp | None = None
    ) -> None:
        super().__init__(url, hosts)
        self._forward = forward
        self.no_front_reason = f" (no discovery host to forward to {self.url})"

    def request(self, method: str, url: str, form: dict[str, str] | None = None) -> Answer:
        import requests

        # Over the network (the service's host is not one interception captures).
        with requests.Session() as session:
            reply = session.request(method, self.place(url), data=form, timeout=REAL_TIMEOUT)
        return reply.status_code, dict(reply.headers), reply.text

    def place(self, url: str) -> str:
        """``url`` moved to the configured service if it names a discovery host; any
        other host is refused (the helpers talk to the configured one only)."""
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

    def fake(self, feature: str) -> FakeBackend:
        __tracebackhide__ = True
        pytest.skip(
            f"etcd discovery: {feature} needs the fake's insides; this run uses the real "
            f"service at {self.url} (--etcd-discovery-url)"
        )

    @property
    def forward(self) -> ForwardApp:
        if self._forward is None:
            from ._transport.forward import ForwardApp

            self._forward = ForwardApp(self.url)
        return self._forward

    def interception_target(self) -> ForwardApp:
        return self.forward

    def end_interception(self) -> None:
        if self._forward is not None:
            # Long polls still forwarded end with the test (in-process or through the
            # front); the forwarder itself serves the next one.
            self._forward.close()

    def keep_journal(self) -> None:
        pass  # a real service keeps no journal here


def backend_for(
    url: str,
    hosts: Sequence[str],
    app: DiscoveryApp | None = None,
    server: DiscoveryServer | None = None,
    clock: ControllableClock | None = None,
    forward: ForwardApp | None = None,
    journal: Callable[[], list[Call]] | None = None,
    store: Callable[[], Store] | None = None,
) -> Backend:
    """The fake's backend when there is an ``app``, else a real service's at ``url``."""
    if app is None:
        return RealBackend(url, hosts, forward=forward)
    return FakeBackend(
        url, hosts, app=app, server=server, clock=clock, journal=journal, store=store
    )
