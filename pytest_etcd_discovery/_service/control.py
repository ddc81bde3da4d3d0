"""The control API: the fake's test powers over HTTP, under the reserved ``/_fake/`` prefix.

Suites in other languages start ``etcd-discovery-fake`` and drive it with plain HTTP and
JSON: seed tokens, read and restore the state, move the clock, inject faults, read the
journal.  :class:`ControlApp` is a small WSGI app in front of :class:`DiscoveryApp`; it
answers ``/_fake/...`` itself and hands every other request on, so the discovery app never
sees a control request: they are not journalled, not counted in ``/metrics`` and never hit
by faults.  Neither real service routes ``/_fake/`` (both answer it with Go's 404), so the
prefix cannot shadow anything a client of the real service uses.

Every answer is JSON (errors too: ``{"message": ...}``); bad input answers 400 and changes
nothing.  ``GET /_fake/`` is the dashboard, a page that polls these endpoints.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .._constants import TRANSPORT_FIXTURE, V04_TTL
from .._errors import Error
from .._etcd_rules import (
    STYLE_V04,
    MemberSpec,
    MemberSpecError,
    etcd_member_id,
    etcd_member_value,
    member_specs,
)
from .._v2store.clock import NS_PER_S, ControllableClock, SystemClock
from .._v2store.errors import EtcdError
from .._v2store.events import (
    COMPARE_AND_DELETE,
    COMPARE_AND_SWAP,
    CREATE,
    DELETE,
    EXPIRE,
    SET,
    UPDATE,
)
from .._v2store.store import Store
from .app import DiscoveryApp
from .discovery import seeded_token_source
from .go_net_http import go_clean_path
from .journal import Call

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .faults import FaultPlan, FaultRule

__all__ = ["PREFIX", "ControlApp", "ControlError", "check_state"]

#: The reserved path prefix; neither real service routes it.
PREFIX = "/_fake/"
#: Go's last representable instant as int64 nanoseconds (2262-04-11), in seconds.
_LAST_INSTANT = (2**63 - 1) // NS_PER_S
#: What a snapshot's history events may be.
_EVENT_ACTIONS = (SET, CREATE, UPDATE, DELETE, COMPARE_AND_SWAP, COMPARE_AND_DELETE, EXPIRE)
_STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}

CONTROL_MAP = Map(
    [
        Rule("/_fake/", endpoint="dashboard", methods=["GET"]),
        Rule("/_fake/static/<name>", endpoint="static", methods=["GET"]),
        Rule("/_fake/state", endpoint="state", methods=["GET", "PUT"]),
        Rule("/_fake/reset", endpoint="reset", methods=["POST"]),
        Rule("/_fake/tokens", endpoint="tokens", methods=["GET", "POST"]),
        Rule("/_fake/clock", endpoint="clock", methods=["GET"]),
        Rule("/_fake/clock/advance", endpoint="advance", methods=["POST"]),
        Rule("/_fake/clock/freeze", endpoint="freeze", methods=["POST"]),
        Rule("/_fake/clock/unfreeze", endpoint="unfreeze", methods=["POST"]),
        Rule("/_fake/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_fake/calls", endpoint="calls", methods=["GET"]),
    ],
    # No redirects: a control client gets the answer or a JSON error, never a 308.
    strict_slashes=False,
    merge_slashes=False,
    redirect_defaults=False,
)


class ControlError(Error):
    """Bad control input: answered with ``status`` and ``{"message": ...}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _ControlRequest(Request):
    # A snapshot of a big store is a few MiB; anything far beyond is not ours.
    max_content_length = 64 * 1024 * 1024


def _json(data: Any, status: int = 200) -> Response:
    resp = Response(json.dumps(data) + "\n", status=status, mimetype="application/json")
    # The dashboard polls: a cached answer would freeze it.
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _error(message: str, status: int) -> Response:
    return _json({"message": message}, status)


def _reject_constant(name: str) -> Any:
    raise ControlError(f"invalid JSON: {name} is not a number JSON allows")


