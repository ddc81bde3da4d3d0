"""pytest plugin: a fake etcd discovery service (discovery.etcd.io) for every test.

Registered as the ``etcd_discovery`` ``pytest11`` entry point.  This module stays thin:
options, ini values, the marker, fixtures and report hooks.  The fake lives in
:mod:`~pytest_etcd_discovery.transport.server` /
:mod:`~pytest_etcd_discovery.service` (its entry point:
:mod:`~pytest_etcd_discovery.service.discovery`), interception in
:mod:`~pytest_etcd_discovery.transport.intercept`, the per-test object in
:mod:`~pytest_etcd_discovery.handle` and the failure section in
:mod:`~pytest_etcd_discovery.report`.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import pytest

from .constants import (
    DEFAULT_HOSTS,
    FAULT_MARKER,
    FAULT_MARKER_DOC,
    MARKER,
    PROFILE_NAMES,
    normalize_host,
)

# The fake loads when a test first uses it, and only what that test needs: werkzeug and
# the live server for the fixture, requests and responses for interception or a real
# service.  Installing the plugin costs unrelated test runs next to nothing.
if TYPE_CHECKING:
    from ._etcd import MemberSpec
    from .handle import EtcdDiscovery
    from .transport.forward import ForwardApp
    from .transport.proxy import DiscoveryFront
    from .transport.server import DiscoveryServer
    from .v2store.clock import ControllableClock

__all__ = ["MARKER", "PROFILES"]

# The names only: importing ``service.profiles`` here would load the store and the
# service (~50 ms) in every pytest run that has the plugin installed.
PROFILES = PROFILE_NAMES  # the profile names, default first
_MARKER_KWARGS = frozenset({"size", "profile", "members", "state", "frozen", "keys_api", "strict"})


def _service_url(value: str, what: str) -> str:
    """``value`` checked as a discovery service's base URL: ``http(s)://host[:port][/path]``."""
    text = value.strip()
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or past 65535
        port_ok = False
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it must start with http:// or https://"
    elif not parts.hostname or not port_ok:
        problem = "it needs a host (and a valid port, if any)"
    elif parts.query or parts.fragment or "@" in parts.netloc:
        problem = "it may not carry a query, a fragment or user info"
    if problem:
        raise pytest.UsageError(f"{what}: {value!r} is not a discovery service URL: {problem}")
    return text.rstrip("/")


def _ini_bool(config: pytest.Config, name: str) -> bool:
    """A bool ini value; a bad one is a usage error that names it."""
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest 9.2 raises the latter itself
        raise pytest.UsageError(f"{name}: {exc} (use true or false)") from None


_OUR_MARKERS = frozenset({MARKER, FAULT_MARKER})


