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

**Who may ask.**  The API can reset the store, overwrite the state and inject faults, so a
browser page on another site must not reach it: a request whose ``Host`` is not a loopback
name or address, the configured host or the public URL's host answers 403 (DNS
rebinding), and so does a state-changing request (POST, PUT, DELETE, PATCH) whose
``Origin`` is not the fake's own (a cross-site form or fetch).  With a ``token``, every API
request also needs ``Authorization: Bearer TOKEN`` (401 otherwise); the dashboard's own
files (the page, its script and style: static, no data) do not, and the page sends the
token it is given once as ``/_fake/?token=TOKEN``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .._constants import RAISE_BODY_LIMIT, TRANSPORT_FIXTURE, V04_TTL
from .._etcd_rules import (
    STYLE_V04,
    MemberSpec,
    MemberSpecError,
    etcd_member_id,
    etcd_member_value,
    member_specs,
)
from .._expectations import DATA_FILTER_KEYS, CallFilter, closest, requested_failure
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
from .control_io import (
    MAX_BODY,
    ControlError,
    _body,
    _ControlRequest,
    _error,
    _int,
    _json,
    _only,
    _query_int,
    _str,
)
from .control_v3 import V3Routes
from .discovery import seeded_token_source
from .go_net_http import go_clean_path
from .journal import Call

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .faults import FaultPlan

__all__ = ["MAX_BODY", "PREFIX", "ControlApp", "ControlError", "check_state", "check_token"]

#: The reserved path prefix; neither real service routes it.
PREFIX = "/_fake/"
#: Go's last representable instant as int64 nanoseconds (2262-04-11), in seconds.
_LAST_INSTANT = (2**63 - 1) // NS_PER_S
#: Methods that change the fake: refused from another origin.
_UNSAFE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
#: Wildcard bind addresses: the fake answers on every address of the machine.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
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
        Rule("/_fake/openapi.json", endpoint="openapi", methods=["GET"]),
        Rule("/_fake/health", endpoint="health", methods=["GET"]),
        Rule("/_fake/state", endpoint="state", methods=["GET", "PUT"]),
        Rule("/_fake/reset", endpoint="reset", methods=["POST"]),
        Rule("/_fake/tokens", endpoint="tokens", methods=["GET", "POST"]),
        Rule("/_fake/clock", endpoint="clock", methods=["GET"]),
        Rule("/_fake/clock/advance", endpoint="advance", methods=["POST"]),
        Rule("/_fake/clock/freeze", endpoint="freeze", methods=["POST"]),
        Rule("/_fake/clock/unfreeze", endpoint="unfreeze", methods=["POST"]),
        Rule("/_fake/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_fake/faults/<rule_id>", endpoint="fault", methods=["GET", "DELETE"]),
        Rule("/_fake/calls", endpoint="calls", methods=["GET"]),
        Rule("/_fake/calls/count", endpoint="count", methods=["POST"]),
        Rule("/_fake/changes", endpoint="changes", methods=["GET"]),
        Rule("/_fake/v3/tokens", endpoint="v3_tokens", methods=["GET", "POST"]),
        Rule("/_fake/v3/tokens/<token>", endpoint="v3_token", methods=["GET", "DELETE"]),
        Rule("/_fake/v3/tokens/<token>/members", endpoint="v3_members", methods=["POST"]),
        Rule("/_fake/v3/calls", endpoint="v3_calls", methods=["GET"]),
        Rule("/_fake/v3/faults", endpoint="v3_faults", methods=["GET", "POST", "DELETE"]),
        Rule("/_fake/v3/faults/<v3_rule_id>", endpoint="v3_fault", methods=["GET", "DELETE"]),
    ],
    # No redirects: a control client gets the answer or a JSON error, never a 308.
    strict_slashes=False,
    merge_slashes=False,
    redirect_defaults=False,
)


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


