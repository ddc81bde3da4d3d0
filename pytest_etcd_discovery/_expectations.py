"""Expectations on what the code under test asked: filter the journal, check it, and say
clearly what did not happen.

:class:`CallList` is the journal a test reads (``etcd_discovery.calls``): a plain list
with :meth:`~CallList.filter`.  :class:`CallFilter` is one set of criteria (method, route,
path, token, status, transport); the ``*_failure`` functions build the messages the
handle's ``assert_*`` helpers raise, showing what was expected, what matched and the
closest requests that did not, each with the criteria it missed.  :func:`strict_problems`
is what strict mode checks at teardown.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

from ._etcd_rules import CALL_FILTER_KEYWORDS, TOKEN_RE, CallCriteria, token_of

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._model import TokenView
    from ._service.faults import FaultRule
    from ._service.journal import Call

__all__ = [
    "CALL_FILTER_KEYWORDS",
    "CLOSEST",
    "DATA_FILTER_KEYS",
    "CallCriteria",
    "CallFilter",
    "CallList",
    "check_not_requested",
    "check_registered",
    "check_requested",
    "closest",
    "not_requested_failure",
    "registered_failure",
    "requested_failure",
    "route_names",
    "strict_problems",
    "token_of",
]

#: How many of the closest non-matching requests a failure shows.
CLOSEST = 5


def route_names() -> tuple[str, ...]:
    """The route names a filter takes: the fake's endpoints (the names fault rules use),
    ``watch`` (any ``GET`` with ``wait=true``) and ``*`` (any)."""
    from ._service.routes import ROUTES

    return ROUTES


def _names(value: str | Iterable[str] | None, what: str, upper: bool) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{what}: expected a name or several, got {value!r}")
    return tuple(v.upper() for v in values) if upper else values


def _statuses(value: int | Collection[int] | None) -> int | Collection[int] | None:
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, Collection)):
        raise ValueError(f"status: expected a status or a collection of them, got {value!r}")
    if isinstance(value, Collection) and not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"status: expected integers, got {value!r}")
    return value


def _status_text(status: int | Collection[int]) -> str:
    if isinstance(status, int):
        return str(status)
    if isinstance(status, range) and status.step == 1 and len(status) > 1:
        return f"{status.start}..{status.stop - 1}"
    return "|".join(str(s) for s in sorted(status))


def _one_of(values: tuple[str, ...]) -> str:
    return "|".join(values)


#: The keys of a filter given as JSON data (:meth:`CallFilter.from_data`): the keywords
#: of ``calls.filter(...)``, and ``path_regex`` for a regex as text (as fault rules).
DATA_FILTER_KEYS: tuple[str, ...] = (*CALL_FILTER_KEYWORDS, "path_regex")
#: A status range as text: ``500-599``.
_STATUS_RANGE = re.compile(r"([0-9]{1,3})-([0-9]{1,3})")


def _data_names(data: Mapping[str, Any], key: str) -> str | list[str] | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"{key}: expected a string or a non-empty list of strings, got {value!r}")


def _data_status(value: Any) -> int | frozenset[int] | None:
    """A status as JSON gives it: an integer, ``"500-599"``, or a list of those."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    statuses: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 999:
            statuses.add(item)
            continue
        match = _STATUS_RANGE.fullmatch(item) if isinstance(item, str) else None
        if match is None or int(match[1]) > int(match[2]):
            raise ValueError(
                'status: expected a status (0-999), a range such as "500-599" or a '
                f"list of them, got {json.dumps(item)}"
            )
        statuses.update(range(int(match[1]), int(match[2]) + 1))
    if not statuses:
        raise ValueError("status: expected at least one status, got []")
    if isinstance(value, int):
        return value
    return frozenset(statuses)


