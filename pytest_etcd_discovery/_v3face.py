"""The fixture's v3 face: ``etcd_discovery.v3``, etcd 3.6's v3 discovery on the fake.

etcd 3.6 members started with ``--discovery-endpoints`` and ``--discovery-token`` find
each other through any etcd v3 API: the size at ``/_etcd/registry/<token>/_config/size``
and each member at ``.../members/<member id in hex>`` = ``name=peerURL[,...]``; members
sort by their key's create revision and the first ``size`` win.

:class:`V3Discovery` starts the fake's v3 endpoint (:mod:`._v3`, behind the ``etcd-v3`` extra)
on first use, on the handle's clock; its helpers act on the endpoint's store directly
(like the v2 helpers, they stay out of the journal and the faults).  Nothing here imports
gRPC until a test asks for ``.v3``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import Error
from ._etcd_rules import etcd_member_id, etcd_member_value, member_name, peer_url_list

if TYPE_CHECKING:
    from ._v2store.clock import ControllableClock

__all__ = [
    "EXTRA_HINT",
    "REGISTRY",
    "V3ClusterFullError",
    "V3Discovery",
    "V3DiscoveryError",
    "V3FaultRule",
    "V3Faults",
    "V3Member",
    "V3Token",
    "V3TokenView",
    "call_data",
    "load_v3",
]

#: etcd's v3 discovery prefix.
REGISTRY = "/_etcd/registry"
EXTRA_HINT = "pip install 'pytest-etcd-discovery[etcd-v3]'"
# Go's strconv.ParseInt(s, 10, 0): an optional sign and ASCII digits.
_GO_INT = re.compile(r"[+-]?[0-9]+")


class V3DiscoveryError(Error):
    """etcd's v3 discovery refused: ``discovery: size key not found``, ``... is bad``,
    or (:class:`V3ClusterFullError`) ``discovery: cluster is full``."""


class V3ClusterFullError(V3DiscoveryError):
    """``discovery: cluster is full``: ``size`` other members come first."""

    def __init__(self, token: str, size: int, members: Sequence[V3Member]) -> None:
        self.token = token
        self.size = size
        self.members = tuple(members)
        names = ", ".join(m.name for m in self.members[:size])
        super().__init__(f"discovery: cluster is full ({size} of {size}: {names}) at {token}")


def load_v3() -> Any:
    """The fake's v3 server module, or a clear error naming the extra to install."""
    try:
        # By name: neither ships type information, and only their presence matters here.
        importlib.import_module("grpc")
        importlib.import_module("google.protobuf")
    except ImportError as exc:
        raise ImportError(
            f"etcd discovery: the etcd v3 endpoint needs gRPC and protobuf ({exc}); "
            f"install them with: {EXTRA_HINT}"
        ) from exc
    from ._v3 import server

    return server


class V3Token(NamedTuple):
    """What :meth:`V3Discovery.new_token` hands out: etcd's two flags' values."""

    #: ``--discovery-endpoints``: ``http://127.0.0.1:PORT``.
    endpoints: str
    #: ``--discovery-token``.
    token: str


@dataclass(frozen=True)
class V3Member:
    """One key under ``.../members/``, as etcd's discovery reads it."""

    key: str
    value: str
    create_revision: int
    mod_revision: int

    @property
    def id(self) -> str:
        """The member id in hex (the key's last segment)."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        return member_name(self.value, self.id)

    @property
    def peer_urls(self) -> list[str]:
        return [part.split("=", 1)[1] for part in self.value.split(",") if "=" in part]


@dataclass(frozen=True)
class V3TokenView:
    """A token as etcd 3.6's discovery sees it."""

    token: str
    #: The size key's value as an int, None when missing or not a positive integer
    #: (see :attr:`size_raw`).
    size: int | None
    size_raw: str | None
    #: Every well-formed member, by create revision.
    members: tuple[V3Member, ...]
    #: The store's revision when read.
    revision: int

    @property
    def cluster(self) -> tuple[V3Member, ...]:
        """The members that make the cluster: the first ``size``."""
        return self.members[: self.size] if self.size is not None else ()

    @property
    def full(self) -> bool:
        return self.size is not None and len(self.members) >= self.size

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def initial_cluster(self) -> str:
        """The ``--initial-cluster`` string etcd computes (from :attr:`cluster`)."""
        return ",".join(m.value for m in self.cluster)