def _body(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}`` when ``empty_ok``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if empty_ok:
            return {}
        raise ControlError("a JSON object body is required")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ControlError("invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ControlError(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _only(data: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    known = sorted(allowed)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ControlError(f"unknown {what} fields {unknown}; known: {known}")


def _int(value: Any, name: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"{name} must be an integer, got {json.dumps(value)}")
    if minimum is not None and value < minimum:
        raise ControlError(f"{name} must be >= {minimum}, got {value}")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{name} must be a string, got {json.dumps(value)}")
    return value


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


class ControlApp:
    """The control API in front of ``app``: ``/_fake/...`` here, the rest to ``app``.

    :param app: the discovery app it controls (its store, clock, faults and journal are
        read on every request, so a fixture that swaps the store per test is followed).
    :param enabled: False hands ``/_fake/`` to ``app`` too, which answers the real
        services' 404 (``--no-control``).
    :param seed: make ``app`` hand out the same tokens in the same order on every run
        (and again after ``POST /_fake/reset``).
    """

    def __init__(self, app: DiscoveryApp, *, enabled: bool = True, seed: int | None = None) -> None:
        self.app = app
        self.enabled = enabled
        self.seed = seed
        if seed is not None:
            app.token_source = seeded_token_source(seed)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        # An unclean path (/_fake/../new) is the discovery app's: Go's mux redirects it.
        if not (self.enabled and path.startswith(PREFIX) and go_clean_path(path) == path):
            return self.app(environ, start_response)
        return self.respond(_ControlRequest(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The control API's answer to ``request`` (a path under :data:`PREFIX`)."""
        try:
            endpoint, args = CONTROL_MAP.bind("fake").match(request.path, request.method)
            handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
            return handler(request, **args)
        except ControlError as exc:
            return _error(exc.message, exc.status)
        except MethodNotAllowed as exc:
            resp = _error(f"{request.method} is not allowed on {request.path}", 405)
            resp.headers["Allow"] = ", ".join(exc.valid_methods or ())
            return resp
        except NotFound:
            return _error(f"no control endpoint {request.path}", 404)
        except HTTPException as exc:  # a body over max_content_length, ...
            return _error(exc.description or exc.name, exc.code or 400)

    # -- the dashboard ---------------------------------------------------------------------

    def on_dashboard(self, request: Request) -> Response:
        return Response(_asset("index.html"), mimetype="text/html")

    def on_static(self, request: Request, name: str) -> Response:
        if name not in _STATIC:
            raise ControlError(f"no control endpoint {request.path}", 404)
        return Response(_asset(name), content_type=_STATIC[name])

    # -- state -----------------------------------------------------------------------------

    def on_state(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return _json({"store": self.app.store.snapshot()})
        self.app.store.restore(check_state(_body(request)))
        return _json({"index": self.app.store.index})

    def on_reset(self, request: Request) -> Response:
        _only(_body(request, empty_ok=True), (), "reset")
        self._plan().clear()
        clock = self.app.clock
        if isinstance(clock, ControllableClock):
            clock.reset()
        self.app.reset()  # a new empty store on the same clock, journal and metrics cleared
        if self.seed is not None:
            self.app.token_source = seeded_token_source(self.seed)
        return _json({"index": self.app.store.index})

    # -- tokens ----------------------------------------------------------------------------

    def on_tokens(self, request: Request) -> Response:
        base = self._base_url(request)
        if request.method in ("GET", "HEAD"):
            return _json({"tokens": _token_views(self.app, base), "index": self.app.store.index})
        data = _body(request, empty_ok=True)
        _only(data, {"size", "members", "state"}, "token")
        size = _int(data.get("size", 3), "size")
        if not -(2**63) <= size < 2**63:
            raise ControlError(f"size out of range (a Go int, as /new reads it): {size}")
        members = _member_specs(data.get("members"))
        state = data.get("state")
        if state is not None:
            state = _str(state, "state")
        # The same keys and values as the marker's seeding, written to the store directly
        # (not as requests through the app): no journal entry, no metric, no fault.
        try:
            token = self.app.new_token(size)
        except EtcdError as err:
            raise ControlError(f"cannot create a token: {err}", 409) from None
        url = f"{base}/{token}"
        key = self.app.token_key(token)
        store = self.app.store
        for name, urls, style in members:
            if style == STYLE_V04:
                store.set(f"{key}/{name}", urls[0], ttl=V04_TTL)
            else:
                # What etcd 3.4 writes (handle.register, prevExist=false): key = its member
                # id, value sorted name=url pairs; past the size too, as the marker seeds.
                store.create(f"{key}/{etcd_member_id(urls, url)}", etcd_member_value(name, urls))
        if state is not None:
            store.set(f"{key}/_state", state)
        return _json({"token": token, "url": url}, 201)

    def _base_url(self, request: Request) -> str:
        return (self.app.public_url or request.host_url).rstrip("/")

    # -- the clock -------------------------------------------------------------------------

    def _clock(self) -> ControllableClock:
        clock = self.app.clock
        if not isinstance(clock, ControllableClock):
            raise ControlError("this fake runs on the system clock, which cannot be moved", 409)
        return clock

    def _clock_view(self) -> dict[str, Any]:
        clock = self.app.clock
        now = clock.now()
        frozen = isinstance(clock, ControllableClock) and clock.frozen
        return {
            "now": now,
            "time": _rfc3339(now),
            "frozen": frozen,
            "controllable": isinstance(clock, ControllableClock),
        }

    def on_clock(self, request: Request) -> Response:
        return _json(self._clock_view())

    def on_advance(self, request: Request) -> Response:
        data = _body(request)
        _only(data, {"seconds"}, "advance")
        if "seconds" not in data:
            raise ControlError('advance takes {"seconds": N}')
        seconds = data["seconds"]
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise ControlError(f"seconds must be a number, got {json.dumps(seconds)}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ControlError(f"seconds must be >= 0 (a clock cannot go back), got {seconds}")
        clock = self._clock()
        if clock.now() + seconds >= _LAST_INSTANT:
            # etcd keeps times as int64 nanoseconds: its clock ends in April 2262.
            raise ControlError(f"seconds too large: the clock would pass {_rfc3339(_LAST_INSTANT)}")
        # Expiries that became due fire inside advance(): their watchers wake at once.
        clock.advance(seconds)
        return _json(self._clock_view())

    def on_freeze(self, request: Request) -> Response:
        _only(_body(request, empty_ok=True), (), "freeze")
        self._clock().freeze()
        return _json(self._clock_view())

    def on_unfreeze(self, request: Request) -> Response:
        _only(_body(request, empty_ok=True), (), "unfreeze")
        self._clock().unfreeze()
        return _json(self._clock_view())

    # -- faults ----------------------------------------------------------------------------

    def _plan(self) -> FaultPlan:
        from .faults import FaultPlan

        return FaultPlan.of(self.app)

    def on_faults(self, request: Request) -> Response:
        if request.method == "POST":
            from .faults import FaultError, FaultRule

            data = _body(request)
            try:
                # FaultRule's own checks decide what a rule may be (on_match is not a field).
                rule = FaultRule.from_dict(data)
            except (FaultError, TypeError, ValueError, AttributeError) as exc:
                raise ControlError(f"bad fault rule: {exc}") from None
            self._plan().add(rule)
            return _json(_rule_view(rule), 201)
        plan = self._plan()
        rules = list(plan.rules)
        if request.method == "DELETE":
            plan.clear()  # also releases requests waiting in a delay
            return _json({"removed": len(rules)})
        return _json({"faults": [_rule_view(r) for r in rules]})

    # -- the journal -----------------------------------------------------------------------

    def on_calls(self, request: Request) -> Response:
        _only(request.args, {"since", "limit"}, "query")
        since = _query_int(request, "since", 0) or 0 or 0
        limit = _query_int(request, "limit", None)
        following, calls = self.app.journal.since(since)
        first = following - len(calls)
        views = [
            _call_view(first + i, call)
            for i, call in enumerate(calls)
            if call.transport != TRANSPORT_FIXTURE  # the fixture's own seeding calls
        ]
        if limit is not None:
            views = views[-limit:] if limit else []
        return _json({"calls": views, "next": following})


def _query_int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ControlError(f"{name} must be a whole number >= 0, got {raw!r}")
    return int(raw)


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("dashboard").joinpath(name).read_bytes()


def _member_specs(members: Any) -> list[MemberSpec]:
    """``members`` as the marker takes them
    (:func:`~pytest_etcd_discovery._etcd_rules.member_specs`)."""
    try:
        return member_specs(members, what="members")
    except MemberSpecError as exc:
        raise ControlError(str(exc)) from None


def _token_views(app: DiscoveryApp, base: str) -> list[dict[str, Any]]:
    """Every token, oldest first: size, ``_state`` and members with their TTL left."""
    store = app.store
    views = []
    for token in app.token_names():
        key = app.token_key(token)
        try:
            nodes = store.get(key, sorted=True).to_json()["node"].get("nodes", []) or []
        except EtcdError:
            continue  # expired or deleted since the listing
        members = sorted(
            (_member_view(n) for n in nodes if not n.get("dir")),
            key=lambda m: int(m["createdIndex"]),
        )
        raw_size = _value(store, f"{key}/_config/size")
        views.append(
            {
                "token": token,
                "url": f"{base}/{token}",
                "size": _size(raw_size),
                "size_value": raw_size,
                "state": _value(store, f"{key}/_state"),
                "members": members,
            }
        )
    return views


def _size(raw: str | None) -> int | None:
    """``_config/size`` as etcd reads it (``strconv.Atoi``); None when absent or bad."""
    if raw is None or not re.fullmatch(r"[+-]?[0-9]+", raw):
        return None
    return int(raw)


def _value(store: Store, key: str) -> str | None:
    try:
        value = store.get(key).to_json()["node"].get("value")
    except EtcdError:
        return None
    return value if isinstance(value, str) else None


def _member_view(node: Mapping[str, Any]) -> dict[str, Any]:
    value = str(node.get("value", ""))
    parts = [p for p in value.split(",") if p]
    # etcd 3.4 registers name=url pairs under its member id; etcd 0.4 a URL under the name.
    key = str(node["key"]).rsplit("/", 1)[-1]
    name = parts[0].split("=", 1)[0] if parts and "=" in parts[0] else key
    return {
        "key": key,
        "name": name,
        "value": value,
        "peer_urls": [p.split("=", 1)[1] if "=" in p else p for p in parts],
        "ttl": node.get("ttl"),
        "expiration": node.get("expiration"),
        "createdIndex": node.get("createdIndex"),
    }


def _rule_view(rule: FaultRule) -> dict[str, Any]:
    path = rule.path
    return {
        "description": rule.describe(),
        "action": rule.action,
        "status": rule.status,
        "route": rule.route,
        "path": path if isinstance(path, str) else None,
        "path_regex": path.pattern if isinstance(path, re.Pattern) else None,
        "method": list(rule.method) if rule.method is not None else None,
        "nth": rule.nth,
        "times": rule.times,
        "delay": rule.delay,
        "body": rule.body,
        "error_code": rule.error_code,
        "name": rule.name,
        "seen": rule.seen,
        "fired": rule.fired,
        "exhausted": rule.exhausted,
    }


def _call_view(number: int, call: Call) -> dict[str, Any]:
    return {
        "number": number,
        "method": call.method,
        "path": call.path,
        "query": call.query,
        "status": call.status,
        "transport": call.transport,
        "form": call.form,
        "time": call.time,
        "fault": call.fault,
    }


def check_state(data: Any) -> dict[str, Any]:
    """The store snapshot inside a state (``{"store": ...}``, what GET /_fake/state and
    ``--state`` files hold), checked so that restoring it cannot fail half-way."""
    if not isinstance(data, dict) or "store" not in data:
        raise ControlError('a state is {"store": ...}, as GET /_fake/state answers')
    _only(data, {"store"}, "state")
    snapshot: dict[str, Any] = data["store"]
    _check_snapshot(snapshot)
    # Restore into a scratch store first: a snapshot that fails there changes nothing.
    scratch = Store(SystemClock())
    try:
        scratch.restore(snapshot)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ControlError(f"not a snapshot: {exc!r}") from None
    except RecursionError:
        raise ControlError("not a snapshot: nested too deeply") from None
    finally:
        scratch.close()
    return snapshot


def _check_history(history: Any) -> None:
    """Events as :meth:`Store.snapshot` writes them, in index order (watches scan them)."""
    if not isinstance(history, list):
        raise ControlError("store.history must be a list")
    last = 0
    for number, event in enumerate(history):
        where = f"store.history[{number}]"
        if not isinstance(event, dict):
            raise ControlError(f"{where} must be an event object")
        _only(event, {"action", "node", "prevNode", "etcdIndex", "refresh"}, "event")
        if event.get("action") not in _EVENT_ACTIONS:
            raise ControlError(f"{where}.action must be one of {list(_EVENT_ACTIONS)}")
        node = event.get("node")
        if not isinstance(node, dict):
            raise ControlError(f"{where}.node must be an object")
        _str(node.get("key"), f"{where}.node.key")
        index = _int(node.get("modifiedIndex"), f"{where}.node.modifiedIndex", 0)
        if index < last:
            raise ControlError(f"{where}: events must be in index order")
        last = index
        if event.get("prevNode") is not None and not isinstance(event["prevNode"], dict):
            raise ControlError(f"{where}.prevNode must be an object")
        _int(event.get("etcdIndex", 0), f"{where}.etcdIndex", 0)
        if not isinstance(event.get("refresh", False), bool):
            raise ControlError(f"{where}.refresh must be true or false")


_NODE_FIELDS = ("path", "createdIndex", "modifiedIndex", "value", "children", "expireNs")


def _check_snapshot(snapshot: Any) -> None:
    """The shape :meth:`Store.snapshot` writes, checked before anything is replaced."""
    if not isinstance(snapshot, dict):
        raise ControlError("store must be an object, as GET /_fake/state answers")
    _only(snapshot, {"index", "root", "history"}, "store")
    _int(snapshot.get("index"), "store.index", 0)
    _check_history(snapshot.get("history", []))
    stack = [snapshot.get("root")]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            raise ControlError("store.root: every node must be an object")
        _only(
            node, {"path", "createdIndex", "modifiedIndex", "value", "children", "expireNs"}, "node"
        )
        path = _str(node.get("path"), "node path")
        if not path.startswith("/"):
            raise ControlError(f"node path must start with '/', got {path!r}")
        _int(node.get("createdIndex"), f"{path} createdIndex", 0)
        _int(node.get("modifiedIndex"), f"{path} modifiedIndex", 0)
        if node.get("expireNs") is not None:
            _int(node["expireNs"], f"{path} expireNs", 0)
        if "children" in node:
            if "value" in node or not isinstance(node["children"], list):
                raise ControlError(f"{path}: a directory has a children list and no value")
            stack.extend(node["children"])
        else:
            _str(node.get("value"), f"{path} value")
