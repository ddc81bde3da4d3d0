"""One running fake: the service, the control API in front of it, the live server, the
TLS + proxy front, and the shared state each test starts from.

The plugin (one stack per profile and run), :func:`~pytest_etcd_discovery.fake_discovery`
and the ``etcd-discovery-fake`` command all build their fake here, so they cannot drift.

**Shared state, per-test copies.**  What is written while no test runs (a session or
module fixture, ``setUpClass``, conftest or import-time code under the flag) goes into the
stack's *shared* store.  :meth:`FakeStack.begin_test` gives a test its own copy of it on
a clock of its own, so the test sees every token made before it and nothing it writes
outlives it; :meth:`FakeStack.end_test` retires the copy and puts the shared store back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._constants import PROFILE_ETCD_V2, PROFILE_NAMES
from ._urls import discovery_hosts

if TYPE_CHECKING:
    from ._interception import InterceptionParts
    from ._service.app import DiscoveryApp
    from ._service.journal import Call
    from ._transport.proxy import DiscoveryFront
    from ._transport.server import DiscoveryServer
    from ._v2store.clock import ControllableClock
    from ._v2store.store import Store

__all__ = ["FakeStack", "check_options"]


def check_options(
    *,
    profile: str,
    hosts: Iterable[str],
    frozen: bool,
    listen_host: str,
    intercept: bool,
    keys_api: bool,
) -> dict[str, Any]:
    """``fake_discovery()``'s arguments, checked when they are given (not when the fake
    starts), by the same rules as the plugin's ini values."""
    if profile not in PROFILE_NAMES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILE_NAMES)}")
    for name, value in (("frozen", frozen), ("intercept", intercept), ("keys_api", keys_api)):
        if not isinstance(value, bool):
            raise TypeError(f"{name}: expected True or False, got {value!r}")
    extra = tuple(h for h in ([hosts] if isinstance(hosts, str) else hosts))
    discovery_hosts(extra, "fake_discovery(hosts=...)")
    return {
        "profile": profile,
        "hosts": extra,
        "frozen": frozen,
        "listen_host": listen_host,
        "intercept": intercept,
        "keys_api": keys_api,
    }


