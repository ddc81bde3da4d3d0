"""pytest plugin: a fake etcd discovery service (discovery.etcd.io) for every test.

Registered as the ``etcd_discovery`` ``pytest11`` entry point.  This module stays thin:
options, ini values, markers, fixtures and report hooks.  What a run asked for is read in
:mod:`._settings`; the run's fake, its guard and the per-test builders live in
:mod:`._run`, the markers in :mod:`._marker`, the fake's parts in :mod:`._stack`, the
per-test object in :mod:`._etcd_discovery` and the failure section in :mod:`._report`.

The plugin fails closed: from before the first conftest is imported until the run ends,
a discovery host is served by a fake or refused at once (see :mod:`._transport.client_cover`).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._constants import FAULT_MARKER_DOC, MARKER, PROFILE_NAMES
from ._marker import marker_config, our_marks
from ._run import PluginRun
from ._settings import INI_ALLOW_REAL, INI_NAMES, MARKER_NAMES, Settings, misspelled
from ._transport.hosts import is_loopback

# The fake loads when a test first uses it, and only what that test needs: werkzeug and
# the live server for the fixture, requests and responses for interception or a real
# service.  Installing the plugin costs unrelated test runs next to nothing.
if TYPE_CHECKING:
    from ._etcd_discovery import EtcdDiscovery
    from ._transport.server import DiscoveryServer

__all__ = ["MARKER", "PROFILES"]

# The names only: importing ``service.profiles`` here would load the store and the
# service (~50 ms) in every pytest run that has the plugin installed.
PROFILES = PROFILE_NAMES  # the profile names, default first

_RUN_KEY = pytest.StashKey[PluginRun]()
#: The test's EtcdDiscovery, for the failure section.
_DISCO_KEY = pytest.StashKey["EtcdDiscovery"]()
#: Whether the test's call phase passed (strict mode checks only tests that did).
_PASSED_KEY = pytest.StashKey[bool]()
#: Strict mode's findings and the state they were found in, for the teardown report.
_STRICT_SECTION_KEY = pytest.StashKey[str]()


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
        INI_ALLOW_REAL,
        type="bool",
        default=False,
        help="let code that no fake serves reach the real discovery hosts (the plugin "
        "refuses them by default, from the first conftest to the end of the run)",
    )
    parser.addini(
        "etcd_discovery_listen_host",
        type="string",
        default="127.0.0.1",
        help="address the fake's live server listens on (a free port is chosen)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Before the first conftest is imported: the guard (and, under the flag, the fake)
    # must be on for conftest and import-time code too.
    namespace = parser.parse_known_args(args)
    settings = Settings.read(lambda name: getattr(namespace, name, None), early_config.getini)
    _begin(early_config, settings)


def _begin(config: pytest.Config, settings: Settings) -> PluginRun:
    run = PluginRun(settings)
    config.stash[_RUN_KEY] = run
    # Runs even when a later step of pytest's start fails (unlike pytest_unconfigure).
    config.add_cleanup(run.close)
    run.begin()
    return run


def pytest_warning_recorded(warning_message: warnings.WarningMessage, when: str) -> None:
    # pytest only warns about an unknown ini key (once collection is done, before any
    # test runs); one that looks like ours would leave tests without the fake they asked
    # for, so it stops the run.
    text = str(warning_message.message)
    prefix = "Unknown config option: "
    if when == "config" and text.startswith(prefix):
        key = text[len(prefix) :].strip()
        meant = misspelled(key, INI_NAMES)
        if meant is not None:
            raise pytest.UsageError(
                f"unknown ini value {key!r}: did you mean {meant!r}? (pytest-etcd-discovery "
                "stops at a near miss, which would leave tests without the fake)"
            )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "etcd_discovery(size=3, profile=None, members=None, state=None, frozen=False, "
        "keys_api=False, strict=None, intercept=True): seed and configure this test's fake "
        "discovery service (keys_api: also serve the etcd v2 keys API at /v2/keys) and "
        "intercept https://discovery.etcd.io for the test (intercept=False: only .url); "
        "strict=True fails it at teardown when a fault rule never fired or a request was "
        "still in flight",
    )
    config.addinivalue_line("markers", FAULT_MARKER_DOC)
    if _RUN_KEY not in config.stash:
        # Loaded after the initial conftests (``-p`` from a conftest, pytester's inline
        # runs with plugins=[...]): the run begins now.
        _begin(config, Settings.read(config.getoption, config.getini))
    listen_host = str(config.getini("etcd_discovery_listen_host") or "127.0.0.1")
    if not is_loopback(listen_host):
        # The front then serves the discovery hosts only (no relay to other hosts).
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"etcd_discovery_listen_host = {listen_host} is beyond loopback: anyone who "
                "reaches the fake's ports can use it; its TLS + proxy front refuses to "
                "tunnel or forward to any host but the discovery hosts"
            ),
            stacklevel=2,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A misspelled marker of ours only warns (or is an error under --strict-markers);
    # the test would then run without the fake it asked for.
    registered = {
        line.split("(", 1)[0].split(":", 1)[0].strip() for line in config.getini("markers")
    }
    for item in items:
        for mark in item.iter_markers():
            if mark.name in registered:
                continue
            meant = misspelled(mark.name, MARKER_NAMES)
            if meant is not None:
                raise pytest.UsageError(
                    f"{item.nodeid}: unknown marker {mark.name!r}: did you mean {meant!r}?"
                )


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash[_RUN_KEY]
    settings = run.settings
    if settings.mode == "real":
        forwarding = settings.intercept_all and settings.hosts
        forwarded = ", forwarding " + " ".join(settings.hosts) if forwarding else ""
        return [f"etcd-discovery: mode=real, url={settings.real_url}{forwarded}"]
    elsewhere = "refused" if settings.guard else f"not guarded ({INI_ALLOW_REAL})"
    if settings.intercept_all:
        mode = "fake, intercepting " + " ".join(settings.hosts) + " for the whole run"
    else:
        mode = f"fake for tests that use it (fixture or marker); elsewhere {elsewhere}"
    if getattr(config.option, "numprocesses", None):
        live = "one per xdist worker"
    else:
        live = run.started_url() or "started on first use"
    return [f"etcd-discovery: mode={mode}, profile={settings.profile}, live url={live}"]


@pytest.fixture(scope="session")
def etcd_discovery_server(pytestconfig: pytest.Config) -> DiscoveryServer:
    """The fake discovery service's live HTTP server, shared by the whole session
    (``.url`` such as ``http://127.0.0.1:41234``, ``.app``, ``.store``).

    Real processes such as ``etcd --discovery`` or ``curl`` can reach it.  Each test
    that uses ``etcd_discovery`` gets its own copy of the shared state; under
    pytest-xdist each worker has its own server.  Skips when ``--etcd-discovery-url``
    selects a real service.
    """
    run = pytestconfig.stash[_RUN_KEY]
    if run.mode == "real":
        pytest.skip(
            f"etcd discovery: no fake server; using the real service {run.settings.real_url}"
        )
    return run.stack().server


@pytest.fixture(scope="session")
def etcd_discovery_shared(pytestconfig: pytest.Config) -> EtcdDiscovery:
    """The fake's shared state, for session-scoped fixtures: a token made here is seen
    by every later test (each test gets its own copy of the shared state, so what a test
    writes never reaches the next one; module fixtures: ``etcd_discovery_module``).

    Same API as ``etcd_discovery``; its ``clock`` is the shared clock, its ``calls``
    the requests made while no test ran, its ``faults`` last until the next test starts.
    Code that calls ``https://discovery.etcd.io`` from a fixture is served under
    ``--etcd-discovery-fake``, or inside ``with etcd_discovery_shared.intercept():``.
    Against a real service (``--etcd-discovery-url``) it talks to that service.
    """
    run = pytestconfig.stash[_RUN_KEY]
    return run.shared() if run.mode == "fake" else run.real_handle()


@pytest.fixture(scope="module")
def etcd_discovery_module(pytestconfig: pytest.Config) -> Iterator[EtcdDiscovery]:
    """``etcd_discovery_shared`` for module-scoped fixtures: what the module's fixtures
    write to the shared state is seen by the module's tests and undone when the module
    ends, so other modules start from the shared state as it was before.
    """
    run = pytestconfig.stash[_RUN_KEY]
    if run.mode != "fake":
        yield run.real_handle()  # a real service keeps what it was told
        return
    with run.stack().module_scope():
        yield run.shared()


@pytest.fixture
def etcd_discovery(request: pytest.FixtureRequest) -> Iterator[EtcdDiscovery]:
    """The etcd discovery service for this test, on its own copy of the shared state
    (empty unless ``etcd_discovery_shared`` or run-wide code wrote to it):
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
    - Calls to ``https://discovery.etcd.io`` from this test are served by this fake:
      ``requests`` in-process, ``urllib``, ``http.client``, ``httpx``, ``aiohttp`` over
      TLS with a test CA (``@pytest.mark.etcd_discovery(intercept=False)``: only
      ``.url``; the discovery hosts are then refused).
    - ``.env()``: the environment for a child process (``curl``, ``etcd``) that should
      reach the fake at ``https://discovery.etcd.io``; ``.ca_file``: the CA bundle;
      ``.add_to(mock)``: let your own ``responses`` mock pass the discovery hosts through.

    With ``--etcd-discovery-url`` it talks to that real service instead (the marker's
    ``size``, ``members`` and ``state`` seed it over HTTP, interception forwards to it),
    and what needs the fake's insides (clock, journal, faults) skips the test.
    """
    node = request.node
    run = node.config.stash[_RUN_KEY]
    config_marks, fault_marks = our_marks(node)
    config = marker_config(config_marks) or {}
    strict = config.get("strict")
    if strict is None:
        strict = run.settings.strict
    strict_failure: str | None = None
    with run.for_test(config, fault_marks) as disco:
        node.stash[_DISCO_KEY] = disco
        yield disco
        if disco.is_fake and strict and node.stash.get(_PASSED_KEY, False):
            # Before the release at the end of the block cuts off what is in flight.
            strict_failure = _strict_check(node, disco)
    if disco.errors:
        # Like pytest-httpserver: an error inside the server fails the test that met it.
        shown = "\n".join(f"  {type(e).__name__}: {e}" for e in disco.errors)
        pytest.fail(f"the fake discovery service failed internally (a bug in it):\n{shown}")
    if strict_failure is not None:
        pytest.fail(strict_failure, pytrace=False)


def _strict_check(node: pytest.Item, disco: EtcdDiscovery) -> str | None:
    """Strict mode's verdict on a test that passed: every fault rule fired, no request
    cut off by its end.  The findings and the state go to the report section."""
    from ._expectations import strict_problems
    from ._report import render

    unfired = disco.app.faults.unfired()
    problems = strict_problems(disco.calls, unfired)
    v3 = disco._v3  # the v3 endpoint's rules too, if the test started it
    if v3 is not None:
        problems += [f"fault rule never fired: {r.describe()}" for r in v3.faults.unfired()]
    if not problems:
        return None
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    message = "\n".join(
        [f"etcd discovery strict mode: {count} at the end of the test:"]
        + [f"  {problem}" for problem in problems]
    )
    node.stash[_STRICT_SECTION_KEY] = f"{message}\n\n{render(disco)}"
    return message


@pytest.fixture
def etcd_discovery_url(request: pytest.FixtureRequest, etcd_discovery: EtcdDiscovery) -> str:
    """A fresh token URL on the live service, for ``size`` members (from the
    ``etcd_discovery`` marker, default 3).  With the marker's ``members``/``state`` it is
    the token they were seeded into."""
    if etcd_discovery.seeded_url is not None:
        return etcd_discovery.seeded_url
    config = marker_config(our_marks(request.node)[0]) or {}
    return etcd_discovery.new_token(config.get("size", 3))


@pytest.fixture(autouse=True)
def _etcd_discovery_auto(request: pytest.FixtureRequest) -> None:
    """Turn the fake on for tests that ask through the flag, ini or marker.

    An autouse fixture, so it is set up before the test's own function-scoped fixtures
    (theirs already see the fake and interception) through pytest's public API alone;
    for other tests it is one check of the markers.
    """
    run = request.config.stash[_RUN_KEY]
    if run.settings.intercept_all or any(
        mark.name in MARKER_NAMES for mark in request.node.iter_markers()
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
            from ._report import SECTION_TITLE, render

            report.sections.append((SECTION_TITLE, render(disco)))
    elif report.failed and report.when == "teardown":
        # Strict mode failed the test: its findings, and the state before the release.
        section = item.stash.get(_STRICT_SECTION_KEY, None)
        if section is not None:
            from ._report import SECTION_TITLE

            report.sections.append((SECTION_TITLE, section))
    return report