@dataclass(frozen=True)
class CallFilter:
    """Criteria on journal entries; ``None`` leaves a criterion out.

    :param method: a method or several (any case).
    :param route: a route name (:func:`route_names`): ``new``, ``token``, ``machine``,
        ``size``, ``health``, ``keys`` ..., ``watch`` for any long poll, ``*`` for any.
    :param path: the request path: exact, a glob (``"/*/_state"``) or a compiled regex
        (searched), as fault rules take it.
    :param token: a token or a token URL: requests for that token (any route).
    :param status: a status, or a collection of them (``range(500, 600)``); ``0`` is a
        dropped connection.  Requests still being answered have no status yet.
    :param transport: ``live``, ``inprocess`` or another transport's tag, or several.
    """

    method: tuple[str, ...] | None = None
    route: str | None = None
    path: str | re.Pattern[str] | None = None
    token: str | None = None
    status: int | Collection[int] | None = None
    transport: tuple[str, ...] | None = None

    @classmethod
    def make(cls, **criteria: Unpack[CallCriteria]) -> CallFilter:
        """A filter from user input (the keywords of :data:`CALL_FILTER_KEYWORDS`),
        checked: a bad criterion raises ``ValueError``, an unknown keyword ``TypeError``."""
        unknown = sorted(set(criteria) - set(CALL_FILTER_KEYWORDS))
        if unknown:
            raise TypeError(
                f"unknown filter keywords {unknown}; known: {', '.join(CALL_FILTER_KEYWORDS)}"
            )
        method = criteria.get("method")
        route = criteria.get("route")
        path = criteria.get("path")
        token = criteria.get("token")
        if route is not None and route not in route_names():
            raise ValueError(f"unknown route {route!r} (one of: {', '.join(route_names())})")
        if path is not None and not isinstance(path, (str, re.Pattern)):
            raise ValueError(f"path: expected a path, a glob or a compiled regex, got {path!r}")
        return cls(
            method=_names(method, "method", upper=True),
            route=None if route == "*" else route,
            path=path,
            token=None if token is None else token_of(token),
            status=_statuses(criteria.get("status")),
            transport=_names(criteria.get("transport"), "transport", upper=False),
        )

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CallFilter:
        """A filter from JSON data, as the control API takes it: the keywords of
        :meth:`make` (``status`` also as ``"500-599"`` or a list) and ``path_regex`` (a
        regex as text, searched); a bad or unknown key raises ``ValueError``."""
        unknown = sorted(set(data) - set(DATA_FILTER_KEYS))
        if unknown:
            raise ValueError(f"unknown filter keys {unknown}; known: {', '.join(DATA_FILTER_KEYS)}")
        criteria: CallCriteria = {}
        for key in ("method", "transport"):
            names = _data_names(data, key)
            if names is not None:
                criteria[key] = names
        for key in ("route", "path", "token", "path_regex"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"{key}: expected a string, got {json.dumps(data[key])}")
        if data.get("route") is not None:
            criteria["route"] = data["route"]
        if data.get("token") is not None:
            criteria["token"] = data["token"]
        path, regex = data.get("path"), data.get("path_regex")
        if path is not None and regex is not None:
            raise ValueError("give path or path_regex, not both")
        if regex is not None:
            try:
                criteria["path"] = re.compile(regex)
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(f"path_regex {regex!r}: bad regex: {exc}") from None
        elif path is not None:
            criteria["path"] = path
        status = _data_status(data.get("status"))
        if status is not None:
            criteria["status"] = status
        return cls.make(**criteria)

    def mismatches(self, call: Call) -> list[str]:
        """How ``call`` misses this filter, one phrase per criterion; empty: it matches."""
        missed = []
        if self.method is not None and call.method not in self.method:
            missed.append(f"method {call.method}, not {_one_of(self.method)}")
        if self.route is not None:
            if self.route == "watch":
                if not call.watch:
                    missed.append("not a watch")
            elif call.route != self.route:
                missed.append(f"route {call.route or '(none)'}, not {self.route}")
        if isinstance(self.path, re.Pattern):
            if self.path.search(call.path) is None:
                missed.append(f"path does not match ~{self.path.pattern}")
        elif self.path is not None and not fnmatch.fnmatchcase(call.path, self.path):
            missed.append(f"path is not {self.path}")
        if self.token is not None and self.token not in call.path.split("/"):
            other = any(TOKEN_RE.fullmatch(part) for part in call.path.split("/"))
            missed.append("another token" if other else "no token")
        if self.status is not None and not _status_ok(call.status, self.status):
            got = "pending" if call.status is None else str(call.status)
            missed.append(f"status {got}, not {_status_text(self.status)}")
        if self.transport is not None and call.transport not in self.transport:
            missed.append(f"transport {call.transport}, not {_one_of(self.transport)}")
        return missed

    def matches(self, call: Call) -> bool:
        return not self.mismatches(call)

    def describe(self) -> str:
        """The criteria as one line, e.g. ``GET route=size token=0f3c... status=200``."""
        parts = []
        if self.method is not None:
            parts.append(_one_of(self.method))
        if self.route is not None:
            parts.append(f"route={self.route}")
        if isinstance(self.path, re.Pattern):
            parts.append(f"path~{self.path.pattern}")
        elif self.path is not None:
            parts.append(f"path={self.path}")
        if self.token is not None:
            parts.append(f"token={self.token}")
        if self.status is not None:
            parts.append(f"status={_status_text(self.status)}")
        if self.transport is not None:
            parts.append(f"transport={_one_of(self.transport)}")
        return " ".join(parts) or "any request"

    def closeness(self, call: Call, missed: Sequence[str]) -> tuple[int, float]:
        """A sort key, closest first: fewer criteria missed, then a more alike path."""
        like = self.path if isinstance(self.path, str) else None
        if like is None and self.token is not None:
            like = f"/{self.token}"
        similarity = difflib.SequenceMatcher(None, call.path, like).ratio() if like else 0.0
        return (len(missed), -similarity)


