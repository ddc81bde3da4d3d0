"""The two behaviour profiles: what differs between the real services we imitate.

A profile is an object that carries its behaviour: the service asks it how to answer a
token request, what counts as a long poll, and what body a faulted token request gets.

``etcd-v2`` (:class:`EtcdV2Profile`)
    coreos/discovery.etcd.io, the original service: a thin proxy in front of an
    etcd v2 keys API. Full v2 semantics, etcd's JSON errors, keys shown as
    ``/_etcd/registry/<token>/...``. The default, and what the seed article shows.
``discoveryserver`` (:class:`DiscoveryServerProfile`)
    etcd-io/discoveryserver, today's public service: an in-memory v2 store over
    etcd v3 whose PUT is always a plain set, whose errors are plain-text 400s and
    whose watches give up after a minute with an empty 200. Its store is etcd's
    v2 API over v3 (``v2v3``): overwrites keep ``createdIndex``, watches replay the
    whole history, a directory GET echoes the path asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._constants import PROFILE_DISCOVERYSERVER, PROFILE_ETCD_V2
from .._v2store import errors
from .._v2store.errors import EtcdError
from .._v2store.events import GET as READ_ACTION
from .._v2store.events import Event
from .._v2store.rules import ETCD_V2 as ETCD_V2_STORE
from .._v2store.rules import V2_OVER_V3, StoreRules
from .._v2store.watchers import is_hidden
from .forms import Form, go_parse_bool, go_parse_uint64
from .go_net_http import bare_response, body_reply, http_error
from .keys import WatchWait, encoded, is_etcd_watch, time_left
from .messages import PROXIED, Later, Reply

if TYPE_CHECKING:
    from .discovery import DiscoveryService
    from .routes import Route  # werkzeug: loaded only when a request is routed

__all__ = [
    "DISCOVERYSERVER",
    "ETCD_V2",
    "PROFILES",
    "DiscoveryServerProfile",
    "EtcdV2Profile",
    "Profile",
    "get_profile",
]

ETCD_V2 = PROFILE_ETCD_V2
DISCOVERYSERVER = PROFILE_DISCOVERYSERVER

#: What etcd says when raft does not commit in time (``etcdserver.ErrTimeout``).
RAFT_TIMEOUT_CAUSE = "etcdserver: request timed out"
# etcd-v2 keys-API statuses and the error code etcd answers them with.
_ETCD_CODES = {
    401: errors.UNAUTHORIZED,
    403: errors.NOT_FILE,
    404: errors.KEY_NOT_FOUND,
    500: errors.RAFT_INTERNAL,
}
#: discoveryserver's 400 text per method (handlers/token.go).
_DS_TEXT = {"GET": "unable to GET token", "PUT": "unable to PUT token"}


@dataclass(frozen=True)
class Profile:
    """What one real service does differently; subclasses carry the behaviour."""

    name: str
    #: where tokens live in the store (and so the ``key`` prefix clients see)
    key_prefix: str
    #: where ``/`` redirects
    home_url: str
    #: how long a long poll waits before answering with an empty 200 (None: for ever)
    watch_timeout: float | None
    #: whether ``/v2/keys`` can serve the generic keys API (when switched on)
    serves_keys_api: bool
    #: ``/new`` and ``/health`` spend an extra index on a garbage-collection record
    gc_records: bool
    #: the body of a 400 when the store refuses to create a token
    new_error: str
    #: the store behind the service: etcd's v2 store, or its v2 API over v3
    store_rules: StoreRules

    def is_watch(self, method: str, form: Form) -> bool:
        """Whether a token request with ``form`` is a long poll."""
        raise NotImplementedError

    def answer_token(
        self, service: DiscoveryService, method: str, key: str, route: Route
    ) -> tuple[Reply, bool]:
        """Answer a token request for store ``key``; also whether ``/metrics`` counts it."""
        raise NotImplementedError

    def fault_reply(
        self, service: DiscoveryService, method: str, route: Route, status: int, code: int | None
    ) -> Reply | None:
        """The body this service sends with ``status`` on a token route (``code``: an
        etcd error code asked for); None: Go's ``http.Error`` text."""
        raise NotImplementedError


@dataclass(frozen=True)
class EtcdV2Profile(Profile):
    """The original service: every token request is proxied to etcd's keys API."""

    def is_watch(self, method: str, form: Form) -> bool:
        return is_etcd_watch(method, form)

    def answer_token(
        self, service: DiscoveryService, method: str, key: str, route: Route
    ) -> tuple[Reply, bool]:
        # The proxy copies etcd's reply (its whole head, Date and length included) and
        # flushes it at the end.
        reply = service.keys.answer(method, key, route.form, flush_early=False)
        reply.server_headers = PROXIED
        return reply, True

    def fault_reply(
        self, service: DiscoveryService, method: str, route: Route, status: int, code: int | None
    ) -> Reply | None:
        if code is None:
            code = self._etcd_code(route, status)
        if code is None:
            return None
        index = service.store.index
        if code == errors.RAFT_INTERNAL:
            err = EtcdError(code, RAFT_TIMEOUT_CAUSE, 0)  # etcd writes index 0 here
        elif code in (errors.KEY_NOT_FOUND, errors.NOT_FILE, errors.NODE_EXIST):
            err = EtcdError(code, self._store_key(route.path), index)
        elif code == errors.EVENT_INDEX_CLEARED:
            start = max(index - 999, 1)
            err = EtcdError(code, f"the requested history has been cleared [{start}/1]", index)
        else:
            err = EtcdError(code, "", index)
        return service.keys.error(err, status)  # an odd pairing asked for on purpose too

    @staticmethod
    def _etcd_code(route: Route, status: int) -> int | None:
        if status == 412:
            try:
                create = not go_parse_bool(route.form.get("prevExist"))
            except ValueError:
                create = False
            return errors.NODE_EXIST if create else errors.TEST_FAILED
        if status == 400:
            return errors.EVENT_INDEX_CLEARED if route.is_watch else errors.INVALID_FIELD
        return _ETCD_CODES.get(status)

    def _store_key(self, path: str) -> str:
        if path.startswith("/v2/keys"):
            return path[len("/v2/keys") :] or "/"
        return f"{self.key_prefix}{path}".rstrip("/") or "/"


