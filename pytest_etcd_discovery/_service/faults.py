"""Faults on purpose: make chosen requests fail the way the real service fails.

A :class:`FaultPlan` is a list of :class:`FaultRule` s; every service has one
(:attr:`DiscoveryService.faults <pytest_etcd_discovery._service.discovery.DiscoveryService>`).
Each rule matches requests by route (``"token"``, ``"machine"``, ``"size"``, ``"new"``, ...,
``"watch"`` for any ``wait=true`` GET, ``"*"`` for all), by a path glob (or regex) and by
method, and picks which matches it hits: the ``nth``, the next ``times``, or all of them.
What it does then (:data:`ACTIONS`):

``status``
    answer ``status`` with the body the real service sends for it: Go's ``http.Error``
    text for a proxy or maintenance page (``503 Service Unavailable``), etcd's JSON for
    the keys API (``500`` is ``300 Raft Internal Error`` as etcd writes it when raft times
    out, ``404`` is ``100 Key not found`` ...) and the discoveryserver profile's plain
    ``unable to GET token`` 400s;
``delay``
    wait ``delay`` seconds, then answer normally (etcd gives up on a non-watch reply
    slower than 5 s); any action can carry a ``delay`` before it;
``drop``
    close the connection without a reply: the live server shuts the socket, the
    in-process transport raises the ``requests.ConnectionError`` a real drop raises;
``empty``
    the discoveryserver profile's empty ``200`` for a watch that saw no event in time;
``callback``
    run a callback (``on_match(request)``, given the
    :class:`~pytest_etcd_discovery._service.messages.ServiceRequest`), then answer normally:
    scenario helpers use it to delete a token at the moment a client asks for it.

A plan only decides and describes: :meth:`FaultPlan.decide` gives the service a
:class:`Decision` for a request, after routing (so Go's redirect of an unclean path such
as ``//new`` comes first, as in the real service), and the service answers it with its
profile's body for that status. Faults never touch the fixture's own seeding requests
(transport ``"fixture"``). Every faulted request is journalled with its rule's
description in ``Call.fault``.
"""

from __future__ import annotations

import fnmatch
import importlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._constants import FAULT_MARKER, TRANSPORT_FIXTURE
from .._errors import Error
from .messages import Pending, ServiceRequest, monotonic
from .routes import ROUTES, Route

if TYPE_CHECKING:
    from .discovery import DiscoveryService

__all__ = [
    "ACTIONS",
    "FAULT_MARKER",
    "ROUTES",
    "Decision",
    "FaultError",
    "FaultPlan",
    "FaultRule",
    "load_plan",
    "rule_from_marker",
    "unfired_lines",
]

#: What a rule can do.
ACTIONS = ("status", "delay", "drop", "empty", "callback")
#: Old names of actions, still taken (0.2.0 called ``callback`` ``call``).
_ACTION_ALIASES = {"call": "callback"}
#: Transport of the fixture's seeding calls: never faulted.
_EXEMPT_TRANSPORTS = frozenset({TRANSPORT_FIXTURE})
#: Methods a rule can name: the standard ones (a typo would match nothing, silently).
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
#: The longest delay a rule may ask for (a day); beyond it is a mistake, not a test.
MAX_DELAY = 86400.0
#: The most rules one plan holds: every request tries each, so more slows every request.
MAX_RULES = 1000


class FaultError(Error, ValueError):
    """A fault rule or plan file that cannot be used (the message says why)."""


