"""The fake outside pytest's fixtures: ``with fake_discovery() as disco:``, or a decorator.

For unittest, stestr or plain scripts.  Inside the block the fake is on exactly as under
``--etcd-discovery-fake``: ``requests`` is served in-process, other clients in the process
reach ``https://discovery.etcd.io`` through the TLS front, ``disco.env()`` points child
processes at it.  ``disco`` is the same
:class:`~pytest_etcd_discovery._etcd_discovery.EtcdDiscovery` the ``etcd_discovery``
fixture hands out (``clock``, ``faults``, ``calls``, ``new_token``, ``token``,
``register`` ...), on a fresh store and its own live server.

It decorates, bare (``@fake_discovery``) or with arguments (``@fake_discovery(frozen=True)``):

- a function or method (sync or async): the handle is passed as the keyword argument
  ``etcd_discovery`` when the function has a parameter of that name;
- a ``unittest.TestCase`` class: one fake from ``setUpClass`` to ``tearDownClass``
  (``cls.etcd_discovery``); each test gets its own copy of what ``setUpClass`` made, as
  ``self.etcd_discovery``, from before ``setUp`` until after the test's cleanups, so
  nothing a test writes reaches the next one.

Inside a pytest run under ``--etcd-discovery-fake`` the block shares the run's fake
(its state is what the code around it sees) instead of starting another one.
"""

from __future__ import annotations

import functools
import inspect
import unittest
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._constants import PROFILE_ETCD_V2

if TYPE_CHECKING:
    from ._etcd_discovery import EtcdDiscovery
    from ._stack import FakeStack

__all__ = ["FakeDiscovery", "fake_discovery"]

_T = TypeVar("_T")
#: The name under which decorated functions and test cases receive the handle.
ARG_NAME = "etcd_discovery"


def _handle_on(stack: FakeStack, clock: Any = None) -> EtcdDiscovery:
    from ._etcd_discovery import EtcdDiscovery

    return EtcdDiscovery(
        stack.url,
        app=stack.app,
        server=stack.server,
        clock=clock if clock is not None else stack.clock,
        profile=stack.profile,
        hosts=stack.hosts,
        front=stack.front,
    )


class _Block:
    """One entered ``with``: its own stack (or the pytest run's) and its handle."""

    def __init__(self, options: dict[str, Any]) -> None:
        from ._run import active_run
        from ._stack import FakeStack

        run = active_run()
        self._own = run is None
        if run is not None:
            # Under --etcd-discovery-fake the run's fake serves every call already: a
            # second one would answer what the first one's tokens never saw (404s).
            self.disco = run.shared()
            return
        self.stack = FakeStack(
            profile=options["profile"],
            hosts=options["hosts"],
            listen_host=options["listen_host"],
            keys_api=options["keys_api"],
            frozen=options["frozen"],
            hosts_what="fake_discovery(hosts=...)",
        ).start()
        self.disco = _handle_on(self.stack)
        if options["intercept"]:
            try:
                self.disco.start_intercept()
            except BaseException:
                self.stack.close()
                raise

    def close(self) -> list[BaseException]:
        if not self._own:
            return []
        self.disco.stop_intercept()
        return self.stack.close()