class FakeStack:
    """The fake's parts for one profile, built and checked in one place.

    :param profile: ``"etcd-v2"`` (default) or ``"discoveryserver"``.
    :param hosts: extra discovery base URLs besides ``https://discovery.etcd.io``.
    :param listen_host: address of the live server and the front.
    :param port: the live server's port (0: a free one).
    :param keys_api: also serve the etcd v2 keys API at ``/v2/keys``.
    :param control: serve the control API under ``/_fake/``.
    :param public_url: the prefix ``/new`` hands out (default: the host asked).
    :param max_calls: bound the journal (a long-running server).
    :param seed: hand out the same tokens in the same order (the command's ``--seed``).
    :param frozen: start with the shared clock frozen.
    :param control_token: when set, every control API request needs
        ``Authorization: Bearer TOKEN`` (the command's ``--control-token``).
    """

    def __init__(
        self,
        *,
        profile: str = PROFILE_ETCD_V2,
        hosts: Iterable[str] = (),
        listen_host: str = "127.0.0.1",
        port: int = 0,
        keys_api: bool = False,
        control: bool = True,
        public_url: str | None = None,
        max_calls: int | None = None,
        seed: int | None = None,
        frozen: bool = False,
        hosts_what: str = "hosts",
        control_token: str | None = None,
    ) -> None:
        from ._service.app import DiscoveryApp
        from ._service.control import ControlApp
        from ._transport.server import DiscoveryServer
        from ._v2store.clock import ControllableClock

        if profile not in PROFILE_NAMES:
            raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILE_NAMES)}")
        self.profile = profile
        self.hosts = discovery_hosts(hosts, hosts_what)
        self.listen_host = listen_host
        #: The clock of the shared store (follows real time until moved).
        self.clock: ControllableClock = ControllableClock(frozen=frozen)
        app = DiscoveryApp(
            profile=profile,
            public_url=public_url,
            max_calls=max_calls,
            keys_api=keys_api,
            clock=self.clock,
        )
        self.keys_api = keys_api
        # The control API answers for the address it listens on and the discovery hosts
        # it serves (through the front) besides loopback names.
        control_app = ControlApp(
            app,
            enabled=control,
            seed=seed,
            token=control_token,
            hosts=(listen_host, *(urlsplit(h).hostname or "" for h in self.hosts)),
        )
        self.server: DiscoveryServer = DiscoveryServer(
            listen_host, port, app=app, wsgi_app=control_app
        )
        #: The control API (the command hands it its v3 endpoint).
        self.control = control_app
        self._front: DiscoveryFront | None = None
        self._lock = threading.Lock()
        self._shared: Store = app.store
        #: Journals of the phases between tests, oldest first (see :meth:`shared_calls`).
        self._shared_journals: list[list[Call]] = []
        self._in_test = False
        self._test_interception: InterceptionParts | None = None

    @property
    def app(self) -> DiscoveryApp:
        return self.server.app

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeStack:
        self.server.start()
        return self

    def front(self) -> DiscoveryFront:
        """The TLS + proxy front, started on first use with the process's test CA."""
        with self._lock:
            if self._front is None:
                from ._transport.proxy import DiscoveryFront

                # The process's test CA for these hosts (scoped to them).
                front = DiscoveryFront(self.server, self.hosts, host=self.listen_host)
                front.start()
                self._front = front
            return self._front

    def test_interception(self) -> InterceptionParts:
        """What each test's interception starts and stops, built once (not per test)."""
        if self._test_interception is None:
            from ._interception import InterceptionParts

            self._test_interception = InterceptionParts(self.app, self.hosts, self.front)
        return self._test_interception

    # -- shared state and per-test copies ------------------------------------------------

    @property
    def shared_store(self) -> Store:
        return self._shared

    def shared_calls(self) -> list[Call]:
        """Every request made while no test ran, oldest first."""
        calls = [call for journal in self._shared_journals for call in journal]
        if not self._in_test:
            calls.extend(self.app.calls)
        return calls

    def begin_test(self, *, frozen: bool = False) -> ControllableClock:
        """Give the next test a copy of the shared state on a clock of its own (starting
        where the shared clock stands); returns that clock."""
        # What is served between tests is the shared state, even if the control API's
        # reset put another store there meanwhile.
        shared = self._shared = self.app.store
        clock = self.clock.fork()
        if frozen:
            clock.freeze()
        store = self.app.new_store(clock)
        if shared.index:  # most runs share nothing: an empty store is all a test needs
            store.restore(shared.snapshot())
        if self.app.calls:  # most phases between tests ask nothing: keep the list short
            self._shared_journals.append(self.app.calls)
        self._in_test = True
        # Faults added between tests were for that phase; the test starts with none.
        self.app.faults.clear()
        # The shared store keeps serving (its expiry, the shared handle) beside the copy.
        self.app.reset(store, retire=False)
        self.app.keys_api = self.keys_api
        return clock

    def end_test(self) -> None:
        """Retire the test's copy and serve the shared state again.

        The test's store is retired first: its blocked watches are released, and a request
        still held by a fault is dropped when it goes on, instead of writing into the
        shared state.  Its faults end with it.
        """
        if not self._in_test:
            return
        self._in_test = False
        self.app.reset(self._shared)
        self.app.faults.clear()
        self.app.keys_api = self.keys_api

    @contextmanager
    def module_scope(self) -> Iterator[None]:
        """Undo, at the end of the block, what was written to the shared state in it."""
        saved = self._shared.snapshot()
        try:
            yield
        finally:
            self._shared.restore(saved)

    def close(self) -> list[BaseException]:
        """Stop the front and the server; returns the errors the fake raised inside."""
        errors = self.app.take_errors()
        with self._lock:
            front, self._front = self._front, None
        if front is not None:
            front.stop()
        self.server.stop()
        self._shared.close()
        return errors
