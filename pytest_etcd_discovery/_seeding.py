"""The helpers that seed and read tokens, speaking the service's HTTP API.

Seeding a token looks exactly like the requests a real member sends (etcd 3.4's
``PUT <token>/<id>?prevExist=false``, etcd 0.4's ``PUT <token>/<name>`` and ``_state``),
so the same :class:`Seeder` works on the fake and on a real service: only its
:class:`~pytest_etcd_discovery._backend.Backend` differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ._constants import V04_TTL
from ._etcd_rules import etcd_member_id, etcd_member_value, peer_url_list, token_of
from ._model import ClusterFullError, DiscoveryError, Member, TokenView

if TYPE_CHECKING:
    from ._backend import Answer, Backend

__all__ = ["Seeder"]


class Seeder:
    """Token helpers on ``backend``; remembers the token URLs :meth:`new_token` made."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        #: Token URLs :meth:`new_token` created, as it returned them.
        self.created_tokens: list[str] = []

    # -- HTTP ------------------------------------------------------------------------------

    def _request(self, method: str, url: str, form: dict[str, str] | None = None) -> Answer:
        return self.backend.request(method, url, form)

    def _checked(
        self, method: str, url: str, form: dict[str, str] | None = None
    ) -> tuple[dict[str, str], Any]:
        """The decoded JSON reply (and its headers); :class:`DiscoveryError` unless 2xx."""
        __tracebackhide__ = True
        status, headers, body = self._request(method, url, form)
        if not 200 <= status < 300:
            raise DiscoveryError(method, url, status, body)
        return headers, json.loads(body) if body.strip() else None

    def _value(self, url: str) -> str | None:
        """The value at ``url``, None when it is missing or unreadable."""
        status, _, body = self._request("GET", url)
        if status != 200:
            return None
        try:
            return str(json.loads(body)["node"]["value"])
        except (ValueError, KeyError, TypeError):
            return None

    # -- tokens ----------------------------------------------------------------------------

    def token_url(self, token: str, base_url: str | None = None) -> str:
        base = (base_url or self.backend.url).rstrip("/")
        return f"{self.backend.place(base)}/{token}"

    def new_token(self, size: int = 3, *, base_url: str | None = None) -> str:
        url = f"{self.backend.url}/new"
        status, _, body = self._request("GET", _query(url, size=str(size)))
        if status != 200:
            raise DiscoveryError("GET", f"{url}?size={size}", status, body)
        token_url = self.token_url(token_of(body.strip()), base_url)
        self.created_tokens.append(token_url)
        return token_url

    def token(self, token_url: str) -> TokenView:
        base = token_url.rstrip("/")
        headers, reply = self._checked("GET", base)
        nodes = (reply or {}).get("node", {}).get("nodes", []) or []
        members = sorted(
            (Member.from_node(n) for n in nodes if not n.get("dir")),
            key=lambda m: m.created_index,
        )
        size_text = self._value(f"{base}/_config/size")
        try:
            size = int(size_text) if size_text is not None else None
        except ValueError:
            size = None
        return TokenView(
            url=base,
            size=size,
            members=tuple(members),
            state=self._value(f"{base}/_state"),
            index=int(headers.get("X-Etcd-Index", "0") or 0),
        )

    def delete(self, token_url: str, key: str | Member) -> None:
        self._checked("DELETE", f"{token_url.rstrip('/')}/{_key_under(token_url, key)}")

    # -- registering -----------------------------------------------------------------------

    def register(
        self,
        token_url: str,
        name: str,
        peer_urls: str | Sequence[str],
        *,
        discovery_url: str | None = None,
        check_full: bool = True,
    ) -> Member:
        urls = peer_url_list(peer_urls)
        if not urls:
            raise ValueError("a member needs at least one peer URL")
        member_id = etcd_member_id(urls, discovery_url or token_url)
        if check_full:
            self._check_not_full(token_url, member_id)
        _, reply = self._checked(
            "PUT",
            _query(f"{token_url.rstrip('/')}/{member_id}", prevExist="false"),
            {"value": etcd_member_value(name, urls)},
        )
        return Member.from_node(reply["node"])

    def _check_not_full(self, token_url: str, member_id: str) -> None:
        # etcd's checkCluster: members sorted by createdIndex; full when `size` of them
        # come before this member's own key (or it is absent and `size` are there).
        base = token_url.rstrip("/")
        _, reply = self._checked("GET", f"{base}/_config/size")
        try:
            size = int(reply["node"]["value"])
        except (KeyError, TypeError, ValueError):
            return  # etcd gives up with "size key is bad"; the PUT shows what happens
        view = self.token(base)
        for position, member in enumerate(view.members):
            if member.id == member_id:
                return
            if size > 0 and position >= size - 1:
                raise ClusterFullError(base, size, view.members[:size])

    def register_v04(
        self, token_url: str, name: str, peer_url: str, *, ttl: int = V04_TTL, start: bool = True
    ) -> Member:
        _, reply = self._checked(
            "PUT", f"{token_url.rstrip('/')}/{name}", {"value": peer_url, "ttl": str(ttl)}
        )
        member = Member.from_node(reply["node"])
        if start:
            self.create_state(token_url)
        return member

    def create_state(self, token_url: str, value: str = "started") -> bool:
        url = f"{token_url.rstrip('/')}/_state"
        status, _, body = self._request("PUT", _query(url, prevExist="false"), {"value": value})
        if status not in (200, 201, 412):
            raise DiscoveryError("PUT", url, status, body)
        return status != 412

    def set_state(self, token_url: str, value: str = "started") -> None:
        self._checked("PUT", f"{token_url.rstrip('/')}/_state", {"value": value})


def _query(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _key_under(token_url: str, key: str | Member) -> str:
    """``key`` relative to the token: a :class:`Member`, a full key as etcd lists it
    (``/_etcd/registry/<token>/<id>``) or a path below the token (``_state``)."""
    text = key.key if isinstance(key, Member) else key
    if not text.startswith("/"):
        return text
    token = token_of(token_url)
    _, found, below = text.partition(f"/{token}/")
    if not found or not below:
        raise ValueError(f"etcd discovery: key {text!r} is not under the token {token_url}")
    return below
