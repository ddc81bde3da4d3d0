"""What the ``etcd_discovery`` helpers hand back: a token's view, its members, and the
errors a refused helper raises.  Pure data, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import Error
from ._etcd_rules import member_name, token_of

__all__ = ["ClusterFullError", "DiscoveryError", "Member", "TokenView"]


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

    A :class:`DiscoveryError`, so ``except DiscoveryError`` around
    :meth:`~pytest_etcd_discovery.EtcdDiscovery.register` sees every registration that
    did not happen. The service refused nothing here: etcd decides "full" from the
    token's listing, so ``method``/``url`` are that ``GET`` of the token, ``status`` is
    its 200 and ``error`` is None.
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

    #: The key as etcd lists it, e.g. ``/_etcd/registry/<token>/8e9e05c52164694d``.
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
    def id(self) -> str:
        """The key's last segment: etcd 3.4's hex member id, or the etcd 0.4 name."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        """The member name (etcd 3.4 value prefix, else the :attr:`id`)."""
        return member_name(self.value, self.id)

    @property
    def peer_urls(self) -> list[str]:
        """The peer URLs in the value, in order."""
        urls = (part.split("=", 1)[1] if "=" in part else part for part in self.value.split(","))
        return [u for u in urls if u]

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> Member:
        """The member of one node of an etcd v2 reply."""
        ttl = node.get("ttl")
        return cls(
            key=str(node["key"]),
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
        return token_of(self.url)

    @property
    def full(self) -> bool:
        """True when at least ``size`` members registered."""
        return self.size is not None and len(self.members) >= self.size

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]