class _StoreClient:
    """The helpers' reads and writes, on the v3 server's store directly (as the v2
    helpers answer in-process): no request of theirs reaches the journal or a fault."""

    def __init__(self, store: Any, messages: Any) -> None:
        self._store = store
        self._messages = messages

    def _message(self, name: str, **fields: Any) -> Any:
        return self._messages.message_class(name)(**fields)

    def range(self, key: str, *, prefix: bool = False) -> Any:
        fields: dict[str, Any] = {"key": key.encode()}
        if prefix:
            fields["range_end"] = _prefix_end(key.encode())
        return self._store.range(self._message("RangeRequest", **fields))

    def put(self, key: str, value: str) -> Any:
        return self._store.put(self._message("PutRequest", key=key.encode(), value=value.encode()))

    def delete(self, key: str) -> Any:
        return self._store.delete_range(self._message("DeleteRangeRequest", key=key.encode()))

    def delete_prefix(self, prefix: str) -> Any:
        key = prefix.encode()
        return self._store.delete_range(
            self._message("DeleteRangeRequest", key=key, range_end=_prefix_end(key))
        )


def _prefix_end(key: bytes) -> bytes:
    """etcd's ``WithPrefix`` range end: the key with its last byte below 0xff plus one."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


@dataclass
class V3FaultRule:
    """One fault of the v3 endpoint: which calls it hits and what it does."""

    action: str  # "fail", "delay" or "drop"
    code: str | None = None
    message: str = ""
    delay: float = 0.0
    service: str | None = None
    method: str | None = None
    key_prefix: bytes | None = None
    times: int | None = None
    #: Calls it hit so far.
    fired: int = 0
    #: Its number in the plan (1, 2, ...): the control API names a rule by it.
    id: int = 0

    def matches(self, call: Any) -> bool:
        if self.service is not None and call.service != self.service:
            return False
        if self.method is not None and call.method != self.method:
            return False
        if self.key_prefix is not None:
            key = _request_key(call.request)
            if key is None or not key.startswith(self.key_prefix):
                return False
        return self.times is None or self.fired < self.times

    def describe(self) -> str:
        what = {"fail": f"fail {self.code}", "delay": f"delay {self.delay} s", "drop": "drop"}
        where = [
            f"{name}={value!r}"
            for name, value in (
                ("service", self.service),
                ("method", self.method),
                ("key_prefix", self.key_prefix),
                ("times", self.times),
            )
            if value is not None
        ]
        return f"v3 {what[self.action]} ({', '.join(where) or 'every call'})"

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON-able data (``GET /_fake/v3/faults``)."""
        prefix = self.key_prefix
        return {
            "id": self.id,
            "action": self.action,
            "code": self.code,
            "message": self.message,
            "seconds": self.delay,
            "service": self.service,
            "method": self.method,
            "key_prefix": None if prefix is None else prefix.decode("utf-8", "replace"),
            "times": self.times,
            "fired": self.fired,
            "description": self.describe(),
        }


def call_data(number: int, call: Any) -> dict[str, Any]:
    """One journal call as JSON-able data (``GET /_fake/v3/calls``)."""
    key = _request_key(call.request)
    code, message = call.error if call.error is not None else ("OK", "")
    return {
        "number": number,
        "service": call.service,
        "method": call.method,
        "key": None if key is None else key.decode("utf-8", "replace"),
        "stream": call.stream,
        "code": code,
        "message": message,
        "fault": call.fault,
        "peer": call.peer,
        "started": call.started,
        "finished": call.finished,
    }


def _request_key(request: Any) -> bytes | None:
    """The key a request names (a Watch's create request's), if any."""
    if request is None:
        return None
    for holder in (request, getattr(request, "create_request", None)):
        key = getattr(holder, "key", None)
        if isinstance(key, bytes) and key:
            return key
    return None


