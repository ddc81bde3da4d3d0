"""Ready-made trouble: the discovery failures real clusters run into, one helper each.

Each helper takes the test's :class:`~pytest_etcd_discovery._etcd_discovery.EtcdDiscovery`
(the ``etcd_discovery`` fixture) and sets the fake up so that the next client sees
what operators reported against discovery.etcd.io (spec section 5):

- :func:`full_cluster`: a token whose ``size`` members all registered already, so a
  new member gets "discovery: cluster is full" (or falls back to a proxy);
- :func:`duplicate_member`: the member id a restarted member (wiped data dir) will
  register is taken: its ``PUT ?prevExist=false`` gets 412, etcd exits with "has
  previously registered with discovery service";
- :func:`stale_state`: ``_state=started`` with no live member (etcd 0.4's "found an
  initialized cluster but no reachable peers");
- :func:`delete_token` / :func:`delete_token_on`: the token vanishes (deleted or
  garbage-collected), now or when a client first touches it mid-bootstrap;
- :func:`missing_size`: the token exists but ``_config/size`` does not (a raw
  ``100: Key not found`` in etcd's log);
- :func:`outage`: the service answers 503 (or drops connections) for a while, then
  recovers, either after ``requests`` faulted requests or when the test says so;
- :func:`backend_down`: the original service with its etcd gone (measured: token
  requests are dropped without a reply, ``/new`` and ``/health`` answer 400).

:func:`full_cluster`, :func:`duplicate_member` and :func:`stale_state` speak the
service's HTTP API, so they also run against a real service (``--etcd-discovery-url``);
the others need the fake's store or faults and skip the test there, like the fixture's
other inside helpers.  Everything they add to the fake is undone after the test.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._service.faults import FaultPlan, FaultRule
from ._service.messages import ServiceRequest
from ._v2store.errors import EtcdError

if TYPE_CHECKING:
    from ._etcd_discovery import EtcdDiscovery, Member

__all__ = [
    "Outage",
    "backend_down",
    "delete_token",
    "delete_token_on",
    "duplicate_member",
    "full_cluster",
    "missing_size",
    "outage",
    "outage_during",
    "stale_state",
]


def _token_of(token_url: str) -> str:
    return urlsplit(token_url).path.rstrip("/").rsplit("/", 1)[-1]


def _member_url(number: int) -> str:
    # Documentation-range addresses: nothing answers there, as for long-dead members.
    return f"http://192.0.2.{number}:2380"


def full_cluster(
    disco: EtcdDiscovery, size: int = 3, *, base_url: str | None = None
) -> tuple[str, list[Member]]:
    """A new token of ``size`` with ``size`` members registered (etcd 3.4 style).

    Returns the token URL (on ``base_url``, default the live server) and the members.
    A further member is refused: etcd logs "discovery: cluster is full".
    """
    token_url = disco.new_token(size, base_url=base_url)
    live_url = disco.token_url(_token_of(token_url))
    members = [
        disco.register(live_url, f"taken{i}", [_member_url(i)], discovery_url=token_url)
        for i in range(1, size + 1)
    ]
    return token_url, members


def duplicate_member(
    disco: EtcdDiscovery,
    token_url: str,
    peer_urls: str | Sequence[str],
    name: str = "previous",
) -> Member:
    """Register, ahead of time, the id a member with ``peer_urls`` will register.

    etcd derives the id from its peer URLs and the discovery URL, so a member restarted
    with a wiped data dir registers the same key again: this helper plays its first life.
    ``token_url`` must be the discovery URL exactly as the member gets it.
    """
    live_url = disco.token_url(_token_of(token_url))
    return disco.register(live_url, name, peer_urls, discovery_url=token_url)


def stale_state(disco: EtcdDiscovery, size: int = 3, *, base_url: str | None = None) -> str:
    """A new token with ``_state=started`` and no member: an etcd 0.4 cluster that once
    started and whose registrations all expired."""
    token_url = disco.new_token(size, base_url=base_url)
    disco.set_state(disco.token_url(_token_of(token_url)))
    return token_url


def _token_key(disco: EtcdDiscovery, token_url: str) -> str:
    return disco.app.token_key(_token_of(token_url))


def delete_token(disco: EtcdDiscovery, token_url: str) -> None:
    """Delete a token and everything under it now (an operator, or the GC of today's
    service). Clients then get ``100 Key not found`` (etcd-v2) or ``unable to GET
    token`` (discoveryserver)."""
    disco.app.store.delete(_token_key(disco, token_url), dir=True, recursive=True)


def delete_token_on(
    disco: EtcdDiscovery,
    token_url: str,
    *,
    method: str | None = None,
    path: str | None = None,
    nth: int = 1,
) -> FaultRule:
    """Delete the token when the ``nth`` matching request for it arrives, mid-bootstrap.

    By default the first request below the token after this call triggers it; ``path``
    (a glob below the token, e.g. ``"/*"`` for a member key or ``""`` for the token
    itself) and ``method`` narrow it. The triggering request is then answered as the
    service would answer it without the token.
    """
    token = _token_of(token_url)
    key = _token_key(disco, token_url)
    store = disco.app.store

    def vanish(request: ServiceRequest) -> None:
        with contextlib.suppress(EtcdError):  # already gone
            store.delete(key, dir=True, recursive=True)

    pattern = re.compile("^/" + re.escape(token) + ("(/.*)?$" if path is None else ""))
    rule = FaultRule(
        action="callback",
        path=pattern if path is None else f"/{token}{path}",
        method=method,
        nth=nth,
        on_match=vanish,
        name=f"token {token[:8]}… deleted",
    )
    return disco.faults.add(rule)


def missing_size(disco: EtcdDiscovery, size: int = 3, *, base_url: str | None = None) -> str:
    """A token that exists but has no ``_config/size`` key."""
    token_url = disco.new_token(size, base_url=base_url)
    store = disco.app.store
    store.delete(f"{_token_key(disco, token_url)}/_config", dir=True, recursive=True)
    return token_url


@dataclass
class Outage:
    """A running outage; :meth:`recover` ends it (it also ends with the test)."""

    plan: FaultPlan
    rule: FaultRule

    @property
    def failed(self) -> int:
        """How many requests the outage answered so far."""
        return self.rule.fired

    @property
    def over(self) -> bool:
        return self.rule.exhausted or self.rule not in self.plan.rules

    def recover(self) -> None:
        """Serve normally again."""
        self.plan.remove(self.rule)


def outage(
    disco: EtcdDiscovery,
    status: int = 503,
    *,
    requests: int | None = None,
    method: str | Sequence[str] | None = None,
    route: str | None = None,
    path: str | None = None,
    drop: bool = False,
) -> Outage:
    """Make the service fail: ``status`` (default 503, Go's ``Service Unavailable``
    text) or, with ``drop``, connections closed without an answer.

    ``requests`` bounds it (the service recovers after that many failed requests);
    otherwise call :meth:`Outage.recover`. ``method``/``route``/``path`` narrow it,
    e.g. ``method="GET"`` (etcd retries those) or ``method="PUT"`` (fatal for etcd).
    """
    plan = disco.faults
    if drop:
        rule = plan.drop(method=method, route=route, path=path, times=requests)
    else:
        rule = plan.fail(status, method=method, route=route, path=path, times=requests)
    return Outage(plan, rule)


def backend_down(disco: EtcdDiscovery) -> list[FaultRule]:
    """The original service with its etcd gone: what ``discovery.etcd.io`` itself does.

    Measured on the real binaries: token requests lose their connection without a reply
    (the proxy's handler panics on the failed upstream call and Go's server closes the
    connection), ``/new`` answers ``400 Unable to generate token`` and ``/health``
    ``400 health failed to setupToken``. Undo with :meth:`FaultPlan.remove` on each
    rule, or let the test end.
    """
    plan = disco.faults
    return [
        plan.drop(route=route, name=f"etcd down: {route}") for route in ("token", "machine", "size")
    ] + [
        plan.fail(400, route="new", name="etcd down: new"),
        plan.fail(400, route="health", name="etcd down: health"),
    ]


@contextmanager
def outage_during(
    disco: EtcdDiscovery,
    status: int = 503,
    *,
    method: str | Sequence[str] | None = None,
    route: str | None = None,
    drop: bool = False,
) -> Iterator[Outage]:
    """``with outage_during(disco): ...``: the service fails inside the block only."""
    current = outage(disco, status, method=method, route=route, drop=drop)
    try:
        yield current
    finally:
        current.recover()