class FakeDiscovery:
    """A fake discovery service for a ``with`` block, a function or a TestCase class
    (what :func:`fake_discovery` returns)."""

    def __init__(
        self,
        *,
        profile: str = PROFILE_ETCD_V2,
        hosts: Sequence[str] = (),
        frozen: bool = False,
        listen_host: str = "127.0.0.1",
        intercept: bool = True,
        keys_api: bool = False,
    ) -> None:
        from ._stack import check_options

        self._options: dict[str, Any] = check_options(
            profile=profile,
            hosts=hosts,
            frozen=frozen,
            listen_host=listen_host,
            intercept=intercept,
            keys_api=keys_api,
        )
        self._blocks: list[_Block] = []

    # -- context manager --------------------------------------------------------------

    def __enter__(self) -> EtcdDiscovery:
        block = _Block(self._options)
        self._blocks.append(block)
        return block.disco

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _raise_errors(self._blocks.pop().close(), exc)

    # -- decorator --------------------------------------------------------------------

    def __call__(self, target: _T) -> _T:
        if isinstance(target, type) and issubclass(target, unittest.TestCase):
            return self._decorate_case(target)  # type: ignore[return-value]
        if callable(target):
            return self._decorate_function(target)  # type: ignore[return-value]
        raise TypeError(
            f"fake_discovery() decorates functions and TestCase classes, not {target!r}"
        )

    def _fresh(self) -> FakeDiscovery:
        # Each call or test gets its own fake: decorators may run concurrently or nest.
        return FakeDiscovery(**self._options)

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
        outer = self
        set_up_class = case.setUpClass  # bound to ``case``; its function takes any class
        set_up = case.setUp

        def setUpClass(cls: type[unittest.TestCase]) -> None:
            fake = outer._fresh()
            shared = fake.__enter__()
            # Class cleanups run after tearDownClass, and after a failed setUpClass too.
            cls.addClassCleanup(fake.__exit__, None, None, None)
            setattr(cls, ARG_NAME, shared)
            cls._etcd_discovery_block = fake._blocks[-1]  # type: ignore[attr-defined]
            set_up_class.__func__(cls)  # type: ignore[attr-defined]

        @functools.wraps(set_up)
        def setUp(test: unittest.TestCase) -> None:
            block: _Block = type(test)._etcd_discovery_block  # type: ignore[attr-defined]
            if block._own:
                # Each test works on a copy of what setUpClass made (see _stack).
                clock = block.stack.begin_test(frozen=outer._options["frozen"])
                disco = _handle_on(block.stack, clock)
                if outer._options["intercept"]:
                    disco.start_intercept()

                def end() -> None:
                    disco.stop_intercept()
                    disco.keep_journal()
                    errors = block.stack.app.take_errors()
                    block.stack.end_test()
                    _raise_errors(errors, None)

                # Cleanups run after tearDown, last added first: the copy outlives the
                # test's own cleanups registered in setUp.
                test.addCleanup(end)
                setattr(test, ARG_NAME, disco)
            set_up(test)

        case.setUpClass = classmethod(setUpClass)  # type: ignore[assignment]
        case.setUp = setUp  # type: ignore[method-assign,assignment]
        return case


def _raise_errors(errors: list[BaseException], exc: BaseException | None) -> None:
    if errors and exc is None:
        # Like the fixture: an error inside the fake fails the code that met it.
        shown = "\n".join(f"  {type(e).__name__}: {e}" for e in errors)
        raise AssertionError(
            f"the fake discovery service failed internally (a bug in it):\n{shown}"
        )


@overload
def fake_discovery(
    target: None = None,
    /,
    *,
    profile: str = ...,
    hosts: Sequence[str] = ...,
    frozen: bool = ...,
    listen_host: str = ...,
    intercept: bool = ...,
    keys_api: bool = ...,
) -> FakeDiscovery: ...


@overload
def fake_discovery(target: _T, /) -> _T: ...


def fake_discovery(target: Any = None, /, **options: Any) -> Any:
    """A fake discovery service for a ``with`` block, a function or a TestCase class.

    ``@fake_discovery`` works bare; with arguments:

    :param profile: ``"etcd-v2"`` (the original service, default) or ``"discoveryserver"``.
    :param hosts: extra discovery base URLs to serve besides ``https://discovery.etcd.io``
        (like the ``etcd_discovery_hosts`` ini value, and checked the same way).
    :param frozen: start with the clock frozen (time moves only by ``clock.advance``).
    :param listen_host: address of the live server and its front (loopback).
    :param intercept: serve the discovery hosts to this process's clients (default);
        False leaves only the live server, its front and ``env()`` for subprocesses.
    :param keys_api: also serve the etcd v2 keys API at ``/v2/keys``.
    """
    fake = FakeDiscovery(**options)
    return fake if target is None else fake(target)
