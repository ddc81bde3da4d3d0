"""Serving the discovery hosts to the code under test: interception on and off, and the
drop-in front for what interception cannot patch (child processes, other clients, a
test's own ``responses`` mock).

``requests`` is served in-process by the backend's interception target (the fake's app,
or a forwarder to a real service); every other client in the process resolves the
discovery hosts to the TLS front
(:class:`~pytest_etcd_discovery._transport.client_cover.ClientCover`);
``responses``' default mock passes the hosts through
(:class:`~pytest_etcd_discovery._transport.responses_passthru.DefaultMockPassthru`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import responses

    from ._backend import Backend
    from ._service.discovery import DiscoveryService
    from ._transport.client_cover import ClientCover
    from ._transport.forward import ForwardApp
    from ._transport.intercept import Interceptor
    from ._transport.proxy import DiscoveryFront
    from ._transport.responses_passthru import DefaultMockPassthru

__all__ = ["Interception", "InterceptionParts"]


class InterceptionParts:
    """The interceptor, client cover and default-mock passthru for one target and set of
    hosts, built on first use and kept: the plugin's stack hands one to every test's
    handle, which starts and stops them instead of building its own each test.

    One handle at a time holds them (:meth:`claim`); another that starts meanwhile (a
    handle kept past its test) builds its own, as without parts.
    """

    def __init__(
        self,
        target: DiscoveryService | ForwardApp,
        hosts: Sequence[str],
        front: Callable[[], DiscoveryFront] | None,
    ) -> None:
        self.target = target
        self.hosts = hosts
        self.front = front
        self._interceptor: Interceptor | None = None
        self._cover: ClientCover | None = None
        self._default_passthru: DefaultMockPassthru | None = None
        self._holder: object | None = None

    def claim(self, holder: object) -> bool:
        """True if ``holder`` may use the parts (nobody else holds them)."""
        if self._holder is None:
            self._holder = holder
        return self._holder is holder

    def release(self, holder: object) -> None:
        if self._holder is holder:
            self._holder = None

    def interceptor(self) -> Interceptor:
        if self._interceptor is None:
            from ._transport.intercept import Interceptor

            self._interceptor = Interceptor(self.target, self.hosts)
        return self._interceptor

    def cover(self) -> ClientCover:
        assert self.front is not None
        if self._cover is None:
            from ._transport.client_cover import ClientCover

            self._cover = ClientCover(self.hosts, self.front)
        return self._cover

    def default_passthru(self) -> DefaultMockPassthru:
        if self._default_passthru is None:
            from ._transport.responses_passthru import DefaultMockPassthru

            self._default_passthru = DefaultMockPassthru(self.hosts)
        return self._default_passthru


class Interception:
    """Interception of ``backend``'s discovery hosts, and its TLS front.

    :param front: starts (once) and returns the TLS + proxy front; None when there is
        none (then only ``requests`` is served).
    :param parts: kept parts to start and stop rather than building new ones (the same
        target, hosts and front as ``backend`` and ``front``).
    """

    def __init__(
        self,
        backend: Backend,
        front: Callable[[], DiscoveryFront] | None,
        parts: InterceptionParts | None = None,
    ) -> None:
        self.backend = backend
        self.hosts = backend.hosts
        self._front_factory = front
        self._parts = parts
        self._own_parts: InterceptionParts | None = None  # built when it has no parts
        self._interceptor: Interceptor | None = None
        self._cover: ClientCover | None = None
        self._default_passthru: DefaultMockPassthru | None = None

    @property
    def active(self) -> bool:
        """True while ``requests`` calls to the discovery hosts are intercepted."""
        return self._interceptor is not None and self._interceptor.active

    @property
    def off_hint(self) -> str | None:
        """What an empty journal may mean while interception is off, else None."""
        if self.active:
            return None
        return f"interception is off: requests to {', '.join(self.hosts)} do not reach the fake"

    def start(self) -> None:
        parts = self._parts
        if parts is None or not parts.claim(self):
            # No stack's parts, or another handle holds them: this handle's own.
            if self._own_parts is None:
                self._own_parts = InterceptionParts(
                    self.backend.interception_target(), self.hosts, self._front_factory
                )
            parts = self._own_parts
        if self._interceptor is None:
            self._interceptor = parts.interceptor()
        self._interceptor.start()
        if self._front_factory is not None and self._cover is None:
            self._cover = parts.cover()
            self._default_passthru = parts.default_passthru()
            self._cover.start()
            self._default_passthru.start()

    def stop(self) -> None:
        if self._default_passthru is not None:
            self._default_passthru.stop()
            self._default_passthru = None
        if self._cover is not None:
            self._cover.stop()
            self._cover = None
        if self._interceptor is not None:
            self._interceptor.stop()
            self._interceptor = None
        if self._parts is not None:
            self._parts.release(self)
        self.backend.end_interception()

    @contextmanager
    def block(self) -> Iterator[None]:
        """On for the ``with`` block, unless it is on already (then left on)."""
        if self.active:
            yield  # on for the whole test (flag or marker)
            return
        self.start()
        try:
            yield
        finally:
            self.stop()

    # -- the drop-in front -----------------------------------------------------------------

    @property
    def front(self) -> DiscoveryFront:
        if self._front_factory is None:
            raise RuntimeError(f"this EtcdDiscovery has no TLS front{self.backend.no_front_reason}")
        return self._front_factory()

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        from ._transport.subprocess_env import child_env

        return child_env(self.front, base)

    def add_to(self, mock: responses.RequestsMock) -> None:
        from ._transport.responses_passthru import add_to

        if not self.active:
            # Passing the hosts through with nothing to catch them would turn what the
            # mock refuses into a request to the real service.
            raise RuntimeError(
                "etcd discovery: add_to() needs interception on (the etcd_discovery fixture, "
                "--etcd-discovery-fake or intercept()); with it off the discovery hosts "
                "would pass through to the real service"
            )
        add_to(mock, self.hosts)
