"""Routing: what a request asks for, worked out once per request.

The :class:`Route` of a request is computed after Go's path cleaning, and dispatch,
faults, the journal and the metrics all read the same one. Route names are what fault
rules match (``route="new"``); :data:`ROUTES` lists them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Map, MapAdapter, Rule

from .._etcd_rules import TOKEN_RE
from .forms import Form
from .go_net_http import go_clean_path

__all__ = ["ENDPOINTS", "ROUTES", "Route", "Router", "TokenConverter"]

#: A path Go's mux redirects to its clean form before any handler (or fault) runs.
REDIRECT = "redirect"
#: A path no route serves (Go's "404 page not found").
NOT_FOUND = "notfound"
#: The service's endpoints: the names dispatch, metrics and fault rules use.
ENDPOINTS = (
    "home",
    "new",
    "health",
    "robots",
    "metrics",
    "token",
    "machine",
    "size",
    "keys",
)
#: Route names a fault rule can match: the endpoints, ``watch`` for any long poll
#: (a token or keys GET that waits) and ``*`` for all.
ROUTES = ("*", *ENDPOINTS, "watch")
#: The endpoints below a token (their key is below the token's).
TOKEN_ENDPOINTS = frozenset({"token", "machine", "size"})


class TokenConverter(BaseConverter):
    """A discovery token: 32 lowercase hex digits, nothing else (gorilla mux's regex)."""

    regex = TOKEN_RE.pattern


_RULES = [
    Rule("/", endpoint="home"),
    Rule("/new", endpoint="new"),
    Rule("/health", endpoint="health"),
    Rule("/robots.txt", endpoint="robots"),
    Rule("/metrics", endpoint="metrics"),
    Rule("/<token:token>", endpoint="token"),
    Rule("/<token:token>/", endpoint="token"),
    Rule("/<token:token>/<machine>", endpoint="machine"),
    Rule("/<token:token>/_config/size", endpoint="size"),
    # Always routed; the service serves the keys API only when switched on (else 404).
    Rule("/v2/keys", endpoint="keys"),
    Rule("/v2/keys/", endpoint="keys"),
    Rule("/v2/keys/<path:key>", endpoint="keys"),
]


def _adapter(rules: list[Rule]) -> MapAdapter:
    # Both slash spellings of a route are listed, so strict slashes never redirect;
    # Go's path cleaning is done before matching (go_net_http.redirect_to_clean).
    url_map = Map(
        rules,
        converters={"token": TokenConverter},
        strict_slashes=True,
        merge_slashes=False,
        redirect_defaults=False,
    )
    return url_map.bind("discovery.invalid")


#: The paths of member PUTs and keys writes: unique each, so the remembered routes
#: miss; a clean path of these shapes is routed without werkzeug (what it would find).
_MACHINE_PATH = re.compile(r"/([a-f0-9]{32})/[A-Za-z0-9_.~=:-]+")
_KEYS_PATH = re.compile(r"/v2/keys/[A-Za-z0-9_.~=:-][A-Za-z0-9_.~=:/-]*")

#: No rule depends on the host, scheme or method: one binding serves every request.
_ADAPTER = _adapter(_RULES)


@dataclass(frozen=True, slots=True)
class Route:
    """A request, routed.

    :param endpoint: one of :data:`ENDPOINTS`, :data:`REDIRECT` or :data:`NOT_FOUND`.
    :param path: the path as received (see :class:`~.messages.ServiceRequest`).
    :param token: the token of a token route, else "".
    :param form: the request's parameters as etcd reads them (body, then query).
    :param is_watch: a long poll: a GET on a token or keys route that waits, as the
        profile reads ``wait``.
    """

    endpoint: str
    path: str
    form: Form
    token: str = ""
    is_watch: bool = False

    def matches(self, name: str | None) -> bool:
        """Whether a fault rule's ``route`` (a name from :data:`ROUTES`) covers it."""
        if name is None or name == "*":
            return True
        if name == "watch":
            return self.is_watch
        return name == self.endpoint


class Router:
    """Maps paths to endpoints; remembers the routes of recent paths (clients poll
    the same token again and again, and matching costs more than answering)."""

    MAX_REMEMBERED = 256

    def __init__(self) -> None:
        self._adapter = _ADAPTER
        self._known: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def endpoint(self, path: str) -> tuple[str, str]:
        """``(endpoint, token)`` of ``path``: :data:`REDIRECT` for an unclean path."""
        known = self._known.get(path)
        if known is not None:
            return known
        if go_clean_path(path) != path:
            return REDIRECT, ""
        shaped = _MACHINE_PATH.fullmatch(path)
        if shaped is not None:
            return "machine", shaped.group(1)
        if _KEYS_PATH.fullmatch(path) is not None:
            return "keys", ""
        try:
            endpoint, args = self._adapter.match(path, "GET")
        except HTTPException:  # NotFound, or a redirect werkzeug would suggest
            found = (NOT_FOUND, "")
        else:
            found = (str(endpoint), str(args.get("token", "")))
        with self._lock:
            if len(self._known) >= self.MAX_REMEMBERED:
                self._known.clear()  # unique paths (member PUTs): stay bounded
            self._known[path] = found
        return found