@dataclass
class FaultRule:
    """One fault: which requests it hits and what they get.

    :param action: one of :data:`ACTIONS`; ``"status"`` by default.
    :param status: the status of a ``status`` fault (default 503).
    :param route: a route name from :data:`ROUTES` (``None`` or ``"*"``: any).
    :param path: a glob on the request path (``"/*/_config/size"``), or a compiled regex
        (searched); ``path_regex`` takes the regex as text (plan files).
    :param method: a method or several (``None``: any).
    :param nth: hit from the ``nth`` matching request on (1 = the first).  Every request
        the rule matches counts, also one an earlier rule answered: ``fail(503, times=1)``
        then ``fail(500, nth=2)`` answer the first request 503 and the second 500.
    :param times: how many requests to hit (1 with ``nth``; ``None`` with no ``nth``:
        every one).  A request an earlier rule answered is not hit and uses none up:
        ``fail(502, times=1)`` then ``fail(503, times=1)`` answer 502, then 503.
    :param delay: seconds to wait first (the only effect of a ``delay`` fault).
    :param body: a body to send instead of the real service's one (``status`` only).
    :param error_code: the etcd error code of an etcd-v2 JSON error body.
    :param on_match: the callback of a ``callback`` fault (gets the
        :class:`~pytest_etcd_discovery._service.messages.ServiceRequest`).
    :param name: how the journal and the report describe the rule.

    Every rule gets an :attr:`id` when made: a positive integer unique in the process and
    never reused, which the control API names it by (``GET`` / ``DELETE
    /_fake/faults/<id>``) and :meth:`FaultPlan.get` / :meth:`FaultPlan.remove` take.
    """

    action: str = "status"
    status: int | None = None
    route: str | None = None
    path: str | re.Pattern[str] | None = None
    path_regex: str | None = None
    method: str | Sequence[str] | None = None
    nth: int | None = None
    times: int | None = None
    delay: float = 0.0
    body: str | None = None
    error_code: int | None = None
    on_match: Callable[[ServiceRequest], None] | None = None
    name: str | None = None
    #: matching requests seen so far (hit or not)
    seen: int = field(default=0, init=False)
    #: requests this rule hit
    fired: int = field(default=0, init=False)
    #: the rule's id (see above); not part of equality (two rules alike stay equal)
    id: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.action, str):
            self.action = _ACTION_ALIASES.get(self.action, self.action)
        if not isinstance(self.action, str) or self.action not in ACTIONS:
            raise FaultError(f"unknown fault action {self.action!r} (one of: {', '.join(ACTIONS)})")
        if self.action == "status":
            if self.status is None:
                self.status = 503
            elif not _is_int(self.status):
                raise FaultError(f"fault status must be an integer, got {self.status!r}")
            if not 100 <= self.status <= 599:
                raise FaultError(
                    f"fault status must be 100-599 (an HTTP status), got {self.status}"
                )
        elif self.status is not None:
            raise FaultError(f"a {self.action!r} fault takes no status")
        if self.action == "callback" and self.on_match is None:
            raise FaultError("a 'callback' fault needs on_match")
        if self.route is not None and (not isinstance(self.route, str) or self.route not in ROUTES):
            raise FaultError(f"unknown route {self.route!r} (one of: {', '.join(ROUTES)})")
        self._check_path()
        self.method = _methods(self.method)
        for name in ("nth", "times", "error_code"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise FaultError(f"fault {name} must be a positive integer, got {value!r}")
        if (
            not isinstance(self.delay, int | float)
            or isinstance(self.delay, bool)
            or not 0 <= self.delay <= MAX_DELAY  # also refuses nan
        ):
            raise FaultError(
                f"fault delay must be a number of seconds from 0 to {MAX_DELAY:g}, "
                f"got {self.delay!r}"
            )
        for name in ("body", "name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise FaultError(f"fault {name} must be a string, got {value!r}")
        if self.nth is not None and self.times is None:
            self.times = 1
        # Last: a rule refused above uses up no id.
        self.id = _next_rule_id()

    def _check_path(self) -> None:
        if self.path_regex is not None:
            if self.path is not None:
                raise FaultError("give path or path_regex, not both")
            if not isinstance(self.path_regex, str):
                raise FaultError(f"fault path_regex must be a string, got {self.path_regex!r}")
            try:
                self.path = re.compile(self.path_regex)
            except re.error as exc:
                raise FaultError(
                    f"fault path_regex {self.path_regex!r}: bad regex: {exc}"
                ) from None
        elif isinstance(self.path, str):
            # A glob on the request path, which starts with "/": anything else (but a
            # leading wildcard) would match nothing, silently.
            if not self.path.startswith(("/", "*")):
                raise FaultError(
                    f"fault path {self.path!r} must start with '/' (a glob on the request "
                    "path, e.g. '/*/_config/size'); use path_regex for a regex"
                )
        elif self.path is not None and not isinstance(self.path, re.Pattern):
            raise FaultError(f"fault path must be a glob string or a regex, got {self.path!r}")

    # -- description -------------------------------------------------------------------

    def describe(self) -> str:
        """A short label, e.g. ``503 GET token`` or ``drop PUT /*/_state``."""
        if self.name:
            return self.name
        what = {
            "status": str(self.status),
            "delay": f"delay {self.delay:g}s",
            "drop": "drop",
            "empty": "empty 200",
            "callback": "callback",
        }[self.action]
        if self.delay and self.action != "delay":
            what += f" after {self.delay:g}s"
        parts = [what]
        if self.method:
            parts.append("|".join(self.method))
        if self.route and self.route != "*":
            parts.append(self.route)
        if isinstance(self.path, re.Pattern):
            parts.append(f"~{self.path.pattern}")
        elif self.path:
            parts.append(self.path)
        return " ".join(parts)

    @property
    def exhausted(self) -> bool:
        """True once the rule hit every request it was meant to."""
        return self.times is not None and self.fired >= self.times

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON data: what the control API answers for it (``id``, the
        fields of :meth:`from_dict`, ``description``, ``seen``, ``fired``,
        ``exhausted``)."""
        path = self.path
        return {
            "id": self.id,
            "description": self.describe(),
            "action": self.action,
            "status": self.status,
            "route": self.route,
            "path": path if isinstance(path, str) else None,
            "path_regex": path.pattern if isinstance(path, re.Pattern) else None,
            "method": list(self.method) if self.method is not None else None,
            "nth": self.nth,
            "times": self.times,
            "delay": self.delay,
            "body": self.body,
            "error_code": self.error_code,
            "name": self.name,
            "seen": self.seen,
            "fired": self.fired,
            "exhausted": self.exhausted,
        }

    # -- matching (the plan holds its lock around these) -------------------------------

    def matches(self, method: str, path: str, route: Route) -> bool:
        """Whether a ``method`` request for ``path`` (as text), routed to ``route``, is
        one this rule is about (hit or not: see :meth:`take`)."""
        if self.method is not None and method not in self.method:
            return False
        if not route.matches(self.route):
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        if self.path is not None:
            return fnmatch.fnmatchcase(path, self.path)
        return True

    def take(self, free: bool = True) -> bool:
        """Count one matching request; True if this rule hits it.

        ``free`` is False when an earlier rule answered the request: it still counts
        towards ``nth`` (``seen``), but is not hit and uses up none of ``times``.
        """
        self.seen += 1
        first = self.nth or 1
        if not free or self.seen < first or self.exhausted:
            return False
        self.fired += 1
        return True

    # -- plan files --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """A rule from plan-file data (the constructor's names; ``on_match`` excluded)."""
        allowed = {
            "action",
            "status",
            "route",
            "path",
            "path_regex",
            "method",
            "nth",
            "times",
            "delay",
            "body",
            "error_code",
            "name",
        }
        unknown = set(data) - allowed
        if unknown:
            raise FaultError(f"unknown fault fields {sorted(unknown)}; known: {sorted(allowed)}")
        return cls(**data)


_RULE_IDS = itertools.count(1)
_RULE_IDS_LOCK = threading.Lock()


def _next_rule_id() -> int:
    with _RULE_IDS_LOCK:
        return next(_RULE_IDS)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _methods(method: object) -> tuple[str, ...] | None:
    """A rule's ``method``: one name or several, upper-cased and checked."""
    if method is None:
        return None
    names = [method] if isinstance(method, str) else method
    if not isinstance(names, list | tuple) or not names:
        raise FaultError(f"fault method must be a method name or a list of them, got {method!r}")
    checked = []
    for name in names:
        if not isinstance(name, str) or name.upper() not in METHODS:
            raise FaultError(f"unknown fault method {name!r} (one of: {', '.join(METHODS)})")
        checked.append(name.upper())
    return tuple(checked)


@dataclass(frozen=True)
class Decision:
    """What a plan decided for one request: the rule that hit it and what it asks for.

    The service carries it out: it waits ``delay`` (:meth:`FaultPlan.wait`), then
    answers ``status`` with its profile's body for it (``body`` instead when given),
    drops the connection, answers an empty 200, or runs ``on_match`` and answers
    normally.
    """

    rule: FaultRule
    #: how the journal and the report describe it (``Call.fault``)
    label: str
    action: str
    delay: float
    status: int | None
    body: str | None
    error_code: int | None
    #: the plan's generation when decided: clearing the plan ends the delay early
    generation: int


class FaultPlan:
    """The faults of one app, thread-safe; install with :meth:`install`.

    Rules are tried in the order they were added; the first that matches and still has
    hits left decides. Every rule keeps its own ``seen`` / ``fired`` counters.
    """

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        # Delays wait on this; clear()/close() bump the generation to release them.
        self._cond = threading.Condition(self._lock)
        self._generation = 0
        # Event loops waiting out a delay (DelayWait.arm): woken by clear()/release().
        self._wakes: set[Callable[[], None]] = set()
        self.rules: list[FaultRule] = list(rules)
        #: ``(method, path, description)`` of every faulted request, in order.
        self.log: list[tuple[str, str, str]] = []

    # -- building ----------------------------------------------------------------------

    def add(self, rule: FaultRule | None = None, /, **kwargs: Any) -> FaultRule:
        """Add a rule (a :class:`FaultRule`, or its keyword arguments); returns it."""
        if rule is None:
            rule = FaultRule(**kwargs)
        elif kwargs:
            raise TypeError("give a FaultRule or keyword arguments, not both")
        with self._lock:
            _check_count(len(self.rules) + 1)
            self.rules.append(rule)
        return rule

    def fail(
        self,
        status: int = 503,
        *,
        route: str | None = None,
        path: str | re.Pattern[str] | None = None,
        method: str | Sequence[str] | None = None,
        nth: int | None = None,
        times: int | None = None,
        **kwargs: Any,
    ) -> FaultRule:
        """Answer matching requests with ``status`` and the real service's body for it."""
        return self.add(
            action="status",
            status=status,
            route=route,
            path=path,
            method=method,
            nth=nth,
            times=times,
            **kwargs,
        )

    def delay(self, seconds: float, **match: Any) -> FaultRule:
        """Answer matching requests normally, ``seconds`` late."""
        return self.add(action="delay", delay=seconds, **match)

    def drop(self, **match: Any) -> FaultRule:
        """Close the connection of matching requests without an answer."""
        return self.add(action="drop", **match)

    def empty_watch(self, **match: Any) -> FaultRule:
        """Answer matching requests (watches by default) with an empty 200."""
        match.setdefault("route", "watch")
        return self.add(action="empty", **match)

    def get(self, rule_id: int) -> FaultRule | None:
        """The rule of this plan with id ``rule_id`` (:attr:`FaultRule.id`), else None."""
        with self._lock:
            return next((rule for rule in self.rules if rule.id == rule_id), None)

    def remove(self, rule: FaultRule | int) -> bool:
        """Take one rule out, given as itself or its id; False if it is not in the plan
        (gone already).  Requests waiting in its delay go on at once."""
        with self._cond:
            for position, candidate in enumerate(self.rules):
                # By identity or id: a rule equal to another (same fields) is not it.
                if candidate is rule or (_is_int(rule) and candidate.id == rule):
                    del self.rules[position]
                    self._cond.notify_all()  # a blocked wait sees its rule gone
                    # Armed waits look again (ready() re-checks; the others wait on).
                    wakes = list(self._wakes)
                    break
            else:
                return False
        for wake in wakes:
            wake()
        return True

    def clear(self) -> None:
        """Drop every rule and the log, and release requests waiting in a delay."""
        with self._cond:
            self.rules.clear()
            self.log.clear()
            self._generation += 1
            self._cond.notify_all()
            wakes, self._wakes = self._wakes, set()
        for wake in wakes:
            wake()

    close = clear

    def release(self) -> None:
        """End every delay now but keep the rules (a server stopping: it must not wait
        out a delay, and a restarted server still has its plan)."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            wakes, self._wakes = self._wakes, set()
        for wake in wakes:
            wake()

    @contextmanager
    def active(self, rule: FaultRule) -> Iterator[FaultRule]:
        """``with plan.active(plan.fail(503)): ...``: the rule is removed on exit."""
        try:
            yield rule
        finally:
            self.remove(rule)

    # -- the plan of a service --------------------------------------------------------

    def install(self, service: DiscoveryService) -> FaultPlan:
        """Make this the plan ``service`` asks about every request (idempotent)."""
        service.faults = self
        return self

    def uninstall(self, service: DiscoveryService) -> None:
        """Give ``service`` an empty plan again, if this one is its plan."""
        if service.faults is self:
            service.faults = FaultPlan()

    @classmethod
    def of(cls, service: DiscoveryService) -> FaultPlan:
        """The plan of ``service`` (every service has one, empty at first)."""
        return service.faults

    # -- deciding ----------------------------------------------------------------------

    @property
    def may_delay(self) -> bool:
        """True when some rule may hold a request back (a delay): a caller that must not
        block runs requests elsewhere while this holds."""
        return any(rule.delay > 0 for rule in self.rules)

    def decide(self, request: ServiceRequest, route: Route) -> Decision | None:
        """The decision of the first rule that matches ``request`` and still has hits
        left, counted and logged; None when no rule hits it."""
        if not self.rules or request.transport in _EXEMPT_TRANSPORTS:
            return None
        method = request.method.upper()  # as werkzeug gave it to rules before
        path = request.display_path
        with self._lock:
            rule = None
            # Every matching rule counts the request (nth is the nth match), the first
            # one with hits left answers it.
            for candidate in self.rules:
                if candidate.matches(method, path, route) and candidate.take(rule is None):
                    rule = candidate
            if rule is None:
                return None
            label = rule.describe()
            self.log.append((method, path, label))
            generation = self._generation
        return Decision(
            rule=rule,
            label=label,
            action=rule.action,
            delay=rule.delay,
            status=rule.status,
            body=rule.body,
            error_code=rule.error_code,
            generation=generation,
        )

    def wait(self, decision: Decision) -> None:
        """Wait out ``decision.delay``; returns early when the plan is cleared (test
        teardown), released (server stop) or its rule removed."""
        DelayWait(self, decision).block()

    def waiting(self, decision: Decision) -> DelayWait:
        """``decision.delay`` from now, as a :class:`~.messages.Pending` wait."""
        return DelayWait(self, decision)

    def _released(self, decision: Decision) -> bool:
        rule = decision.rule
        return self._generation != decision.generation or not any(r is rule for r in self.rules)

    def _arm(self, decision: Decision, wake: Callable[[], None]) -> bool:
        """Register ``wake`` for clear()/release(); False when that happened already."""
        with self._lock:
            if self._released(decision):
                return False
            self._wakes.add(wake)
            return True

    def _disarm(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._wakes.discard(wake)

    # -- reading -----------------------------------------------------------------------

    def as_dicts(self) -> list[dict[str, Any]]:
        """Every rule as :meth:`FaultRule.as_dict` gives it, in order (one consistent
        reading: no request is counted half-way through it)."""
        with self._lock:
            return [rule.as_dict() for rule in self.rules]

    def unfired(self) -> list[FaultRule]:
        """The rules that never hit a request, in the order they were added."""
        with self._lock:
            return [rule for rule in self.rules if rule.fired == 0]

    def assert_all_fired(self) -> None:
        """Fail (``AssertionError``) unless every rule hit at least one request, naming
        each rule that did not and how many requests it matched.

        A retry test whose ``503`` was never served proves nothing; this says so.
        """
        __tracebackhide__ = True
        with self._lock:
            total = len(self.rules)
            unfired = [rule for rule in self.rules if rule.fired == 0]
        if unfired:
            lines = [f"etcd discovery: {len(unfired)} of {total} fault rules never fired:"]
            lines.extend(f"  {line}" for line in unfired_lines(unfired))
            raise AssertionError("\n".join(lines))

    def __len__(self) -> int:
        with self._lock:
            return len(self.rules)

    def __repr__(self) -> str:
        with self._lock:
            rules = ", ".join(r.describe() for r in self.rules)
        return f"<FaultPlan [{rules}]>"

    # -- plan files --------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Any) -> FaultPlan:
        """A plan from ``{"faults": [rule, ...]}`` or a bare list of rules."""
        if isinstance(data, Mapping):
            unknown = set(data) - {"faults"}
            if unknown:
                raise FaultError(f"unknown top-level keys {sorted(unknown)}; expected 'faults'")
            data = data.get("faults", [])
        if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
            raise FaultError("a fault plan is a list of tables/objects under 'faults'")
        _check_count(len(data))
        rules = []
        for number, entry in enumerate(data, 1):
            try:
                rules.append(FaultRule.from_dict(entry))
            except (FaultError, TypeError) as exc:
                raise FaultError(f"fault {number}: {exc}") from None
        return cls(rules)

    @classmethod
    def load(cls, path: str | Path) -> FaultPlan:
        """Read a plan from a ``.json`` or ``.toml`` file (``[[faults]]`` tables)."""
        return load_plan(path)


class DelayWait(Pending):
    """A request held by a ``delay`` fault: over when the delay has passed or the plan
    was cleared or released, or its rule removed (see :class:`~.messages.Pending`)."""

    def __init__(self, plan: FaultPlan, decision: Decision) -> None:
        self._plan = plan
        self._decision = decision
        self._deadline = monotonic() + decision.delay
        self._wake: Callable[[], None] | None = None

    def _left(self) -> float:
        return max(self._deadline - monotonic(), 0.0)

    def ready(self) -> bool:
        return self._plan._released(self._decision) or self._left() == 0

    def block(self) -> None:
        plan = self._plan
        with plan._cond:
            plan._cond.wait_for(lambda: plan._released(self._decision), self._left())

    def arm(self, wake: Callable[[], None]) -> float | None:
        self._wake = wake
        if not self._plan._arm(self._decision, wake):
            wake()
        return self._left()

    def disarm(self) -> None:
        if self._wake is not None:
            self._plan._disarm(self._wake)
            self._wake = None


def unfired_lines(rules: Iterable[FaultRule]) -> list[str]:
    """One line per rule that never fired: what it is and why it did not fire."""
    lines = []
    for rule in rules:
        if rule.seen == 0:
            why = "no request matched it"
        else:
            # Only an nth rule can match without firing: it waits for a later request.
            matched = "1 request" if rule.seen == 1 else f"{rule.seen} requests"
            why = f"{matched} matched it; it waits for request number {rule.nth}"
        lines.append(f"{rule.describe()}  ({why})")
    return lines


def _check_count(count: int) -> None:
    if count > MAX_RULES:
        raise FaultError(
            f"a fault plan holds at most {MAX_RULES} rules (every request tries each), got {count}"
        )


def load_plan(path: str | Path) -> FaultPlan:
    """Read a fault plan file: JSON, or TOML (by the ``.toml`` suffix)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FaultError(f"cannot read fault plan {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FaultError(f"cannot read fault plan {path}: not UTF-8 (byte {exc.start})") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = _toml_loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise FaultError(f"cannot parse fault plan {path}: {exc}") from None
    return FaultPlan.from_data(data)


def _toml_loads(text: str) -> Any:
    # tomllib is 3.11+; on 3.10 the tomli backport has the same API.
    for name in ("tomllib", "tomli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        return module.loads(text)
    raise FaultError("TOML fault plans need Python 3.11+ or the tomli package")


def rule_from_marker(args: Sequence[Any], kwargs: Mapping[str, Any]) -> FaultRule:
    """The rule of one ``@pytest.mark.etcd_discovery_fault(...)``: an optional status
    first, then :class:`FaultRule`'s keyword arguments (``on_match`` included)."""
    if len(args) > 1:
        raise FaultError(f"@{FAULT_MARKER} takes at most one positional argument (a status)")
    data = dict(kwargs)
    if args:
        if "status" in data:
            raise FaultError(f"@{FAULT_MARKER}: status given twice")
        data["status"] = args[0]
    if "status" in data and "action" not in data:
        data["action"] = "status"
    on_match = data.pop("on_match", None)
    try:
        rule = FaultRule.from_dict(data)
    except TypeError as exc:
        raise FaultError(f"@{FAULT_MARKER}: {exc}") from None
    rule.on_match = on_match
    return rule