class ControlApp(V3Routes):
    """The control API in front of ``app``: ``/_fake/...`` here, the rest to ``app``.

    :param app: the discovery app it controls (its store, clock, faults and journal are
        read on every request, so a fixture that swaps the store per test is followed).
    :param enabled: False hands ``/_fake/`` to ``app`` too, which answers the real
        services' 404 (``--no-control``).
    :param seed: make ``app`` hand out the same tokens in the same order on every run
        (and again after ``POST /_fake/reset``).
    :param token: when set, every API request needs ``Authorization: Bearer TOKEN``
        (the command's ``--control-token``).
    :param hosts: ``Host`` names (or addresses) the API answers besides loopback ones and
        the public URL's host: the address it listens on, the discovery hosts it serves;
        a wildcard address (``0.0.0.0``, ``::``) admits every IP address.
    """

    def __init__(
        self,
        app: DiscoveryApp,
        *,
        enabled: bool = True,
        seed: int | None = None,
        token: str | None = None,
        hosts: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.enabled = enabled
        self.seed = seed
        #: The command's etcd v3 endpoint (``--v3-port``), a ``V3Discovery``, if any.
        self.v3: Any = None
        if token is not None:
            check_token(token)
        self.token = token
        names = {_bare(h) for h in hosts}
        self._any_ip = bool(names & _WILDCARDS)
        self._hosts = names - _WILDCARDS
        if seed is not None:
            app.token_source = seeded_token_source(seed)

    @property
    def serves_deferred(self) -> bool:
        """Whether the live server may call it on its event loop: its own routes answer
        at once, the rest is the discovery app's (see ``app.DEFER_KEY``)."""
        return bool(getattr(self.app, "serves_deferred", False))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        # An unclean path (/_fake/../new) is the discovery app's: Go's mux redirects it.
        if not (self.enabled and path.startswith(PREFIX) and go_clean_path(path) == path):
            return self.app(environ, start_response)
        # The live server gives an application 10 MiB + 1 of a body (Go's form limit, right
        # for the discovery routes); a snapshot may be bigger: our own limit is the one here.
        raise_limit = environ.get(RAISE_BODY_LIMIT)
        if callable(raise_limit):
            raise_limit(MAX_BODY + 1)  # one more byte: werkzeug tells "too large" by it
        return self.respond(_ControlRequest(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The control API's answer to ``request`` (a path under :data:`PREFIX`)."""
        try:
            self._check_host(request)
            self._check_origin(request)
            # Unknown paths too: without the token, not even the route map shows.
            if not _is_dashboard_file(request):
                self._check_token(request)
            endpoint, args = CONTROL_MAP.bind("fake").match(request.path, request.method)
            handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
            return handler(request, **args)
        except ControlError as exc:
            resp = _error(exc.message, exc.status)
            if exc.status == 401:
                resp.headers["WWW-Authenticate"] = 'Bearer realm="etcd-discovery-fake"'
            return resp
        except MethodNotAllowed as exc:
            resp = _error(f"{request.method} is not allowed on {request.path}", 405)
            resp.headers["Allow"] = ", ".join(exc.valid_methods or ())
            return resp
        except NotFound:
            return _error(f"no control endpoint {request.path}", 404)
        except HTTPException as exc:  # a body over max_content_length, ...
            return _error(exc.description or exc.name, exc.code or 400)

    # -- who may ask -----------------------------------------------------------------------

    def _check_host(self, request: Request) -> None:
        """403 unless ``Host`` names this machine: a page on another site that rebinds its
        own name to 127.0.0.1 sends its own name."""
        raw = request.environ.get("HTTP_HOST")
        if raw is None:
            return  # HTTP/1.0 without Host: no browser sends that
        name, _ = _split_host(raw)
        if name is not None and self._host_allowed(name):
            return
        raise ControlError(
            f"the control API does not answer for Host {raw!r}: use a loopback address "
            "(127.0.0.1, [::1], localhost) or the host the fake was started with",
            403,
        )

    def _host_allowed(self, name: str) -> bool:
        if name == "localhost" or name.endswith(".localhost") or name in self._hosts:
            return True
        public = urlsplit(self.app.public_url or "").hostname
        if public is not None and name == _bare(public):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        # An IP address cannot be rebound; a wildcard bind answers on all of this machine's.
        return address.is_loopback or self._any_ip

    def _check_origin(self, request: Request) -> None:
        """403 for a state-changing request sent by a page of another origin (a form or
        fetch from another site carries its own ``Origin``)."""
        if request.method not in _UNSAFE_METHODS:
            return
        origin = request.headers.get("Origin")
        if origin is None:
            # No Origin (curl, a test suite): only a browser's cross-site mark refuses it.
            if request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
                raise ControlError("cross-site requests may not change the fake", 403)
            return
        if not _same_origin(origin, request.scheme, request.environ.get("HTTP_HOST", "")):
            raise ControlError(
                f"Origin {origin!r} may not change the fake: only its own pages may", 403
            )

    def _check_token(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        # Constant-time: the answer must not tell how much of a guess was right.
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("utf-8", "surrogateescape"), self.token.encode("utf-8")
        ):
            return
        what = "a wrong token" if given else "no token"
        raise ControlError(
            f"this fake's control API needs 'Authorization: Bearer TOKEN' (got {what}); "
            "the dashboard takes it once as /_fake/?token=TOKEN",
            401,
        )

    # -- the dashboard ---------------------------------------------------------------------

    def on_dashboard(self, request: Request) -> Response:
        return Response(_asset("index.html"), mimetype="text/html")

    def on_static(self, request: Request, name: str) -> Response:
        if name not in _STATIC:
            raise ControlError(f"no control endpoint {request.path}", 404)
        return Response(_asset(name), content_type=_STATIC[name])

    # -- about the fake --------------------------------------------------------------------

    def on_openapi(self, request: Request) -> Response:
        from .openapi import openapi

        return _json(openapi(self._base_url(request)))

    def on_health(self, request: Request) -> Response:
        from .. import __version__

        # Cheap on purpose (a probe asks often): counts, no listing.
        return _json(
            {
                "status": "ok",
                "version": __version__,
                "profile": self.app.profile.name,
                "index": self.app.store.index,
                "calls": self.app.journal.next_number,
                "faults": len(self._plan()),
            }
        )

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
        if self.v3 is not None:
            self.v3.reset()  # its keys, leases, journal and faults too
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
            try:
                self._plan().add(rule)
            except FaultError as exc:  # the plan is full
                raise ControlError(f"bad fault rule: {exc}") from None
            return _json(rule.as_dict(), 201)
        plan = self._plan()
        if request.method == "DELETE":
            removed = len(plan)
            plan.clear()  # also releases requests waiting in a delay
            return _json({"removed": removed})
        return _json({"faults": plan.as_dicts()})

    def on_fault(self, request: Request, rule_id: str) -> Response:
        plan = self._plan()
        # Ids are positive integers: anything else names no rule (404, as an unknown id).
        known = rule_id.isascii() and rule_id.isdigit() and len(rule_id) < 19  # int64
        rule = plan.get(int(rule_id)) if known else None
        if rule is None:
            raise ControlError(
                f"no fault rule with id {rule_id!r}: GET /_fake/faults lists the rules "
                "and their ids",
                404,
            )
        if request.method == "DELETE":
            plan.remove(rule)  # also releases requests waiting in its delay
            return _json({"removed": rule.as_dict()})
        return _json(rule.as_dict())

    # -- the dashboard's poll --------------------------------------------------------------

    def on_changes(self, request: Request) -> Response:
        from .changes import changes  # what changed since the cursor: cheap to poll

        return _json(changes(self.app, request, self._base_url(request), self._plan()))

    # -- the journal -----------------------------------------------------------------------

    def _numbered(self, since: int) -> tuple[int, list[tuple[int, Call]]]:
        """The journal from call ``since`` on, each call with its number (the fixture's
        own seeding calls left out), and the number the next call will get."""
        following, calls = self.app.journal.since(since)
        first = following - len(calls)
        return following, [
            (first + i, call)
            for i, call in enumerate(calls)
            if call.transport != TRANSPORT_FIXTURE  # the fixture's own seeding calls
        ]

    def on_calls(self, request: Request) -> Response:
        _only(request.args, {"since", "limit", *DATA_FILTER_KEYS}, "query")
        paging = "since" in request.args
        since = _query_int(request, "since", 0) or 0
        limit = _query_int(request, "limit", None)
        flt = _call_filter(_query_filter(request))
        following, numbered = self._numbered(since)
        if flt is not None:
            numbered = [(n, call) for n, call in numbered if flt.matches(call)]
        if limit is not None and len(numbered) > limit:
            if paging:
                # Paging: the first `limit` from `since` on, and `next` right after them,
                # so that following `next` skips nothing.
                numbered = numbered[:limit]
                following = numbered[-1][0] + 1 if numbered else since
            else:
                numbered = numbered[len(numbered) - limit :]  # no `since`: the latest ones
        return _json({"calls": [_call_view(n, c) for n, c in numbered], "next": following})

    def on_count(self, request: Request) -> Response:
        """How many calls match a filter, and the closest that do not (with why), as
        ``assert_requested`` tells them."""
        data = _body(request, empty_ok=True)
        _only(data, {"since", "times", *DATA_FILTER_KEYS}, "count")
        since = _int(data.get("since", 0), "since", 0)
        times = data.get("times")
        if times is not None:
            times = _int(times, "times", 0)
        criteria = {k: v for k, v in data.items() if k not in ("since", "times")}
        flt = _call_filter(criteria) or CallFilter()
        following, numbered = self._numbered(since)
        calls = [call for _, call in numbered]
        matched = [n for n, call in numbered if flt.matches(call)]
        near, total = closest(calls, flt)
        return _json(
            {
                "count": len(matched),
                "filter": flt.describe(),
                "matched": matched,
                "closest": [
                    {"call": _call_view(numbered[position][0], call), "missed": missed}
                    for position, call, missed in near
                ],
                "unmatched": total,
                "message": requested_failure(calls, flt, times),
                "next": following,
            }
        )


def _query_filter(request: Request) -> dict[str, Any]:
    """The filter keys of a query string as JSON data: a repeated or comma-separated
    ``method``, ``transport`` or ``status`` is a list."""
    data: dict[str, Any] = {}
    for key in DATA_FILTER_KEYS:
        values = request.args.getlist(key)
        if not values:
            continue
        if key in ("method", "transport", "status"):
            items: list[Any] = [item for value in values for item in value.split(",")]
            if key == "status":
                items = [int(i) if i.isascii() and i.isdigit() and len(i) < 4 else i for i in items]
            data[key] = items[0] if len(items) == 1 else items
        elif len(values) > 1:
            raise ControlError(f"{key} given {len(values)} times; give it once")
        else:
            data[key] = values[0]
    return data


def _call_filter(data: Mapping[str, Any]) -> CallFilter | None:
    """The journal filter of JSON ``data`` (None when it has no criterion)."""
    if not data:
        return None
    try:
        return CallFilter.from_data(data)
    except (TypeError, ValueError) as exc:
        raise ControlError(f"bad call filter: {exc}") from None


def _is_dashboard_file(request: Request) -> bool:
    """The dashboard's page, script or style: static files of the package, no data in
    them, so no token is needed (a browser cannot send one when it opens a page)."""
    if request.method not in ("GET", "HEAD"):
        return False
    return request.path == PREFIX or request.path.startswith(f"{PREFIX}static/")


def check_token(token: str) -> str:
    """``token`` if it can travel in an ``Authorization`` header (visible ASCII)."""
    if not isinstance(token, str) or not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ControlError("a control token is one or more visible ASCII characters, no blanks")
    return token


def _bare(host: str) -> str:
    """A host name or address as compared: lower case, no brackets, no final dot."""
    return host.strip().lower().strip("[]").rstrip(".")


def _split_host(value: str) -> tuple[str | None, int | None]:
    """``Host`` as (name, port); (None, None) when it cannot be read."""
    value = value.strip().lower()
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None, None
    if parts.hostname is None or parts.path or parts.username is not None:
        return None, None
    return _bare(parts.hostname), port


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether ``origin`` is ``scheme://host`` (default ports made explicit)."""
    try:
        parts = urlsplit(origin.strip().lower())
        origin_port = parts.port
    except ValueError:
        return False  # "null" (a sandboxed or file: page) lands here or below
    if parts.scheme != scheme or parts.hostname is None:
        return False
    name, port = _split_host(host)
    default = _DEFAULT_PORTS.get(scheme)
    return _bare(parts.hostname) == name and (origin_port or default) == (port or default)


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
    expired = expired_members(app)
    views = (token_view(app, token, base, expired) for token in app.token_names())
    return [view for view in views if view is not None]


def token_view(
    app: DiscoveryApp, token: str, base: str, expired: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any] | None:
    """One token as ``GET /_fake/tokens`` lists it; None when it is not in the store.

    ``expired``: :func:`expired_members`, read once for all the tokens listed.
    """
    store = app.store
    key = app.token_key(token)
    try:
        node = store.get(key, sorted=True).to_json()["node"]
    except EtcdError:
        return None  # expired or deleted since the listing
    if not node.get("dir"):
        return None
    members = sorted(
        (_member_view(n) for n in node.get("nodes", []) or [] if not n.get("dir")),
        key=lambda m: int(m["createdIndex"]),
    )
    present = {m["key"] for m in members}
    raw_size = _value(store, f"{key}/_config/size")
    return {
        "token": token,
        "url": f"{base}/{token}",
        "size": _size(raw_size),
        "size_value": raw_size,
        "state": _value(store, f"{key}/_state"),
        "members": members,
        # Registered once, expired since (and not registered again): not "none yet".
        "expired": [m for m in expired.get(token, []) if m["key"] not in present],
        "createdIndex": node.get("createdIndex"),
    }


def expired_members(app: DiscoveryApp) -> dict[str, list[dict[str, Any]]]:
    """The members whose key expired, per token, as far as the store's event history
    (its last 1000 events) still tells: one pass for a whole listing."""
    prefix = f"{app.token_key('')}"  # the tokens' parent with its final "/"
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for event in app.store.history_events():
        prev = event.prev_node
        if event.action != EXPIRE or prev is None or prev.get("dir"):
            continue
        token, _, name = event.key[len(prefix) :].partition("/")
        if not event.key.startswith(prefix) or not name or "/" in name or name.startswith("_"):
            continue
        view = _member_view(prev)
        view["expiredIndex"] = event.index
        found.setdefault(token, {})[view["key"]] = view  # the latest expiry of a key
    return {
        token: sorted(views.values(), key=lambda m: int(m["createdIndex"] or 0))
        for token, views in found.items()
    }


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
        # The expiry in seconds on the fake's clock: the dashboard counts down to it.
        "expires": _seconds(node.get("expiration")),
        "createdIndex": node.get("createdIndex"),
    }


def _seconds(rfc3339: Any) -> float | None:
    """Go's RFC 3339 time (nanoseconds, UTC) as seconds since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", str(rfc3339))
    if match is None:
        return None
    whole = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return whole.timestamp() + float(match[2] or 0)


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
        "route": call.route,
        "watch": call.watch,
        "headers": [list(pair) for pair in call.headers],
        "body": call.body,
        "body_size": call.body_size,
        "truncated": call.truncated,
        "created_url": call.created_url,
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
            expire = _int(node["expireNs"], f"{path} expireNs", 0)
            if expire >= 2**63:
                # etcd keeps an expiry as int64 nanoseconds: it ends in April 2262.
                raise ControlError(
                    f"{path} expireNs out of range: {expire} (at most 2^63-1, int64 nanoseconds)"
                )
        if "children" in node:
            if "value" in node or not isinstance(node["children"], list):
                raise ControlError(f"{path}: a directory has a children list and no value")
            stack.extend(node["children"])
        else:
            _str(node.get("value"), f"{path} value")
