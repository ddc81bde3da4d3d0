"""Group 2: single-request latency, and write -> wake-up of one blocked watcher."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from pytest_etcd_discovery._service.app import DiscoveryApp

from .common import RunError, new_token
from .etcdsim import WireClient
from .members import MemberProcess
from .stats import clock, median
from .targets import FloorTarget, Target, wait_watchers

#: (case, what it is) in table order.
CASES = (
    ("new", "GET /new?size=3"),
    ("get", "GET /<token> (3 members)"),
    ("put", "PUT /<token>/<id>?prevExist=false (201)"),
    ("get-timeout", "GET /<token> with timeout=10"),
    ("wire-new", "GET /new?size=3, http.client"),
    ("wire-get", "GET /<token> (3 members), http.client"),
    ("wire-put", "PUT /<token>/<id>?prevExist=false (201), http.client"),
    ("wake", "PUT -> blocked watcher has its reply"),
)

#: The cases sent on a kept :mod:`http.client` connection (services on a socket only):
#: a ``requests`` call spends 0.45-0.6 ms of CPU in the client by itself, more than
#: either service, so through it the ratio measures mostly the client.
WIRE_CASES = ("wire-new", "wire-get", "wire-put")

_counter = itertools.count()


class LatencyBench:
    """Per-target fixtures (a token with 3 members, a session) and one batch per call."""

    def __init__(self, members: MemberProcess) -> None:
        self.members = members
        self._state: dict[str, tuple[Any, str, str]] = {}
        self._wire: dict[str, WireClient] = {}

    def _setup(self, target: Target) -> tuple[Any, str, str]:
        """(session, token URL with 3 members for GETs, token URL the PUTs fill)."""
        state = self._state.get(target.name)
        if state is None:
            if isinstance(target, FloorTarget):
                token_url = put_url = f"{target.base_url}/{'0' * 32}"
            else:
                token_url = new_token(target, 3)
                # PUTs and wake-ups go to their own token, so the GET's listing stays at
                # three members for the whole run.
                put_url = new_token(target, 3)
                session = target.session()
                for i in range(3):
                    session.put(f"{token_url}/m{i}", data={"value": f"m{i}=http://10.0.0.{i}:2380"})
                session.close()
            state = (target.session(), token_url, put_url)
            self._state[target.name] = state
        return state

    def close(self) -> None:
        for session, _, _ in self._state.values():
            session.close()
        self._state.clear()
        for client in self._wire.values():
            client.close()
        self._wire.clear()

    def batch(
        self, target: Target, case: str, size: int, cpu: list[float] | None = None
    ) -> list[float]:
        """``size`` sequential calls of ``case``; wall seconds each. ``cpu`` collects this
        thread's CPU seconds per call: for in-process targets that is the whole cost, and
        unlike wall time it does not depend on what else the machine is running."""
        session, token_url, put_url = self._setup(target)
        cpu = cpu if cpu is not None else []
        if case == "wake":
            return [self._wake(target, session, put_url) for _ in range(size)]
        timeout: float | None = 10 if case == "get-timeout" else target.timeout()
        send: Callable[[str, str, dict[str, str] | None], int]
        if case in WIRE_CASES:
            client = self._client(target, token_url)

            def send(method: str, url: str, form: dict[str, str] | None) -> int:
                return client.request(method, url, form, timeout).status
        else:

            def send(method: str, url: str, form: dict[str, str] | None) -> int:
                return int(session.request(method, url, data=form, timeout=timeout).status_code)

        kind = case.removeprefix("wire-")
        samples = []
        for _ in range(size):
            form: dict[str, str] | None = None
            if kind == "new":
                method, url = "GET", f"{target.base_url}/new?size=3"
            elif kind in ("get", "get-timeout"):
                method, url = "GET", token_url
            else:
                method, url = "PUT", f"{put_url}/{next(_counter):x}?prevExist=false"
                form = {"value": "m=http://10.0.0.9:2380"}
            cpu_start = time.thread_time()
            start = clock()
            status = send(method, url, form)
            samples.append(clock() - start)
            cpu.append(time.thread_time() - cpu_start)
            if status not in (200, 201):
                raise RunError(f"{target.name}: {method} {url} -> {status}")
        return samples

    def _client(self, target: Target, url: str) -> WireClient:
        client = self._wire.get(target.name)
        if client is None:
            client = self._wire[target.name] = WireClient(url)
        return client

    def _wake(self, target: Target, session: Any, token_url: str) -> float:
        """One blocked recursive watch on the token, woken by one PUT.

        A service on a socket is watched from the member process, as etcd members
        watch it from theirs, and woken by a PUT from a kept :mod:`http.client`
        connection here (the same bytes for every service, a client as cheap as an etcd
        member's: through ``requests`` the PUT spent ~1 ms in the client before its
        bytes left); ``inprocess`` is watched from a thread here and woken through
        ``requests``, which is all ``responses`` intercepts.
        """
        # Any answer carries the store's index; the size key's is small.
        probe = session.get(f"{token_url}/_config/size", timeout=target.timeout())
        index = int(probe.headers["X-Etcd-Index"])
        url = f"{token_url}?recursive=true&wait=true&waitIndex={index + 1}"

        if not target.patches_this_process:
            client = self._client(target, token_url)

            def wake_wire() -> None:
                put_url = f"{token_url}/{next(_counter):x}"
                reply = client.request("PUT", put_url, {"value": "x"}, target.timeout())
                if reply.status not in (200, 201):
                    raise RunError(f"{target.name}: PUT {put_url} -> {reply.status}")

            start, woke = self.members.watch(target, url, 1, wake_wire, timeout=10)
            return woke[0] - start

        def wake() -> None:
            session.put(
                f"{token_url}/{next(_counter):x}", data={"value": "x"}, timeout=target.timeout()
            )

        got: list[float] = []
        watcher_session = target.session()

        def watch() -> None:
            resp = watcher_session.get(url, timeout=target.timeout(watch=True))
            got.append(time.monotonic())
            if resp.status_code != 200:
                raise RunError(f"{target.name}: watch -> {resp.status_code}")

        before = target.watchers()
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        wait_watchers(target, before + 1)
        start = time.monotonic()
        wake()
        thread.join(10)
        watcher_session.close()
        if not got:
            target.release()
            raise RunError(f"{target.name}: watcher not woken within 10 s")
        return got[0] - start


def floor_replies(app: DiscoveryApp) -> dict[str, tuple[int, str]]:
    """The fake's own answers to the measured calls, served statically by the floor."""
    base = "http://127.0.0.1:9"
    status, _, body = app.answer_url("GET", f"{base}/new?size=3")
    token_url = body.decode()
    for i in range(3):
        app.answer_url("PUT", f"{token_url}/m{i}", form={"value": f"m{i}=http://10.0.0.{i}:2380"})
    _, _, get_body = app.answer_url("GET", token_url)
    _, _, put_body = app.answer_url("PUT", f"{token_url}/x?prevExist=false", form={"value": "v"})
    del status
    return {"GET": (200, get_body.decode()), "PUT": (201, put_body.decode())}


def summarize(samples: list[list[float]]) -> float:
    """Median of the batch medians, in ms."""
    return median([median(batch) for batch in samples]) * 1000