class V3Faults:
    """The v3 endpoint's fault plan for one test: gRPC statuses, delays, dropped streams.

    Each method adds a rule that hits calls matching ``service`` (``"KV"``, ``"Watch"``,
    ``"Lease"``, ``"Maintenance"``), ``method`` (``"Range"``, ``"Put"``, ``"Watch"``,
    ...) and ``key_prefix``; ``times`` bounds how many (None: every one).  The first
    matching rule wins.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fired = threading.Condition(self._lock)  # notified when a rule fires
        self.rules: list[V3FaultRule] = []
        self._last_id = 0

    def _add(
        self,
        action: str,
        service: str | None,
        method: str | None,
        key_prefix: str | bytes | None,
        times: int | None,
        **what: Any,
    ) -> V3FaultRule:
        rule = V3FaultRule(
            action,
            service=service,
            method=method,
            key_prefix=_bytes(key_prefix),
            times=times,
            **what,
        )
        with self._lock:
            self._last_id += 1  # never reused: a deleted rule's id names no other
            rule.id = self._last_id
            self.rules.append(rule)
        return rule

    def get(self, rule_id: int) -> V3FaultRule | None:
        """The rule with id ``rule_id``, if it is still in the plan."""
        with self._lock:
            return next((rule for rule in self.rules if rule.id == rule_id), None)

    def remove(self, rule: V3FaultRule) -> None:
        with self._lock:
            self.rules.remove(rule)

    def fail(
        self,
        code: str = "UNAVAILABLE",
        message: str = "etcdserver: the fake's fault rule",
        *,
        service: str | None = None,
        method: str | None = None,
        key_prefix: str | bytes | None = None,
        times: int | None = None,
    ) -> V3FaultRule:
        """Answer with gRPC status ``code`` (a ``grpc.StatusCode`` name) and ``message``."""
        return self._add("fail", service, method, key_prefix, times, code=code, message=message)

    def delay(
        self,
        seconds: float,
        *,
        service: str | None = None,
        method: str | None = None,
        key_prefix: str | bytes | None = None,
        times: int | None = None,
    ) -> V3FaultRule:
        """Hold matching calls ``seconds`` (real time) before serving them; a client's
        deadline shorter than that meets ``DEADLINE_EXCEEDED``."""
        return self._add("delay", service, method, key_prefix, times, delay=seconds)

    def drop(
        self,
        *,
        service: str | None = "Watch",
        method: str | None = None,
        key_prefix: str | bytes | None = None,
        times: int | None = 1,
    ) -> V3FaultRule:
        """End a stream (a watch, by default) as a broken connection does (UNAVAILABLE)."""
        return self._add("drop", service, method, key_prefix, times)

    def decide(self, call: Any) -> Any:
        """The server's ``before`` hook: the first matching rule's decision, or None."""
        from ._v3.hooks import V3Decision

        with self._lock:
            for rule in self.rules:
                if rule.matches(call):
                    rule.fired += 1
                    self._fired.notify_all()
                    break
            else:
                return None
        if rule.action == "delay":
            return V3Decision(delay=rule.delay, description=rule.describe())
        if rule.action == "drop":
            return V3Decision(drop=True, description=rule.describe())
        return V3Decision(code=rule.code, message=rule.message, description=rule.describe())

    def wait_fired(self, rule: V3FaultRule, times: int = 1, timeout: float = 30.0) -> bool:
        """Wait until ``rule`` has hit ``times`` calls (True), or ``timeout`` seconds pass
        (False): a test can act once a client has reached the faulted call (a watch that
        was dropped) instead of guessing how long that takes."""
        with self._fired:
            return self._fired.wait_for(lambda: rule.fired >= times, timeout)

    def unfired(self) -> list[V3FaultRule]:
        with self._lock:
            return [rule for rule in self.rules if rule.fired == 0]

    def assert_all_fired(self) -> None:
        """Fail unless every rule hit at least one call."""
        __tracebackhide__ = True
        unfired = self.unfired()
        if unfired:
            lines = [f"etcd discovery: {len(unfired)} v3 fault rules never fired:"]
            lines += [f"  {rule.describe()}" for rule in unfired]
            raise AssertionError("\n".join(lines))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class _Hooks:
    """The v3 server's hooks: the journal (every call, as the server reports it) and the
    fault plan."""

    def __init__(self, faults: V3Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self.calls: list[Any] = []
        #: The number of ``calls[0]``: a reset empties the journal, numbers go on.
        self.first = 0

    def before(self, call: Any) -> Any:
        return self.faults.decide(call)

    def after(self, call: Any) -> None:
        with self._lock:
            self.calls.append(call)


class V3Discovery:
    """``etcd_discovery.v3``: the fake's etcd v3 endpoint and etcd 3.6 discovery helpers.

    :param clock: the clock of the handle (leases expire on ``clock.advance``).
    :param server_options: passed to the v3 server (journal, faults of the stack).
    """

    def __init__(self, clock: ControllableClock, **server_options: Any) -> None:
        server_module = load_v3()
        from ._v3 import messages

        #: This endpoint's fault plan (see :class:`V3Faults`).
        self.faults = V3Faults()
        self._hooks = _Hooks(self.faults)
        self.server = server_module.V3Server(clock=clock, hooks=self._hooks, **server_options)
        self.server.start()
        self.clock = clock
        self._client = _StoreClient(self.server.store, messages)
        #: Tokens :meth:`new_token` made, oldest first.
        self.created_tokens: list[str] = []

    @property
    def endpoint(self) -> str:
        """``host:port`` of the fake's etcd v3 API."""
        return str(self.server.endpoint)

    @property
    def endpoints(self) -> str:
        """The ``--discovery-endpoints`` value: ``http://host:port``."""
        return f"http://{self.endpoint}"

    def close(self) -> None:
        self.server.stop()
        self.server.store.close()

    # -- the journal ---------------------------------------------------------------------

    @property
    def calls(self) -> list[Any]:
        """Every gRPC call the endpoint served, finished ones, oldest first: ``V3Call``
        with ``service``, ``method``, ``request``, ``response``, ``error`` (code,
        message) and ``fault`` (the rule that hit it).  The helpers' own are not there."""
        with self._hooks._lock:
            return list(self._hooks.calls)

    def numbered_calls(self, since: int = 0) -> tuple[int, list[tuple[int, Any]]]:
        """The journal from call number ``since`` on, each call with its number, and the
        number the next call will get (the control API's ``/_fake/v3/calls`` pages)."""
        with self._hooks._lock:
            first, calls = self._hooks.first, list(self._hooks.calls)
        following = first + len(calls)
        return following, [(first + i, c) for i, c in enumerate(calls) if first + i >= since]

    def reset(self) -> None:
        """Empty the endpoint for a new start: delete every key, revoke every lease, clear
        the journal, the fault plan and :attr:`created_tokens`.  The revision goes on
        counting (a client's open watch sees the deletions, as on a real etcd)."""
        from ._v3.errors import V3Error

        self.faults.clear()
        store = self.server.store
        for lease_id in [lease.ID for lease in store.lease_leases().leases]:
            with contextlib.suppress(V3Error):  # it expired meanwhile: gone all the same
                store.lease_revoke(self._client._message("LeaseRevokeRequest", ID=lease_id))
        store.delete_range(
            self._client._message("DeleteRangeRequest", key=b"\x00", range_end=b"\x00")
        )
        with self._hooks._lock:
            self._hooks.first += len(self._hooks.calls)
            self._hooks.calls.clear()
        self.created_tokens.clear()

    def calls_to(self, method: str, *, key_prefix: str | None = None) -> list[Any]:
        """The calls of ``method`` (``"Range"``, ``"Put"``, ``"Watch"``, ...), optionally
        only those naming a key under ``key_prefix``."""
        prefix = _bytes(key_prefix)
        return [
            call
            for call in self.calls
            if call.method == method
            and (prefix is None or (_request_key(call.request) or b"").startswith(prefix))
        ]

    def assert_requested(
        self, method: str, times: int | None = None, *, key_prefix: str | None = None
    ) -> list[Any]:
        """Fail unless the endpoint served ``times`` calls of ``method`` (at least one:
        None), optionally naming a key under ``key_prefix``; returns them."""
        __tracebackhide__ = True
        matched = self.calls_to(method, key_prefix=key_prefix)
        if (len(matched) >= 1) if times is None else (len(matched) == times):
            return matched
        wanted = "at least 1" if times is None else str(times)
        under = f" under {key_prefix}" if key_prefix is not None else ""
        last = [f"{c.service}/{c.method} {_request_key(c.request)!r}" for c in self.calls[-10:]]
        raise AssertionError(
            f"etcd discovery v3: expected {wanted} {method} call(s){under}, got "
            f"{len(matched)}; the last calls: {', '.join(last) or 'none'}"
        )

    # -- tokens ------------------------------------------------------------------------

    def new_token(self, size: int = 3, *, token: str | None = None) -> V3Token:
        """Make a token as an operator does: put its size key (``size`` members)."""
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size must be a positive int, not {size!r}")
        name = token if token is not None else uuid.uuid4().hex
        self.set_size(name, str(size))
        self.created_tokens.append(name)
        return V3Token(self.endpoints, name)

    def set_size(self, token: str, value: str) -> None:
        """Write the size key as given (a bad size too: etcd answers "size key is bad")."""
        self._client.put(f"{REGISTRY}/{token}/_config/size", value)

    def token(self, token: str) -> V3TokenView:
        """Read ``token`` as etcd's discovery does (size, then the members by revision)."""
        size_reply = self._client.range(f"{REGISTRY}/{token}/_config/size")
        raw = size_reply.kvs[0].value.decode("utf-8", "replace") if size_reply.kvs else None
        size = int(raw) if raw is not None and _GO_INT.fullmatch(raw) else None
        if size is not None and size <= 0:
            size = None
        prefix = f"{REGISTRY}/{token}/members"
        reply = self._client.range(prefix, prefix=True)
        members = [
            V3Member(
                kv.key.decode("utf-8", "replace").strip(),
                kv.value.decode("utf-8", "replace").strip(),
                kv.create_revision,
                kv.mod_revision,
            )
            for kv in reply.kvs
        ]
        # etcd keeps only values with "=" (a member's name=url), by create revision.
        members = sorted((m for m in members if "=" in m.value), key=lambda m: m.create_revision)
        return V3TokenView(token, size, raw, tuple(members), reply.header.revision)

    def tokens(self) -> list[str]:
        """Every token with a key under ``/_etcd/registry/``, by its first key's create
        revision (made by anyone: the helpers, a client, etcdctl)."""
        reply = self._client.range(f"{REGISTRY}/", prefix=True)
        first: dict[str, int] = {}
        for kv in reply.kvs:
            rest = kv.key.decode("utf-8", "replace")[len(REGISTRY) + 1 :]
            token = rest.split("/", 1)[0]
            if token:
                first[token] = min(first.get(token, kv.create_revision), kv.create_revision)
        return sorted(first, key=lambda t: (first[t], t))

    def token_data(self, token: str) -> dict[str, Any]:
        """:meth:`token` as JSON-able data (the control API's ``/_fake/v3/tokens``)."""
        view = self.token(token)
        return {
            "token": token,
            "size": view.size,
            "size_raw": view.size_raw,
            "full": view.full,
            "initial_cluster": view.initial_cluster,
            "members": [
                {
                    "id": m.id,
                    "name": m.name,
                    "value": m.value,
                    "create_revision": m.create_revision,
                }
                for m in view.members
            ],
        }

    def register(
        self,
        token: str,
        name: str,
        peer_urls: str | Sequence[str],
        *,
        member_id: str | None = None,
        check_full: bool = True,
    ) -> V3Member:
        """Register a member as etcd 3.6 does: read the size ("size key not found", "size
        key is bad": :class:`V3DiscoveryError`), refuse when ``size`` others come first
        (:class:`V3ClusterFullError`; ``check_full=False`` skips it), then put
        ``members/<id>`` = ``name=url,...``.  The id defaults to etcd's (the SHA-1 of
        the peer URLs and the token, etcd's cluster token with v3 discovery)."""
        urls = peer_url_list(peer_urls)
        ident = member_id if member_id is not None else etcd_member_id(urls, token)
        key = f"{REGISTRY}/{token}/members/{ident}"
        view = self.token(token)
        if view.size_raw is None:
            raise V3DiscoveryError("discovery: size key not found")
        if view.size is None:
            raise V3DiscoveryError("discovery: size key is bad")
        keys = [m.key for m in view.members]
        ahead = keys.index(key) if key in keys else len(keys)
        if check_full and ahead >= view.size:
            raise V3ClusterFullError(token, view.size, view.members)
        value = etcd_member_value(name, urls)
        self._client.put(key, value)
        for member in self.token(token).members:
            if member.key == key:
                return member
        raise V3DiscoveryError(f"{key} was written but is not listed")  # pragma: no cover

    def delete(self, token: str, member: str | V3Member) -> None:
        """Delete one member's key (a :class:`V3Member`, its key or its id)."""
        if isinstance(member, V3Member):
            key = member.key
        elif member.startswith("/"):
            key = member
        else:
            key = f"{REGISTRY}/{token}/members/{member}"
        self._client.delete(key)

    def env(
        self, token: str | None = None, base: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """``base`` (default ``os.environ``) plus ``ETCD_DISCOVERY_ENDPOINTS`` and
        ``ETCD_DISCOVERY_TOKEN`` (default: the last :meth:`new_token`) for an etcd 3.6
        member started as a child process."""
        if token is None:
            if not self.created_tokens:
                raise ValueError("env() needs a token: pass one, or call new_token() first")
            token = self.created_tokens[-1]
        env = dict(os.environ if base is None else base)
        env["ETCD_DISCOVERY_ENDPOINTS"] = self.endpoints
        env["ETCD_DISCOVERY_TOKEN"] = token
        return env

    def delete_token(self, token: str) -> int:
        """Delete every key of ``token`` (its size and members); how many there were."""
        reply = self._client.delete_prefix(f"{REGISTRY}/{token}/")
        return int(reply.deleted)

    def __repr__(self) -> str:
        return f"<V3Discovery {self.endpoints}>"