def _status_ok(got: int | None, wanted: int | Collection[int]) -> bool:
    if got is None:
        return False
    if isinstance(wanted, int):
        return got == wanted
    return got in wanted


class CallList(list["Call"]):
    """The request journal of a test: a list of :class:`~._service.app.Call`, oldest
    first, that can also be filtered."""

    def filter(self, **criteria: Unpack[CallCriteria]) -> CallList:
        """The calls matching every criterion given, in order: ``method``, ``route``,
        ``path``, ``token``, ``status``, ``transport`` (see :class:`CallFilter`), e.g.
        ``calls.filter(method="PUT", token=token_url, status=201)``."""
        flt = CallFilter.make(**criteria)
        return CallList(call for call in self if flt.matches(call))

    def __repr__(self) -> str:
        # One short item per call, so that pytest's assertion rewriting reads well:
        # "where filter = [<GET /health -> 200 (inprocess)>].filter".
        return "[" + ", ".join(f"<{call}>" for call in self) + "]"

    @overload
    def __getitem__(self, index: SupportsIndex) -> Call: ...

    @overload
    def __getitem__(self, index: slice) -> CallList: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Call | CallList:
        # A slice of the journal is a journal too (calls[-3:].filter(...)).
        if isinstance(index, slice):
            return CallList(super().__getitem__(index))
        return super().__getitem__(index)


# -- failure messages -------------------------------------------------------------------


def _call_line(call: Call) -> str:
    from ._report import render_call

    return render_call(call)


def closest(
    calls: Sequence[Call], flt: CallFilter, limit: int = CLOSEST
) -> tuple[list[tuple[int, Call, list[str]]], int]:
    """The ``limit`` calls closest to matching ``flt`` that do not, closest first, each
    as (its position in ``calls``, the call, the criteria it missed); and how many calls
    did not match in all.  What ``assert_requested`` shows and the control API's
    ``POST /_fake/calls/count`` answers."""
    scored = []
    for position, call in enumerate(calls):
        missed = flt.mismatches(call)
        if missed:
            scored.append((flt.closeness(call, missed), position, call, missed))
    scored.sort(key=lambda entry: (entry[0], entry[1]))
    return [(position, call, missed) for _, position, call, missed in scored[:limit]], len(scored)


def _closest_lines(calls: Sequence[Call], flt: CallFilter) -> list[str]:
    shown, total = closest(calls, flt)
    if not shown:
        return []
    lines = [f"  closest requests that did not match ({len(shown)} of {total}):"]
    for _, call, missed in shown:
        lines.append(f"  {_call_line(call)}  <- {'; '.join(missed)}")
    return lines


def _times(count: int) -> str:
    return "1 request" if count == 1 else f"{count} requests"


def requested_failure(
    calls: Sequence[Call], flt: CallFilter, times: int | None, hint: str | None = None
) -> str | None:
    """Why ``calls`` do not hold ``times`` requests matching ``flt`` (at least one when
    ``times`` is None); None when they do."""
    matched = [call for call in calls if flt.matches(call)]
    if (len(matched) >= 1) if times is None else (len(matched) == times):
        return None
    wanted = "at least 1 request" if times is None else f"exactly {_times(times)}"
    lines = [
        f"etcd discovery: expected {wanted} matching {flt.describe()}, got {len(matched)}",
    ]
    if matched:
        lines.append(f"  matched ({len(matched)}):")
        lines.extend(f"  {_call_line(call)}" for call in matched)
    lines.extend(_closest_lines(calls, flt))
    if not calls:
        lines.append("  the journal is empty: no request reached the fake in this test")
        if hint:
            lines.append(f"  ({hint})")
    return "\n".join(lines)


