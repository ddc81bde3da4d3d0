"""A simulated etcd 3.4 member: the discovery requests ``v2discovery.joinCluster`` sends.

Read from etcd 3.4's ``etcdserver/api/v2discovery/discovery.go``: checkCluster (size GET,
token GET, full check), createSelf (create, then a watch on its own key from its
createdIndex, answered from history), checkCluster again, then waitNodes: a recursive
watch from the token GET's ``X-Etcd-Index + 1``, each next one from the event's
``modifiedIndex + 1``, every event counting as one more peer until ``size`` are known.

How a member talks HTTP: in the member process (every service on a socket) each member
keeps one HTTP/1.1 connection of :mod:`http.client` and sends the same bytes to every
service (:class:`WireClient`), as an etcd member keeps its Go transport's connection.
Go's client costs next to nothing next to the service; ``requests`` cost about 0.5 ms of
CPU per call, so with 100 member threads under one GIL the bootstrap measured mostly
its own client.  ``inprocess`` members stay on ``requests`` (:class:`RequestsClient`):
``responses`` can only intercept ``requests``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import posixpath
import ssl
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode, urlsplit

from .targets import Target

_GET_QUERY = "quorum=false&recursive=false&sorted=false"


class Reply:
    """What a member reads from an answer: status, the index header, the body."""

    __slots__ = ("body", "etcd_index", "status")

    def __init__(self, status: int, etcd_index: str | None, body: bytes) -> None:
        self.status = status
        self.etcd_index = etcd_index
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client(Protocol):
    def request(
        self, method: str, url: str, form: dict[str, str] | None, timeout: float | None
    ) -> Reply: ...

    def close(self) -> None: ...


class RequestsClient:
    """A ``requests`` session (what ``responses`` intercepts, for ``inprocess``)."""

    def __init__(self, target: Target) -> None:
        self._session = target.session()

    def request(
        self, method: str, url: str, form: dict[str, str] | None, timeout: float | None
    ) -> Reply:
        resp = self._session.request(method, url, data=form, timeout=timeout)
        return Reply(resp.status_code, resp.headers.get("X-Etcd-Index"), resp.content)

    def close(self) -> None:
        self._session.close()


class WireClient:
    """One keep-alive HTTP/1.1 connection (:mod:`http.client`), like a Go transport's.

    Every service gets the same request bytes: a GET is the request line, ``Host``,
    ``User-Agent`` and ``Accept-Encoding: identity``; a PUT adds the urlencoded form
    with its ``Content-Type`` and ``Content-Length``.  ``proxy``/``verify``: reach an
    ``https`` URL through this HTTP proxy's ``CONNECT``, trusting this CA file (the
    drop-in benchmark's TLS front).
    """

    _HEADERS: ClassVar[Mapping[str, str]] = {"User-Agent": "Go-http-client/1.1"}
    _FORM: ClassVar[Mapping[str, str]] = {
        **_HEADERS,
        "Content-Type": "application/x-www-form-urlencoded",
    }

    def __init__(self, base_url: str, proxy: str | None = None, verify: str | None = None) -> None:
        parts = urlsplit(base_url)
        self._netloc = parts.netloc
        host, port = parts.hostname or "", parts.port
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=verify)
            if proxy is not None:
                proxy_parts = urlsplit(proxy)
                conn = http.client.HTTPSConnection(
                    proxy_parts.hostname or "", proxy_parts.port, context=context
                )
                conn.set_tunnel(host, port or 443)
            else:
                conn = http.client.HTTPSConnection(host, port, context=context)
        elif proxy is not None:
            raise ValueError("a proxy is only used for https URLs here")
        else:
            conn = http.client.HTTPConnection(host, port)
        self._conn = conn

    def request(
        self, method: str, url: str, form: dict[str, str] | None, timeout: float | None
    ) -> Reply:
        parts = urlsplit(url)
        if parts.netloc != self._netloc:
            raise ValueError(f"{url} is not on {self._netloc}")
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path or "/"
        body = urlencode(form).encode() if form is not None else None
        headers = self._FORM if form is not None else self._HEADERS
        conn = self._conn
        for attempt in (1, 2):
            reused = conn.sock is not None
            conn.timeout = timeout  # for a new connection ...
            if conn.sock is not None:
                conn.sock.settimeout(timeout)  # ... and for the kept one
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the kept connection while it was idle (as Go's
                # transport does, send the request again once on a new one).
                conn.close()
                if reused and attempt == 1:
                    continue
                raise
            return Reply(resp.status, resp.getheader("X-Etcd-Index"), data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


class BootstrapError(RuntimeError):
    """A simulated member got an answer etcd would have failed on."""


def member_id(peer_url: str, discovery_url: str) -> str:
    """etcd's member id for one peer URL on ``discovery_url``, in lowercase hex."""
    digest = hashlib.sha1((peer_url + discovery_url).encode("utf-8")).digest()
    return format(int.from_bytes(digest[:8], "big"), "x")


def peer_url(number: int) -> str:
    return f"http://10.0.{number // 250}.{number % 250 + 1}:2380"


@dataclass(frozen=True)
class Request:
    """One request a member sends next (``watch``: a long poll, with its own timeout)."""

    method: str
    url: str
    form: dict[str, str] | None = None
    watch: bool = False
    #: Seconds to wait after the previous reply before sending (a polling client's pause).
    delay: float = 0.0


#: A member's join as a generator: it yields each request and is sent the reply.
Steps = Generator[Request, Reply, list[str]]


