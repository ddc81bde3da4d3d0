"""Faults on purpose: make chosen requests fail the way the real service fails.

A :class:`FaultPlan` is a list of :class:`FaultRule` s hooked into
:attr:`DiscoveryApp.before_request <pytest_etcd_discovery.service.app.DiscoveryApp>`.  Each rule
matches requests by route (``"token"``, ``"machine"``, ``"size"``, ``"new"``, ...,
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
    in-process transport raises the :class:`requests.ConnectionError` a real drop raises;
``empty``
    the discoveryserver profile's empty ``200`` for a watch that saw no event in time;
``call``
    run a callback (``on_match(request)``), then answer normally: scenario helpers use it
    to delete a token at the moment a client asks for it.

Faults never touch the fixture's own seeding requests (transport ``"fixture"``). Every
faulted request is journalled with its rule's description in ``Call.fault``.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.client import RemoteDisconnected
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from urllib3.exceptions import ProtocolError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from ..constants import FAULT_MARKER
from ..v2store import errors
from ..v2store.errors import EtcdError
from .app import bare_response, http_error
from .forms import go_parse_bool, parse_form

if TYPE_CHECKING:
    from .app import DiscoveryApp

__all__ = [
    "ACTIONS",
    "FAULT_KEY",
    "FAULT_MARKER",
    "ROUTES",
    "ConnectionDropped",
    "FaultError",
    "FaultPlan",
    "FaultRule",
    "fault_response",
    "load_plan",
    "rule_from_marker",
]

#: WSGI environ key holding the description of the fault applied to a request.
FAULT_KEY = "etcd_discovery.fault"
#: What a rule can do.
ACTIONS = ("status", "delay", "drop", "empty", "call")
#: Route names a rule can match (the app's endpoints, plus ``watch`` and ``*``).
ROUTES = (
    "*",
    "home",
    "new",
    "health",
    "robots",
    "metrics",
    "token",
    "machine",
    "size",
    "keys",
    "watch",
)
#: Transport of the fixture's seeding calls: never faulted.
_EXEMPT_TRANSPORTS = frozenset({"fixture"})
#: What etcd says when raft does not commit in time (``etcdserver.ErrTimeout``).
RAFT_TIMEOUT_CAUSE = "etcdserver: request timed out"
# etcd-v2 keys-API statuses and the error code etcd answers them with.
_ETCD_CODES = {
    401: errors.UNAUTHORIZED,
    403: errors.NOT_FILE,
    404: errors.KEY_NOT_FOUND,
    500: errors.RAFT_INTERNAL,
}
_DS_TEXT = {"GET": "unable to GET token", "PUT": "unable to PUT token"}
#: Methods a rule can name: the standard ones (a typo would match nothing, silently).
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
#: The longest delay a rule may ask for (a day); beyond it is a mistake, not a test.
MAX_DELAY = 86400.0
#: The most rules one plan holds: every request tries each, so more slows every request.
MAX_RULES = 1000


class FaultError(ValueError):
    """A fault rule or plan file that cannot be used (the message says why)."""


class ConnectionDropped(ConnectionAbortedError):
    """Raised by a ``drop`` fault on the live server.

    werkzeug's request handler treats it as a client that went away (no 500 page, no
    traceback) and the server's handler closes the socket without a reply.
    """


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


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
    :param on_match: the callback of a ``call`` fault (gets the werkzeug request).
    :param name: how the journal and the report describe the rule.
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
    on_match: Callable[[Request], None] | None = None
    name: str | None = None
    #: matching requests seen so far (hit or not)
    seen: int = field(default=0, init=False)
    #: requests this rule hit
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
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
        if self.action == "call" and self.on_match is None:
            raise FaultError("a 'call' fault needs on_match")
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
            "call": "call",
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

    # -- matching (the plan holds its lock around these) -------------------------------

    def matches(self, request: Request, route: str | None, is_watch: bool) -> bool:
        if self.method is not None and request.method not in self.method:
            return False
        if self.route not in (None, "*"):
            if self.route == "watch":
                if not is_watch:
                    return False
            elif self.route != route:
                return False
        if isinstance(self.path, re.Pattern):
            return self.path.search(request.path) is not None
        if self.path is not None:
            return fnmatch.fnmatchcase(request.path, self.path)
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


def _is_watch(request: Request) -> bool:
    if request.method != "GET":
        return False
    values = request.args.getlist("wait")
    try:
        return bool(values) and go_parse_bool(values[0])
    except ValueError:
        return False


def _route_of(request: Request) -> str | None:
    from .app import URL_MAP

    try:
        endpoint, _ = URL_MAP.bind_to_environ(request.environ).match(method=None)
    except HTTPException:
        return None
    return str(endpoint)


def fault_response(app: DiscoveryApp, request: Request, rule: FaultRule) -> Response:
    """The reply a ``status`` (or ``empty``) fault gives ``request``: the real body."""
    if rule.action == "empty":
        return bare_response(200)
    status = rule.status or 503
    if rule.body is not None:
        return http_error(rule.body.removesuffix("\n"), status)
    route = _route_of(request)
    token_route = route in ("token", "machine", "size", "keys")
    if token_route and app.profile.name == "discoveryserver" and status == 400:
        # handlers/token.go answers every store error the same way, per method.
        text = _DS_TEXT.get(request.method, "unable to DELETE token")
        return http_error(text, 400)
    if token_route and app.profile.name != "discoveryserver":
        code = rule.error_code if rule.error_code is not None else _etcd_code(request, status)
        if code is not None:
            return _etcd_json(app, request, code, status)
    if route == "new" and status == 400:
        return http_error(app.profile.new_error, 400)
    if route == "health" and status == 400:
        return http_error("health failed to setupToken", 400)
    # A proxy, load balancer or maintenance page in front: Go's http.Error text.
    return http_error(_status_text(status), status)


def _etcd_code(request: Request, status: int) -> int | None:
    if status == 412:
        form = parse_form(
            request.method,
            request.environ.get("QUERY_STRING", ""),
            request.content_type or "",
            request.get_data(cache=True),
        )
        try:
            create = not go_parse_bool(form.get("prevExist"))
        except ValueError:
            create = False
        return errors.NODE_EXIST if create else errors.TEST_FAILED
    if status == 400:
        return errors.EVENT_INDEX_CLEARED if _is_watch(request) else errors.INVALID_FIELD
    return _ETCD_CODES.get(status)


def _etcd_json(app: DiscoveryApp, request: Request, code: int, status: int) -> Response:
    index = app.store.index
    if code == errors.RAFT_INTERNAL:
        err = EtcdError(code, RAFT_TIMEOUT_CAUSE, 0)  # etcd writes index 0 here
    elif code in (errors.KEY_NOT_FOUND, errors.NOT_FILE, errors.NODE_EXIST):
        err = EtcdError(code, _store_key(app, request), index)
    elif code == errors.EVENT_INDEX_CLEARED:
        start = max(index - 999, 1)
        err = EtcdError(code, f"the requested history has been cleared [{start}/1]", index)
    else:
        err = EtcdError(code, "", index)
    resp = app._etcd_error(err)
    if resp.status_code != status:
        resp.status_code = status  # an odd pairing asked for on purpose
    return resp


def _store_key(app: DiscoveryApp, request: Request) -> str:
    path = request.path
    if path.startswith("/v2/keys"):
        return path[len("/v2/keys") :] or "/"
    return f"{app.profile.key_prefix}{path}".rstrip("/") or "/"


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
        self.rules: list[FaultRule] = list(rules)
        #: ``(method, path, description)`` of every faulted request, in order.
        self.log: list[tuple[str, str, str]] = []
        self._app: DiscoveryApp | None = None

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

    def remove(self, rule: FaultRule) -> None:
        """Take one rule out (a no-op if it is gone already)."""
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def clear(self) -> None:
        """Drop every rule and the log, and release requests waiting in a delay."""
        with self._cond:
            self.rules.clear()
            self.log.clear()
            self._generation += 1
            self._cond.notify_all()

    close = clear

    @contextmanager
    def active(self, rule: FaultRule) -> Iterator[FaultRule]:
        """``with plan.active(plan.fail(503)): ...``: the rule is removed on exit."""
        try:
            yield rule
        finally:
            self.remove(rule)

    # -- hooking into an app -----------------------------------------------------------

    def install(self, app: DiscoveryApp) -> FaultPlan:
        """Run this plan before every request ``app`` routes (idempotent)."""
        if self.hook not in app.before_request:
            app.before_request.insert(0, self.hook)
        self._app = app
        return self

    def uninstall(self, app: DiscoveryApp) -> None:
        if self.hook in app.before_request:
            app.before_request.remove(self.hook)
        if self._app is app:
            self._app = None

    @classmethod
    def of(cls, app: DiscoveryApp) -> FaultPlan:
        """The plan installed on ``app``, installing an empty one if there is none."""
        for hook in app.before_request:
            plan = getattr(hook, "__self__", None)
            if isinstance(plan, cls):
                return plan
        return cls().install(app)

    def hook(self, request: Request) -> Response | None:
        """``before_request`` hook: apply the first matching rule, if any."""
        if request.environ.get("etcd_discovery.transport") in _EXEMPT_TRANSPORTS:
            return None
        with self._lock:
            if not self.rules:
                return None
            route = _route_of(request)
            is_watch = _is_watch(request)
            rule = None
            # Every matching rule counts the request (nth is the nth match), the first
            # one with hits left answers it.
            for candidate in self.rules:
                if candidate.matches(request, route, is_watch) and candidate.take(rule is None):
                    rule = candidate
            if rule is None:
                return None
            label = rule.describe()
            self.log.append((request.method, request.path, label))
            generation = self._generation
        request.environ[FAULT_KEY] = label
        if rule.delay > 0:
            with self._cond:
                # Wakes early when the plan is cleared (test teardown, server stop).
                self._cond.wait_for(lambda: self._generation != generation, rule.delay)
        return self._act(request, rule)

    def _act(self, request: Request, rule: FaultRule) -> Response | None:
        if rule.action in ("delay",):
            return None
        if rule.action == "call":
            assert rule.on_match is not None
            rule.on_match(request)
            return None
        if rule.action == "drop":
            _drop(request)
        app = self._app
        if app is None:
            return http_error(_status_text(rule.status or 503), rule.status or 503)
        return fault_response(app, request, rule)

    # -- reading -----------------------------------------------------------------------

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


def _drop(request: Request) -> None:
    """Close the connection without a reply, as each transport would see it."""
    if request.environ.get("etcd_discovery.transport") == "inprocess":
        # Exactly what requests raises when a server closes without answering.
        raise requests.exceptions.ConnectionError(
            ProtocolError(
                "Connection aborted.",
                RemoteDisconnected("Remote end closed connection without response"),
            )
        )
    request.get_data(cache=True)  # read now: the journal shows the body
    # The app journals the request, then the live server's handler (gohttp) sees this
    # ConnectionError and closes the socket: the entry exists before the client wakes.
    raise ConnectionDropped("etcd discovery fake: connection dropped on purpose")


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