def not_requested_failure(calls: Sequence[Call], flt: CallFilter) -> str | None:
    """Why ``calls`` hold a request matching ``flt``; None when they hold none."""
    matched = [call for call in calls if flt.matches(call)]
    if not matched:
        return None
    lines = [f"etcd discovery: expected no request matching {flt.describe()}, got {len(matched)}:"]
    lines.extend(f"  {_call_line(call)}" for call in matched)
    return "\n".join(lines)


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


def registered_failure(
    view: TokenView, names: Sequence[str], state: str | None = None
) -> str | None:
    """Why ``view`` does not hold exactly ``names`` in registration order (and ``_state``
    ``state``, if given); None when it does."""
    got = view.names
    wanted = list(names)
    problems: list[str] = []
    if got != wanted:
        if sorted(got) == sorted(wanted):
            problems.append("  the same names, registered in another order")
        else:
            missing = [n for n in wanted if n not in got]
            extra = [n for n in got if n not in wanted]
            if missing:
                problems.append(f"  missing: {', '.join(missing)}")
            if extra:
                problems.append(f"  not expected: {', '.join(extra)}")
            doubled = sorted({n for n in got if got.count(n) > 1})
            if doubled:
                problems.append(f"  registered more than once: {', '.join(doubled)}")
    if state is not None and view.state != state:
        problems.append(f"  _state is {view.state!r}, expected {state!r}")
    if not problems:
        return None
    from ._report import render_token

    lines = [
        f"etcd discovery: token {view.url} holds members {_listing(got)}; expected "
        f"{_listing(wanted)} (in registration order)"
        + ("" if state is None else f" with _state {state!r}"),
        *problems,
        "  the token now:",
        *(f"  {line}" for line in render_token(view)),
    ]
    return "\n".join(lines)


# -- the handle's assert_* helpers: check, and fail with the message above ---------------


def check_requested(
    calls: Callable[[], Sequence[Call]],
    times: int | None,
    criteria: CallCriteria,
    hint: str | None = None,
) -> CallList:
    """Fail unless ``calls()`` hold ``times`` requests matching ``criteria`` (at least one
    when ``times`` is None); returns the matching calls.  The arguments are checked
    before the journal is read (reading it may skip the test against a real service)."""
    __tracebackhide__ = True
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
        raise ValueError(f"times: expected a count >= 0, got {times!r}")
    flt = CallFilter.make(**criteria)
    journal = calls()
    message = requested_failure(journal, flt, times, hint)
    if message is not None:
        raise AssertionError(message)
    return CallList(call for call in journal if flt.matches(call))


def check_not_requested(calls: Callable[[], Sequence[Call]], criteria: CallCriteria) -> None:
    """Fail if ``calls()`` hold a request matching ``criteria``, listing each one."""
    __tracebackhide__ = True
    flt = CallFilter.make(**criteria)
    message = not_requested_failure(calls(), flt)
    if message is not None:
        raise AssertionError(message)


def check_registered(
    read: Callable[[str], TokenView], token_url: str, names: Sequence[str], state: str | None
) -> TokenView:
    """Fail unless the token ``read(token_url)`` shows holds exactly ``names`` in
    registration order (and ``_state`` ``state``, if given); returns the view."""
    __tracebackhide__ = True
    from ._model import DiscoveryError

    if isinstance(names, str):
        raise TypeError("names: expected a sequence of member names, not one string")
    try:
        view = read(token_url)
    except DiscoveryError as exc:
        raise AssertionError(f"etcd discovery: token {token_url} cannot be read: {exc}") from None
    message = registered_failure(view, names, state)
    if message is not None:
        raise AssertionError(message)
    return view


def strict_problems(calls: Iterable[Call], unfired: Iterable[FaultRule]) -> list[str]:
    """What strict mode fails a test for at teardown: each fault rule that never fired,
    and each request the end of the test cuts off (still pending or streaming, or
    dropped without a fault rule doing it)."""
    problems: list[str] = []
    rules = list(unfired)
    if rules:  # faults load only when a test has some
        from ._service.faults import unfired_lines

        problems.extend(f"fault rule never fired: {line}" for line in unfired_lines(rules))
    for call in calls:
        if call.in_flight:
            problems.append(f"request cut off by the end of the test: {_call_line(call).strip()}")
        elif call.status == 0 and call.fault is None:
            problems.append(f"request dropped unanswered: {_call_line(call).strip()}")
    return problems