class SimulatedMember:
    """One member.  :meth:`steps` is its join without any I/O (each request out, each
    reply in), so one logic serves both drivers: :meth:`join` on the member's own
    ``client`` in a thread, and :func:`bench.memberloop.run_members`, one selector loop
    that keeps every member's connection."""

    def __init__(
        self, target: Target, token_url: str, number: int, client: Client | None = None
    ) -> None:
        self.target = target
        self.token_url = token_url
        self.name = f"m{number}"
        self.peer = peer_url(number)
        self.id = member_id(self.peer, token_url)
        self.client = client
        self.requests = 0

    def _get(self, url: str, *, watch: bool = False) -> Generator[Request, Reply, Reply]:
        self.requests += 1
        resp = yield Request("GET", url, None, watch)
        if resp.status != 200:
            raise BootstrapError(f"{self.name}: GET {url} -> {resp.status} {resp.text}")
        return resp

    def _check_cluster(self) -> Generator[Request, Reply, tuple[list[dict[str, Any]], int, int]]:
        size_resp = yield from self._get(f"{self.token_url}/_config/size?{_GET_QUERY}")
        size = int(size_resp.json()["node"]["value"])
        resp = yield from self._get(f"{self.token_url}?{_GET_QUERY}")
        if resp.etcd_index is None:
            raise BootstrapError(f"{self.name}: no X-Etcd-Index on the token GET")
        index = int(resp.etcd_index)
        nodes = [
            n
            for n in resp.json()["node"].get("nodes", [])
            if posixpath.basename(n["key"]) != "_config"
        ]
        nodes.sort(key=lambda n: int(n["createdIndex"]))
        for i, node in enumerate(nodes):
            if posixpath.basename(node["key"]) == self.id:
                break
            if i >= size - 1:
                raise BootstrapError(f"{self.name}: discovery cluster is full")
        return nodes, size, index

    def steps(self) -> Steps:
        """The whole join; returns the member ids this member ended up with."""
        yield from self._check_cluster()
        self.requests += 1
        resp = yield Request(
            "PUT",
            f"{self.token_url}/{self.id}?prevExist=false",
            {"value": f"{self.name}={self.peer}"},
        )
        if resp.status != 201:
            raise BootstrapError(f"{self.name}: PUT -> {resp.status} {resp.text}")
        created = int(resp.json()["node"]["createdIndex"])
        yield from self._get(
            f"{self.token_url}/{self.id}?recursive=false&wait=true&waitIndex={created}",
            watch=True,
        )
        nodes, size, index = yield from self._check_cluster()
        found = [posixpath.basename(n["key"]) for n in nodes[:size]]
        wait_index = index + 1
        while len(found) < size:  # bounded: one event per other member's registration
            resp = yield from self._get(
                f"{self.token_url}?recursive=true&wait=true&waitIndex={wait_index}", watch=True
            )
            node = resp.json()["node"]
            found.append(posixpath.basename(node["key"]))
            wait_index = int(node["modifiedIndex"]) + 1
        return found

    def join(self) -> list[str]:
        """Run the whole join on this member's own client (blocking)."""
        client = self.client
        if client is None:
            raise ValueError(f"{self.name} has no client of its own")
        steps = self.steps()
        try:
            request = next(steps)
            while True:
                timeout = self.target.timeout(request.watch)
                reply = client.request(request.method, request.url, request.form, timeout)
                request = steps.send(reply)
        except StopIteration as done:
            found: list[str] = done.value
            return found
        finally:
            client.close()


class ScriptedMember:
    """A member on the fixed request script of issue 20, not etcd's protocol: PUT its key,
    then GET the token directory every ``interval`` seconds (counted from each reply)
    until it lists ``size`` members.  Its requests do not depend on how fast the service
    answers a PUT, so both services get the same work (the natural protocol's count of
    watches does depend on it, see :class:`SimulatedMember`).

    :param max_polls: bound on the GETs; a member that never sees ``size`` fails the run.
    """

    def __init__(
        self,
        token_url: str,
        number: int,
        size: int,
        interval: float = 0.010,
        max_polls: int = 3000,
    ) -> None:
        self.token_url = token_url
        self.size = size
        self.name = f"m{number}"
        self.peer = peer_url(number)
        self.id = member_id(self.peer, token_url)
        self.interval = interval
        self.max_polls = max_polls
        self.requests = 0
        #: ``time.monotonic()`` when this member's PUT had its whole reply.
        self.put_answered = 0.0

    def steps(self) -> Steps:
        self.requests += 1
        resp = yield Request(
            "PUT", f"{self.token_url}/{self.id}", {"value": f"{self.name}={self.peer}"}
        )
        if resp.status not in (200, 201):
            raise BootstrapError(f"{self.name}: PUT -> {resp.status} {resp.text}")
        self.put_answered = time.monotonic()
        for poll in range(self.max_polls):
            self.requests += 1
            resp = yield Request("GET", self.token_url, delay=self.interval if poll else 0.0)
            if resp.status != 200:
                raise BootstrapError(f"{self.name}: GET -> {resp.status} {resp.text}")
            keys = [
                posixpath.basename(n["key"])
                for n in resp.json()["node"].get("nodes", [])
                if posixpath.basename(n["key"]) != "_config"
            ]
            if len(keys) >= self.size:
                return keys
        raise BootstrapError(
            f"{self.name}: {self.size} members not listed after {self.max_polls} GETs"
        )
