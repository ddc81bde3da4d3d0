"""The fake outside pytest: ``with fake_discovery() as disco:``, or as a decorator.

For unittest, stestr or plain scripts.  Inside the block the fake is on exactly as under
``--etcd-discovery-fake``: ``requests`` is served in-process, other clients in the process
reach ``https://discovery.etcd.io`` through the TLS front, ``disco.env()`` points child
processes at it.  ``disco`` is the same :class:`~pytest_etcd_discovery.handle.EtcdDiscovery`
the ``etcd_discovery`` fixture hands out (``clock``, ``faults``, ``calls``, ``new_token``,
``token``, ``register`` ...), on a fresh store and its own live server.

As a decorator it wraps:

- a function (sync or async): the handle is passed as the keyword argument
  ``etcd_discovery`` when the function has a parameter of that name;
- a ``unittest.TestCase`` class: every test gets its own fake, as
  ``self.etcd_discovery``, from before ``setUp`` until after the test's cleanups.
"""

from __future__ import annotations

import functools
import inspect
import unittest
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .constants import DEFAULT_HOSTS, PROFILE_NAMES, normalize_host

if TYPE_CHECKING:
    from .handle import EtcdDiscovery
    from .transport.proxy import DiscoveryFront
    from .transport.server import DiscoveryServer

__all__ = ["fake_discovery"]

_T = TypeVar("_T")
#: The name under which decorated functions and test cases receive the handle.
ARG_NAME = "etcd_discovery"


class _Running:
    """One entered fake: its server, lazy front and handle."""

    def __init__(self, profile: str, hosts: tuple[str, ...], listen_host: str, frozen: bool):
        from .handle import EtcdDiscovery
        from .service.app import DiscoveryApp
        from .service.control import ControlApp
        from .transport.server import DiscoveryServer
        from .v2store.clock import ControllableClock

        self.hosts = hosts
        self.listen_host = listen_host
        clock = ControllableClock()
        if frozen:
            clock.freeze()
        app = DiscoveryApp(profile=profile, clock=clock)
        # The control API (/_fake/) in front, as on the fixture's server.
        self.server: DiscoveryServer = DiscoveryServer(
            listen_host, 0, app=app, wsgi_app=ControlApp(app)
        )
        self.server.start()
        self._front: DiscoveryFront | None = None
        self.disco = EtcdDiscovery(
            self.server.url,
            app=self.server.app,
            server=self.server,
            clock=clock,
            profile=profile,
            hosts=hosts,
            front=self.front,
        )

    def front(self) -> DiscoveryFront:
        if self._front is None:
            from .transport.proxy import DiscoveryFront
            from .transport.tls import session_ca

            front = DiscoveryFront(self.server, self.hosts, session_ca(), host=self.listen_host)
            front.start()
            self._front = front
        return self._front

    def close(self) -> list[BaseException]:
        self.disco.stop_intercept()
        errors = self.server.app.take_errors()
        if self._front is not None:
            self._front.stop()
        self.server.stop()
        return errors


class fake_discovery:
    """A fake discovery service for a ``with`` block, a function or a TestCase class.

    :param profile: ``"etcd-v2"`` (the original service, default) or ``"discoveryserver"``.
    :param hosts: extra discovery base URLs to serve besides ``https://discovery.etcd.io``
        (like the ``etcd_discovery_hosts`` ini value).
    :param frozen: start with the clock frozen (time moves only by ``clock.advance``).
    :param listen_host: address of the live server and its front (loopback).
    :param intercept: serve the discovery hosts to this process's clients (default);
        False leaves only the live server, its front and :meth:`env` for subprocesses.
    """

    def __init__(
        self,
        *,
        profile: str = "etcd-v2",
        hosts: Sequence[str] = (),
        frozen: bool = False,
        listen_host: str = "127.0.0.1",
        intercept: bool = True,
    ) -> None:
        if profile not in PROFILE_NAMES:
            raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILE_NAMES)}")
        if isinstance(hosts, str):
            hosts = [hosts]
        self._options: dict[str, Any] = {
            "profile": profile,
            "hosts": tuple(hosts),
            "frozen": frozen,
            "listen_host": listen_host,
            "intercept": intercept,
        }
        self._hosts = tuple(dict.fromkeys(normalize_host(h) for h in (*DEFAULT_HOSTS, *hosts)))
        self._running: list[_Running] = []

    # -- context manager --------------------------------------------------------------

    def __enter__(self) -> EtcdDiscovery:
        running = _Running(
            self._options["profile"],
            self._hosts,
            self._options["listen_host"],
            self._options["frozen"],
        )
        try:
            if self._options["intercept"]:
                running.disco.start_intercept()
        except BaseException:
            running.close()
            raise
        self._running.append(running)
        return running.disco

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        errors = self._running.pop().close()
        if errors and exc is None:
            # Like the fixture: an error inside the fake fails the code that met it.
            shown = "\n".join(f"  {type(e).__name__}: {e}" for e in errors)
            raise AssertionError(
                f"the fake discovery service failed internally (a bug in it):\n{shown}"
            )

    # -- decorator --------------------------------------------------------------------

    def __call__(self, target: _T) -> _T:
        if isinstance(target, type) and issubclass(target, unittest.TestCase):
            return self._decorate_case(target)  # type: ignore[return-value]
        if callable(target):
            return self._decorate_function(target)  # type: ignore[return-value]
        raise TypeError(
            f"fake_discovery() decorates functions and TestCase classes, not {target!r}"
        )

    def _fresh(self) -> fake_discovery:
        # Each call or test gets its own fake: decorators may run concurrently or nest.
        return fake_discovery(**self._options)

    def _decorate_function(self, func: Callable[..., Any]) -> Callable[..., Any]:
        wants = ARG_NAME in inspect.signature(func).parameters

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh() as disco:
                    if wants:
                        kwargs[ARG_NAME] = disco
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as disco:
                if wants:
                    kwargs[ARG_NAME] = disco
                return func(*args, **kwargs)

        return wrapper

    def _decorate_case(self, case: type[unittest.TestCase]) -> type[unittest.TestCase]:
        original = case.setUp
        outer = self

        @functools.wraps(original)
        def setUp(test: unittest.TestCase) -> None:
            fake = outer._fresh()
            setattr(test, ARG_NAME, fake.__enter__())
            # Cleanups run after tearDown, last added first: the fake outlives the test's
            # own cleanups registered in setUp.
            test.addCleanup(fake.__exit__, None, None, None)
            original(test)

        case.setUp = setUp  # type: ignore[method-assign,assignment]
        return case