class _Session:
    """Per-run plugin state: the options, and the live servers (one per profile, lazy).

    Each pytest-xdist worker is its own pytest run, so it gets its own servers.
    """

    def __init__(self, config: pytest.Config) -> None:
        cli_fake = bool(config.getoption("etcd_discovery_fake"))
        cli_url = config.getoption("etcd_discovery_url") or None
        if cli_fake and cli_url:
            raise pytest.UsageError(
                "--etcd-discovery-fake and --etcd-discovery-url exclude each other: "
                "interception serves the fake, the URL selects a real service"
            )
        if cli_url:
            cli_url = _service_url(cli_url, "--etcd-discovery-url")
        ini_fake = _ini_bool(config, "etcd_discovery_fake")
        ini_url = config.getini("etcd_discovery_url") or None
        if not (cli_fake or cli_url) and ini_fake and ini_url:
            raise pytest.UsageError(
                "ini values etcd_discovery_fake and etcd_discovery_url exclude each other"
            )
        if ini_url and not (cli_fake or cli_url):
            ini_url = _service_url(ini_url, "etcd_discovery_url (ini)")
        # The command line beats the ini file, so a nightly job can add
        # --etcd-discovery-url to a project whose ini turns the fake on.
        self.real_url: str | None = None if cli_fake else (cli_url or ini_url)
        #: Every test intercepts the discovery hosts: served by the fake, or, when a real
        #: URL won over the ini, forwarded to that service (never to the public one).
        self.intercept_all = cli_fake or ini_fake
        self.profile = str(_option_ini(config, "etcd_discovery_profile") or PROFILES[0])
        if self.profile not in PROFILES:
            raise pytest.UsageError(
                f"etcd_discovery_profile: {self.profile!r} is not one of {', '.join(PROFILES)}"
            )
        extra = []
        for host in (h.strip() for h in config.getini("etcd_discovery_hosts")):
            if host:
                if "://" not in host:
                    host = "https://" + host  # a bare name is an https host
                checked = _service_url(host, "etcd_discovery_hosts")
                if urlsplit(checked).path:
                    raise pytest.UsageError(
                        f"etcd_discovery_hosts: {host!r} has a path; give scheme://host[:port]"
                    )
                extra.append(checked)
        self.hosts = tuple(dict.fromkeys(normalize_host(h) for h in (*DEFAULT_HOSTS, *extra)))
        if self.real_url:
            from .constants import forwarded_hosts

            # Served by forwarding to the configured service: never its own host name.
            self.hosts = forwarded_hosts(self.hosts, self.real_url)
        self.listen_host = str(config.getini("etcd_discovery_listen_host") or "127.0.0.1")
        #: Serve the generic keys API at /v2/keys (the real service answers 404 there).
        self.keys_api = bool(_option_ini(config, "etcd_discovery_keys_api"))
        #: Strict mode for every test (a marker's ``strict=`` overrides it per test).
        self.strict = bool(_option_ini(config, "etcd_discovery_strict"))
        self._servers: dict[str, DiscoveryServer] = {}
        self._fronts: dict[str, DiscoveryFront] = {}
        #: Real mode: the one forwarder to the configured service (interception, front).
        self._forward: ForwardApp | None = None
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "real" if self.real_url else "fake"

    def server(self, profile: str | None = None) -> DiscoveryServer:
        """The live server for ``profile`` (in real mode: the forwarder), started on
        first use."""
        from .service.app import DiscoveryApp
        from .service.control import ControlApp
        from .transport.server import DiscoveryServer

        profile = profile or self.profile
        forward = self.forward() if self.real_url else None
        with self._lock:
            server = self._servers.get(profile)
            if server is None:
                if forward is not None:
                    from .transport.forward import forwarding_server

                    # Real mode: the TLS front's backend forwards to the configured service.
                    server = forwarding_server(forward, self.listen_host)
                else:
                    app = DiscoveryApp(profile=profile, keys_api=self.keys_api)
                    # The control API (/_fake/) in front, for test code in other languages.
                    server = DiscoveryServer(self.listen_host, 0, app=app, wsgi_app=ControlApp(app))
                server.start()
                self._servers[profile] = server
            return server

    def forward(self) -> ForwardApp:
        """Real mode: what serves the discovery hosts, made on first use."""
        from .transport.forward import ForwardApp

        with self._lock:
            if self._forward is None:
                self._forward = ForwardApp(self.real_url or "")
            return self._forward

    def front(self, profile: str | None = None) -> DiscoveryFront:
        """The TLS + proxy front of the live server for ``profile`` (in real mode: of
        the forwarder), started on first use with the session's test CA."""
        from .transport.proxy import DiscoveryFront
        from .transport.tls import session_ca

        profile = profile or self.profile
        server = self.server(profile)
        with self._lock:
            front = self._fronts.get(profile)
            if front is None:
                front = DiscoveryFront(server, self.hosts, session_ca(), host=self.listen_host)
                front.start()
                self._fronts[profile] = front
            return front

    def started_url(self) -> str | None:
        server = self._servers.get(self.profile)
        return server.url if server is not None else None

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            fronts, self._fronts = list(self._fronts.values()), {}
        for front in fronts:
            front.stop()
        if self._forward is not None:
            self._forward.close()  # before the forwarder's stop waits for its threads
        for server in servers:
            server.stop()


_SESSION_KEY = pytest.StashKey[_Session]()
#: The test's EtcdDiscovery, for the failure section.
_DISCO_KEY = pytest.StashKey["EtcdDiscovery"]()
#: Whether the test's call phase passed (strict mode checks only tests that did).
_PASSED_KEY = pytest.StashKey[bool]()
#: Strict mode's findings and the state they were found in, for the teardown report.
_STRICT_SECTION_KEY = pytest.StashKey[str]()


def _option_ini(config: pytest.Config, name: str) -> Any:
    """The command-line value of ``name`` if given, else the ini value (like logging)."""
    value = config.getoption(name)
    if value is None:
        value = config.getini(name)
    return value


