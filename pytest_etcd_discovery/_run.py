"""One pytest run's fake: the guard, the stacks, the run-wide interception, and the two
builders of a test's :class:`~pytest_etcd_discovery._etcd_discovery.EtcdDiscovery` (one per mode).

The run begins before the first conftest is imported and ends after the last fixture
is torn down, so the guard and, under ``--etcd-discovery-fake``, the fake cover every
scope: collection, imports, conftest code and fixtures of any scope.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from ._constants import FAULT_MARKER, MARKER
from ._marker import apply_fault_marks, seed
from ._settings import Settings

if TYPE_CHECKING:
    from ._etcd_discovery import EtcdDiscovery
    from ._stack import FakeStack
    from ._transport.client_cover import Guard
    from ._transport.forward import ForwardApp
    from ._transport.proxy import DiscoveryFront
    from ._transport.server import DiscoveryServer

__all__ = ["PluginRun", "active_run"]

#: Runs in progress in this process, innermost last (pytester nests them).
_RUNS: list[PluginRun] = []


def active_run() -> PluginRun | None:
    """The pytest run in progress whose fake serves every test (the flag), if any."""
    for run in reversed(_RUNS):
        if run.settings.intercept_all and run.settings.mode == "fake":
            return run
    return None


class PluginRun:
    """The plugin's state for one pytest run (each pytest-xdist worker has its own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stacks: dict[str, FakeStack] = {}
        self._shared: dict[str, EtcdDiscovery] = {}
        self._forward: ForwardApp | None = None
        self._forward_server: DiscoveryServer | None = None
        self._forward_front: DiscoveryFront | None = None
        self._guard: Guard | None = None
        #: Under the flag: the handle whose interception covers the whole run.
        self._run_wide: EtcdDiscovery | None = None
        self._lock = threading.RLock()
        self._begun = False

    @property
    def mode(self) -> str:
        return self.settings.mode

    # -- the run's life --------------------------------------------------------------------

    def begin(self) -> None:
        """Fail closed from here on; under the flag, serve every call from the fake."""
        if self._begun:
            return
        self._begun = True
        _RUNS.append(self)
        settings = self.settings
        if settings.guard and settings.hosts:
            from ._transport.client_cover import Guard, push_guard

            self._guard = Guard(settings.hosts)
            push_guard(self._guard)
        if settings.intercept_all:
            handle = self.shared() if settings.mode == "fake" else self.real_handle()
            handle.start_intercept()
            self._run_wide = handle

    def close(self) -> None:
        if not self._begun:
            return
        self._begun = False
        if self._run_wide is not None:
            self._run_wide.stop_intercept()
            self._run_wide = None
        with self._lock:
            stacks, self._stacks = list(self._stacks.values()), {}
            shared, self._shared = list(self._shared.values()), {}
        for handle in shared:
            handle._close_v3()
        with self._lock:
            front, self._forward_front = self._forward_front, None
            server, self._forward_server = self._forward_server, None
        for stack in stacks:
            stack.close()
        if front is not None:
            front.stop()
        if self._forward is not None:
            self._forward.close()  # before the forwarder's stop waits for its threads
        if server is not None:
            server.stop()
        if self._guard is not None:
            from ._transport.client_cover import pop_guard

            pop_guard(self._guard)
            self._guard = None
        if self in _RUNS:
            _RUNS.remove(self)

    # -- the fake ----------------------------------------------------------------------------

    def stack(self, profile: str | None = None) -> FakeStack:
        """The running fake for ``profile`` (the run's by default), started on first use."""
        from ._stack import FakeStack

        profile = profile or self.settings.profile
        with self._lock:
            stack = self._stacks.get(profile)
            if stack is None:
                stack = FakeStack(
                    profile=profile,
                    hosts=self.settings.hosts,
                    listen_host=self.settings.listen_host,
                    keys_api=self.settings.keys_api,
                ).start()
                self._stacks[profile] = stack
            return stack

    def started_url(self) -> str | None:
        stack = self._stacks.get(self.settings.profile)
        return stack.url if stack is not None else None

    def shared(self, profile: str | None = None) -> EtcdDiscovery:
        """A handle on the fake's shared state (what every test starts from)."""
        from ._etcd_discovery import EtcdDiscovery

        profile = profile or self.settings.profile
        with self._lock:
            handle = self._shared.get(profile)
            if handle is None:
                stack = self.stack(profile)
                handle = EtcdDiscovery(
                    stack.url,
                    app=stack.app,
                    server=stack.server,
                    clock=stack.clock,
                    profile=profile,
                    hosts=stack.hosts,
                    front=stack.front,
                    journal=stack.shared_calls,
                    store=lambda: stack.shared_store,
                )
                self._shared[profile] = handle
            return handle

    # -- a real service (--etcd-discovery-url) -------------------------------------------

    def forward(self) -> ForwardApp:
        """What serves the discovery hosts in real mode, made on first use."""
        from ._transport.forward import ForwardApp

        with self._lock:
            if self._forward is None:
                self._forward = ForwardApp(self.settings.real_url or "")
            return self._forward

    def real_front(self) -> DiscoveryFront:
        """The TLS + proxy front whose backend forwards to the configured service."""
        from ._transport.forward import forwarding_server
        from ._transport.proxy import DiscoveryFront

        forward = self.forward()
        with self._lock:
            if self._forward_front is None:
                server = forwarding_server(forward, self.settings.listen_host)
                server.start()
                self._forward_server = server
                front = DiscoveryFront(server, self.settings.hosts, host=self.settings.listen_host)
                front.start()
                self._forward_front = front
            return self._forward_front

    def real_handle(self) -> EtcdDiscovery:
        from ._etcd_discovery import EtcdDiscovery

        return EtcdDiscovery(
            self.settings.real_url or "",
            profile=self.settings.profile,
            hosts=self.settings.hosts,
            # Other clients and child processes reach the service through the front.
            front=self.real_front if self.settings.hosts else None,
            forward=self.forward(),
        )

    # -- one test's handle: one builder per mode ---------------------------------------

    def for_test(
        self, config: Mapping[str, Any], fault_marks: list[pytest.Mark]
    ) -> AbstractContextManager[EtcdDiscovery]:
        """The handle a test gets, for the length of the ``with`` block."""
        builder = self._fake_test if self.mode == "fake" else self._real_test
        return builder(config, fault_marks)

    @contextmanager
    def _real_test(
        self, config: Mapping[str, Any], fault_marks: list[pytest.Mark]
    ) -> Iterator[EtcdDiscovery]:
        self._skip_fake_only(config, fault_marks)
        disco = self.real_handle()
        try:
            seed(disco, config)
            if config.get("intercept", True):
                # Code under test that calls https://discovery.etcd.io reaches the
                # configured service, never the public one.
                disco.start_intercept()
            yield disco
        finally:
            disco.stop_intercept()
            disco._close_v3()  # the v3 endpoint (if the test used one) ends with its test

    @contextmanager
    def _fake_test(
        self, config: Mapping[str, Any], fault_marks: list[pytest.Mark]
    ) -> Iterator[EtcdDiscovery]:
        from ._etcd_discovery import EtcdDiscovery

        settings = self.settings
        profile = str(config.get("profile") or settings.profile)
        stack = self.stack(profile)
        clock = stack.begin_test(frozen=bool(config.get("frozen")))
        stack.app.keys_api = bool(config.get("keys_api", settings.keys_api))
        disco = EtcdDiscovery(
            stack.url,
            app=stack.app,
            server=stack.server,
            clock=clock,
            profile=profile,
            hosts=stack.hosts,
            front=stack.front,
            interception_parts=stack.test_interception(),
        )
        # Tokens the shared phase made show in the failure section under the URL /new
        # handed out for them, like the test's own.
        disco.created_tokens.extend(c.created_url for c in stack.shared_calls() if c.created_url)
        try:
            seed(disco, config)
            apply_fault_marks(fault_marks, stack.app)
            if config.get("intercept", True):
                disco.start_intercept()
            yield disco
        finally:
            disco.stop_intercept()
            disco._close_v3()  # the v3 endpoint (if the test used one) ends with its test
            # The test's journal stays its own: late requests still show there, and the
            # next test's requests do not.
            disco.keep_journal()
            disco.errors = stack.app.take_errors()
            # Wake anything still blocked in a long poll so no request outlives its test.
            stack.end_test()

    def _skip_fake_only(self, config: Mapping[str, Any], fault_marks: list[pytest.Mark]) -> None:
        """Against a real service, skip a test whose marks need the fake's insides."""
        where = f"this run uses the real service {self.settings.real_url} (--etcd-discovery-url)"
        if fault_marks:
            pytest.skip(f"etcd discovery: @{FAULT_MARKER} needs the fake; {where}")
        if config.get("frozen"):
            pytest.skip(f"etcd discovery: @{MARKER}(frozen=True) needs the fake's clock; {where}")
        profile = config.get("profile")
        if profile is not None and profile != self.settings.profile:
            pytest.skip(
                f"etcd discovery: @{MARKER}(profile={profile!r}) but the real service is "
                f"{self.settings.profile!r} (--etcd-discovery-profile); {where}"
            )