@dataclass(frozen=True)
class DiscoveryServerProfile(Profile):
    """Today's discoveryserver: its own token handler over a v2 store."""

    def is_watch(self, method: str, form: Form) -> bool:
        return method == "GET" and form.get("wait") != ""

    def answer_token(
        self, service: DiscoveryService, method: str, key: str, route: Route
    ) -> tuple[Reply, bool]:
        store = service.store
        form = route.form
        event: Event
        if method == "GET":
            # A GET's form is its query; parse errors are ignored, as Go's FormValue does.
            try:
                recursive = go_parse_bool(form.get("recursive"))
            except ValueError:
                recursive = False
            try:
                wait_index = go_parse_uint64(form.get("waitIndex"))
            except ValueError:
                wait_index = 0
            if form.get("wait") != "":
                return Reply.late(self._watch(service, key, recursive, wait_index)), True
            try:
                event = store.get(key, recursive=recursive, sorted=True)
            except EtcdError:
                return http_error("unable to GET token", 400), True
        elif method == "DELETE":
            try:
                # Its store deletes as a directory: members and _state cannot be deleted.
                if not store.get(key).node.get("dir"):
                    return http_error("unable to DELETE token", 400), True
                event = store.delete(key, dir=True, recursive=True)
            except EtcdError:
                return http_error("unable to DELETE token", 400), True
        else:
            try:
                event = store.set(key, form.get("value"))
            except EtcdError:
                return http_error("unable to PUT token", 400), True
        return self._event(event), True

    @staticmethod
    def _event(event: Event) -> Reply:
        return body_reply(
            200,
            encoded(event, line=False, keep=event.action == READ_ACTION),
            [("X-Etcd-Index", str(event.etcd_index))],
            "application/json",
        )

    def _watch(
        self, service: DiscoveryService, key: str, recursive: bool, wait_index: int
    ) -> Later:
        """discoveryserver's long poll over its v2v3 store (a late reply: it waits).

        It asks for v3 revision ``waitIndex + 1``, which is v2 index ``waitIndex``: the
        first event at or after ``waitIndex`` (no ``waitIndex``: from the oldest one kept).
        Its watcher drops events below the key through a ``_`` name, replayed ones too.
        When it gives up: an empty 200, returned before it is counted.
        """
        left = time_left(self.watch_timeout)
        store = service.store
        since = max(wait_index, 1, store.hub.history.start_index)
        gave_up = bare_response(200)
        gave_up.uncounted = True
        while True:
            try:
                watcher = store.watch(key, recursive=recursive, since_index=since)
            except EtcdError:
                return gave_up
            try:
                waiting = WatchWait(watcher, left)
                while not waiting.ready():
                    yield waiting
                event = watcher.poll()
            finally:
                watcher.remove()
            if event is None:
                return gave_up
            if event.key == key or not is_hidden(key, event.key):
                return self._event(event)
            since = event.index + 1

    def fault_reply(
        self, service: DiscoveryService, method: str, route: Route, status: int, code: int | None
    ) -> Reply | None:
        if status == 400:
            # handlers/token.go answers every store error the same way, per method.
            return http_error(_DS_TEXT.get(method, "unable to DELETE token"), 400)
        return None


PROFILES: dict[str, Profile] = {
    ETCD_V2: EtcdV2Profile(
        name=ETCD_V2,
        key_prefix="/_etcd/registry",
        home_url="https://coreos.com/docs/cluster-management/setup/cluster-discovery/",
        watch_timeout=None,  # etcd's defaultWatchTimeout is MaxInt64; the proxy sets none
        serves_keys_api=True,
        gc_records=False,
        new_error="Unable to generate token",
        store_rules=ETCD_V2_STORE,
    ),
    DISCOVERYSERVER: DiscoveryServerProfile(
        name=DISCOVERYSERVER,
        key_prefix="",
        home_url="https://etcd.io/docs/v3.5/dev-internal/discovery_protocol",
        watch_timeout=60.0,
        serves_keys_api=False,
        gc_records=True,
        new_error="unable to generate token",
        store_rules=V2_OVER_V3,
    ),
}


def get_profile(profile: str | Profile) -> Profile:
    """The profile called ``profile``; a clear error names the valid ones."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        names = ", ".join(PROFILES)
        raise ValueError(f"unknown profile {profile!r} (choose one of: {names})") from None