def _add_option_ini(
    parser: pytest.Parser, group: Any, option: str, dest: str, ini_type: Any, **kwargs: Any
) -> None:
    # One helper pairs each option with its ini value so both spellings stay in step.
    parser.addini(dest, type=ini_type, default=None, help=kwargs["help"])
    group.addoption(option, dest=dest, default=None, **kwargs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etcd-discovery", "etcd discovery fake")
    _add_option_ini(
        parser,
        group,
        "--etcd-discovery-fake",
        "etcd_discovery_fake",
        "bool",
        action="store_true",
        help="serve calls to https://discovery.etcd.io (and etcd_discovery_hosts) from the "
        "fake, in every test (requests in-process, other clients over TLS)",
    )
    _add_option_ini(
        parser,
        group,
        "--etcd-discovery-profile",
        "etcd_discovery_profile",
        "string",
        choices=PROFILES,
        help="which service the fake behaves like: etcd-v2 (original, default) or "
        "discoveryserver (today's discovery.etcd.io)",
    )
    _add_option_ini(
        parser,
        group,
        "--etcd-discovery-url",
        "etcd_discovery_url",
        "string",
        metavar="URL",
        help="run the etcd_discovery fixtures against a real discovery service at URL; "
        "tests needing the fake's insides skip",
    )
    _add_option_ini(
        parser,
        group,
        "--etcd-discovery-keys-api",
        "etcd_discovery_keys_api",
        "bool",
        action="store_true",
        help="also serve the generic etcd v2 keys API at /v2/keys (for custom discovery "
        "URLs); off by default, as the real service answers 404 there",
    )
    _add_option_ini(
        parser,
        group,
        "--etcd-discovery-strict",
        "etcd_discovery_strict",
        "bool",
        action="store_true",
        help="strict mode for every test: fail at teardown when a fault rule never fired "
        "or a request was still in flight (per test: @etcd_discovery(strict=...))",
    )
    parser.addini(
        "etcd_discovery_hosts",
        type="linelist",
        default=[],
        help="extra discovery base URLs to intercept besides https://discovery.etcd.io",
    )
    parser.addini(
        "etcd_discovery_listen_host",
        type="string",
        default="127.0.0.1",
        help="address the fake's live server listens on (a free port is chosen)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "etcd_discovery(size=3, profile=None, members=None, state=None, frozen=False, "
        "keys_api=False, strict=None): seed and configure this test's fake discovery "
        "service (keys_api: also serve the etcd v2 keys API at /v2/keys) and intercept "
        "https://discovery.etcd.io for the test; strict=True fails it at teardown when a "
        "fault rule never fired or a request was still in flight",
    )
    config.addinivalue_line("markers", FAULT_MARKER_DOC)
    config.stash[_SESSION_KEY] = _Session(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.close()
        del config.stash[_SESSION_KEY]


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash[_SESSION_KEY]
    if session.mode == "real":
        forwarding = session.intercept_all and session.hosts
        forwarded = ", forwarding " + " ".join(session.hosts) if forwarding else ""
        return [f"etcd-discovery: mode=real, url={session.real_url}{forwarded}"]
    if session.intercept_all:
        mode = "fake, intercepting " + " ".join(session.hosts)
        if getattr(config.option, "numprocesses", None):
            live = "one per xdist worker"
        else:
            # Started now so the header can name it; the session fixture reuses it.
            live = session.server().url
    else:
        mode = "fake (per fixture or marker)"
        live = session.started_url() or "started on first use"
    return [f"etcd-discovery: mode={mode}, profile={session.profile}, live url={live}"]


def _our_marks(item: pytest.Item) -> tuple[list[pytest.Mark], list[pytest.Mark]]:
    """The test's ``etcd_discovery`` and ``etcd_discovery_fault`` markers, nearest first,
    in one walk up the tree rather than one per marker name."""
    config: list[pytest.Mark] = []
    faults: list[pytest.Mark] = []
    for mark in item.iter_markers():
        if mark.name == MARKER:
            config.append(mark)
        elif mark.name == FAULT_MARKER:
            faults.append(mark)
    return config, faults


def _marker_config(markers: list[pytest.Mark]) -> dict[str, Any] | None:
    """Merged ``etcd_discovery`` marker kwargs, the closest marker winning (test > class
    > module), checked, or None when the test has no such marker."""
    if not markers:
        return None
    merged: dict[str, Any] = {}
    for mark in reversed(markers):
        if mark.args:
            _bad_marker(f"@{MARKER} takes keyword arguments only, got {mark.args!r}")
        unknown = set(mark.kwargs) - _MARKER_KWARGS
        if unknown:
            _bad_marker(
                f"@{MARKER} got unknown arguments {sorted(unknown)}; "
                f"known: {sorted(_MARKER_KWARGS)}"
            )
        merged.update(mark.kwargs)
    _check_marker(merged)
    return merged


def _check_marker(config: Mapping[str, Any]) -> None:
    size = config.get("size", 3)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        _bad_marker(f"@{MARKER}(size={size!r}): size must be a positive integer")
    profile = config.get("profile")
    if profile is not None and profile not in PROFILES:
        _bad_marker(f"@{MARKER}(profile={profile!r}): not one of {', '.join(PROFILES)}")
    frozen = config.get("frozen", False)
    if not isinstance(frozen, bool):
        _bad_marker(f"@{MARKER}(frozen={frozen!r}): frozen must be True or False")
    state = config.get("state")
    if state is not None and not isinstance(state, str):
        _bad_marker(f"@{MARKER}(state={state!r}): state must be a string such as 'started'")
    _member_specs(config.get("members"))


def _bad_marker(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def _member_specs(members: Any) -> list[MemberSpec]:
    """The marker's ``members``, read by the rules the control API uses too."""
    # Loaded here: a run whose markers seed no members never needs the etcd rules.
    from ._etcd import MemberSpecError, member_specs

    try:
        return member_specs(members, what=f"@{MARKER}(members=...)")
    except MemberSpecError as exc:
        problem = str(exc)
    _bad_marker(problem)  # outside the except: the failure shows one line, no chain


def _seed(disco: EtcdDiscovery, config: Mapping[str, Any]) -> None:
    """Create the marker's token and put its members and ``_state`` in it."""
    if not ({"size", "members", "state"} & set(config)):
        return
    from ._etcd import STYLE_V04

    token_url = disco.new_token(config.get("size", 3))
    disco.seeded_url = token_url
    for name, urls, style in _member_specs(config.get("members")):
        if style == STYLE_V04:
            disco.register_v04(token_url, name, urls[0], start=False)
        else:
            # Seeding writes what it is told, even past the size (a reused token).
            disco.register(token_url, name, urls, check_full=False)
    if config.get("state") is not None:
        disco.set_state(token_url, str(config["state"]))


@pytest.fixture(scope="session")
def etcd_discovery_server(pytestconfig: pytest.Config) -> DiscoveryServer:
    """The fake discovery service's live HTTP server, shared by the whole session
    (``.url`` such as ``http://127.0.0.1:41234``, ``.app``, ``.store``).

    Real processes such as ``etcd --discovery`` or ``curl`` can reach it.  State is reset
    for every test by the ``etcd_discovery`` fixture; under pytest-xdist each worker has
    its own server.  Skips when ``--etcd-discovery-url`` selects a real service.
    """
    session = pytestconfig.stash[_SESSION_KEY]
    if session.mode == "real":
        pytest.skip(f"etcd discovery: no fake server; using the real service {session.real_url}")
    return session.server()


@pytest.fixture
def etcd_discovery(request: pytest.FixtureRequest) -> Iterator[EtcdDiscovery]:
    """The etcd discovery service for this test, with fresh, isolated state:
    ``.url``, ``.new_token(size)``, ``.register(token_url, name, peer_urls)``,
    ``.token(token_url)``, ``.clock.advance(s)``, ``.calls``, ``.intercept()``
    (``pytest --fixtures -v`` shows the details).

    - ``.url``: live base URL (``http://127.0.0.1:PORT``), usable by subprocesses.
    - ``.new_token(size=3)``: a new token URL, like ``GET /new?size=3``.
    - ``.register(token_url, name, peer_urls)``: register a member as etcd 3.4 does (id
      derived as etcd derives it); ``.register_v04(...)``: as etcd 0.4 did (7-day TTL).
    - ``.token(token_url)``: size, members in createdIndex order, ``_state``, TTLs left.
    - ``.clock``: ``advance(seconds)``, ``freeze()``; expiring keys wake their watchers.
    - ``.calls``: the request journal (live and in-process), with
      ``.filter(method=, route=, path=, token=, status=, transport=)``;
      ``.snapshot()``/``.restore()``.
    - ``.assert_requested(times=None, **filters)``, ``.assert_not_requested(**filters)``,
      ``.assert_registered(token_url, names, state=None)``: fail with what was expected,
      what matched and the closest requests that did not.
    - ``.faults``: inject failures (5xx, delays, drops) for this test only;
      ``.faults.assert_all_fired()``.  Strict mode (``@etcd_discovery(strict=True)``, ini
      ``etcd_discovery_strict``) fails the test at teardown when a rule never fired or a
      request was still in flight.
    - ``with etcd_discovery.intercept(): ...``: serve calls to ``https://discovery.etcd.io``
      from this fake (automatic with ``--etcd-discovery-fake`` or the ``etcd_discovery``
      marker): ``requests`` in-process, ``urllib``, ``http.client``, ``httpx``, ``aiohttp``
      over TLS with a test CA.
    - ``.env()``: the environment for a child process (``curl``, ``etcd``) that should
      reach the fake at ``https://discovery.etcd.io``; ``.ca_file``: the CA bundle;
      ``.add_to(mock)``: let your own ``responses`` mock pass the discovery hosts through.

    With ``--etcd-discovery-url`` it talks to that real service instead (the marker's
    ``size``, ``members`` and ``state`` seed it over HTTP, interception forwards to it),
    and what needs the fake's insides (clock, journal, faults) skips the test.
    """
    from .handle import EtcdDiscovery

    node = request.node
    session = node.config.stash[_SESSION_KEY]
    config_marks, fault_marks = _our_marks(node)
    marker = _marker_config(config_marks)
    marked = marker is not None
    config = marker or {}
    if session.mode == "real":
        _skip_fake_only(session, config, fault_marks)
        disco = EtcdDiscovery(
            session.real_url or "",
            profile=session.profile,
            hosts=session.hosts,
            # Other clients and child processes reach the service through the front.
            front=partial(session.front, session.profile) if session.hosts else None,
            forward=session.forward(),
        )
        node.stash[_DISCO_KEY] = disco
        try:
            _seed(disco, config)
            if marked or session.intercept_all:
                # Code under test that calls https://discovery.etcd.io reaches the
                # configured service, never the public one.
                disco.start_intercept()
            yield disco
        finally:
            disco.stop_intercept()
        return

    from .v2store.clock import ControllableClock

    profile = str(config.get("profile") or session.profile)
    keys_api = config.get("keys_api", session.keys_api)
    if not isinstance(keys_api, bool):
        _bad_marker(f"@{MARKER}(keys_api={keys_api!r}): must be True or False")
    strict = config.get("strict", session.strict)
    if strict is None:
        strict = session.strict
    if not isinstance(strict, bool):
        _bad_marker(f"@{MARKER}(strict={strict!r}): expected True or False")
    server = session.server(profile)
    clock = ControllableClock()
    _fresh_state(server, clock)
    server.app.keys_api = keys_api
    disco = EtcdDiscovery(
        server.url,
        app=server.app,
        server=server,
        clock=clock,
        profile=profile,
        hosts=session.hosts,
        front=partial(session.front, profile),
    )
    node.stash[_DISCO_KEY] = disco
    strict_failure: str | None = None
    try:
        if config.get("frozen"):
            clock.freeze()
        _seed(disco, config)
        faulted = _apply_fault_markers(fault_marks, server)
        if marked or faulted or session.intercept_all:
            disco.start_intercept()
        yield disco
        if strict and node.stash.get(_PASSED_KEY, False):
            # Before the release below cuts off what is still in flight.
            strict_failure = _strict_check(node, disco)
    finally:
        disco.stop_intercept()
        # The test's journal stays its own: late requests still show there, and the next
        # test's requests do not.
        disco.keep_journal()
        errors = server.app.take_errors()
        # Wake anything still blocked in a long poll (threads, the live server) so no
        # request outlives its test; the next test starts from a fresh state anyway.
        _release(server)
        server.app.keys_api = session.keys_api
    if errors:
        # Like pytest-httpserver: an error inside the server fails the test that met it.
        shown = "\n".join(f"  {type(e).__name__}: {e}" for e in errors)
        pytest.fail(f"the fake discovery service failed internally (a bug in it):\n{shown}")
    if strict_failure is not None:
        pytest.fail(strict_failure, pytrace=False)


def _strict_check(node: pytest.Item, disco: EtcdDiscovery) -> str | None:
    """Strict mode's verdict on a test that passed: every fault rule fired, no request
    cut off by its end.  The findings and the state go to the report section."""
    from .expectations import strict_problems
    from .report import render

    unfired = disco.app.faults.unfired()
    problems = strict_problems(disco.calls, unfired)
    if not problems:
        return None
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    message = "\n".join(
        [f"etcd discovery strict mode: {count} at the end of the test:"]
        + [f"  {problem}" for problem in problems]
    )
    node.stash[_STRICT_SECTION_KEY] = f"{message}\n\n{render(disco)}"
    return message


def _skip_fake_only(
    session: _Session, config: Mapping[str, Any], fault_marks: list[pytest.Mark]
) -> None:
    """Against a real service, skip a test whose marks need the fake's insides."""
    where = f"this run uses the real service {session.real_url} (--etcd-discovery-url)"
    if fault_marks:
        pytest.skip(f"etcd discovery: @{FAULT_MARKER} needs the fake; {where}")
    if config.get("frozen"):
        pytest.skip(f"etcd discovery: @{MARKER}(frozen=True) needs the fake's clock; {where}")
    profile = config.get("profile")
    if profile is not None and profile != session.profile:
        pytest.skip(
            f"etcd discovery: @{MARKER}(profile={profile!r}) but the real service is "
            f"{session.profile!r} (--etcd-discovery-profile); {where}"
        )


def _fresh_state(server: DiscoveryServer, clock: ControllableClock) -> None:
    """Give the shared server an empty store driven by this test's clock."""
    server.app.reset(server.app.new_store(clock))


def _apply_fault_markers(marks: list[pytest.Mark], server: DiscoveryServer) -> bool:
    """Add one fault rule per ``etcd_discovery_fault`` marker (nearest first)."""
    if not marks:
        return False
    from .service.faults import FaultError, FaultPlan, rule_from_marker

    plan = FaultPlan.of(server.app)
    for mark in marks:
        try:
            plan.add(rule_from_marker(mark.args, mark.kwargs))
        except FaultError as exc:
            _bad_marker(str(exc))
    return True


def _release(server: DiscoveryServer) -> None:
    # reset() retires the test's store first: its blocked watches are released, and a
    # request still held by a fault is dropped when it goes on, instead of writing into
    # whatever store comes next.  The server keeps an empty store until the next test.
    server.app.reset()
    # Faults end with their test; releasing their delays now sends those requests to the
    # drop.
    server.app.faults.clear()


@pytest.fixture
def etcd_discovery_url(request: pytest.FixtureRequest, etcd_discovery: EtcdDiscovery) -> str:
    """A fresh token URL on the live service, for ``size`` members (from the
    ``etcd_discovery`` marker, default 3).  With the marker's ``members``/``state`` it is
    the token they were seeded into."""
    if etcd_discovery.seeded_url is not None:
        return etcd_discovery.seeded_url
    config = _marker_config(_our_marks(request.node)[0]) or {}
    return etcd_discovery.new_token(config.get("size", 3))


@pytest.fixture(autouse=True)
def _etcd_discovery_auto(request: pytest.FixtureRequest) -> None:
    """Turn the fake on for tests that ask through the flag, ini or marker.

    An autouse fixture, so it is set up before the test's own function-scoped fixtures
    (theirs already see the fake and interception) through pytest's public API alone;
    for other tests it is one check of the markers.
    """
    session = request.config.stash[_SESSION_KEY]
    if session.intercept_all or any(
        mark.name in _OUR_MARKERS for mark in request.node.iter_markers()
    ):
        request.getfixturevalue("etcd_discovery")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_PASSED_KEY] = report.passed
    if report.failed and report.when in ("setup", "call"):
        disco = item.stash.get(_DISCO_KEY, None)
        if disco is not None:
            from .report import SECTION_TITLE, render

            report.sections.append((SECTION_TITLE, render(disco)))
    elif report.failed and report.when == "teardown":
        # Strict mode failed the test: its findings, and the state before the release.
        section = item.stash.get(_STRICT_SECTION_KEY, None)
        if section is not None:
            from .report import SECTION_TITLE

            report.sections.append((SECTION_TITLE, section))
    return report
