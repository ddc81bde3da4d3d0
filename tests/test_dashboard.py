"""The dashboard (``GET /_fake/``) in a real headless Chromium, driven by selenium.

Every action of the page is clicked here and checked against the fake's state read over
the control API; the page's console must stay free of errors.  Needs Debian's
``chromium`` and ``chromium-driver`` and the ``selenium`` package; skips without them (a
failure under ``ETCD_DISCOVERY_REQUIRE_REAL=1``, as in ``.ci/run``).  The screenshots are
saved as test artifacts: in ``$ETCD_DISCOVERY_ARTIFACTS`` when set (``.ci/run`` sets it),
else in the test's ``tmp_path``.  Waits are WebDriverWait conditions, never sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from realutil import SKIP_PREFIX, skip_or_fail

from pytest_etcd_discovery import EtcdDiscovery

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

WAIT = 15.0
CHROMIUM = ("chromium", "chromedriver")
ARTIFACTS_ENV = "ETCD_DISCOVERY_ARTIFACTS"
SAVED_STATE = "etcd-discovery-state.json"


# -- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser saves what the dashboard downloads (the state snapshot)."""
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, kept off every network but loopback."""
    missing = [name for name in CHROMIUM if shutil.which(name) is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        skip_or_fail(f"{SKIP_PREFIX}: {', '.join(missing)} (the dashboard test needs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        # No name lookup may leave the machine: everything but loopback fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # The page's console, read after each test: no error may show there.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    # An explicit driver path: selenium does not look for (or fetch) one.
    service = Service(executable_path=str(shutil.which("chromedriver")))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        # Headless Chromium saves downloads only where it is told to.
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser for one test: its console starts empty and must stay free of errors;
    the page is left afterwards (it would go on polling a fake that is gone)."""
    browser.get("about:blank")
    browser.get_log("browser")  # drop what an earlier test left
    yield browser
    errors = _console_errors(browser)
    browser.get("about:blank")
    assert errors == []


def _console_errors(driver: WebDriver) -> list[str]:
    return [str(e["message"]) for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _refused_in_console(driver: WebDriver, status: int) -> None:
    """The browser logs a refused request as a console error: the one the test caused
    (``status``) is taken out, and it must be the only kind there."""
    errors = _console_errors(driver)
    assert errors and all(f"status of {status}" in line for line in errors), errors


def _same_tokens(tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokens as listed, without what the running clock changes (TTL seconds left)."""
    return [
        {**t, "members": [{k: v for k, v in m.items() if k != "ttl"} for m in t["members"]]}
        for t in tokens
    ]


def _artifact(driver: WebDriver, name: str, tmp_path: Path) -> Path:
    """Save a screenshot as a test artifact (in ``$ETCD_DISCOVERY_ARTIFACTS`` when set)."""
    artifacts = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / name
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {shot}")
    return shot


def _wait(driver: WebDriver, what: str, check: Callable[[], Any]) -> Any:
    """Wait until ``check`` gives something true (the page redraws by its own polling;
    an element redrawn while being read is read again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(
        driver,
        WAIT,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return waiting.until(lambda _: check(), message=f"never: {what}")


def _find(driver: WebDriver, css: str) -> WebElement:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _text(driver: WebDriver, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(_find(driver, css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""  # not drawn yet, or redrawn by a poll while being read


def _rows(driver: WebDriver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [str(row.text) for row in driver.find_elements(By.CSS_SELECTOR, css)]


def _type(driver: WebDriver, element_id: str, text: str) -> None:
    field = _find(driver, f"#{element_id}")
    field.clear()
    field.send_keys(text)


def _choose(driver: WebDriver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(_find(driver, f"#{element_id}")).select_by_value(value)


def _click(driver: WebDriver, css: str) -> None:
    _find(driver, css).click()


class Api:
    """The control API, read by the test to check what the page did."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> Any:
        reply = requests.get(f"{self.base}/_fake/{path}", headers=self.headers, timeout=WAIT)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def post(self, path: str, body: Any = None) -> Any:
        reply = requests.post(
            f"{self.base}/_fake/{path}", json=body, headers=self.headers, timeout=WAIT
        )
        assert reply.status_code in (200, 201), reply.text
        return reply.json()

    def tokens(self) -> list[dict[str, Any]]:
        tokens: list[dict[str, Any]] = self.get("tokens")["tokens"]
        return tokens

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self.get("faults")["faults"]
        return faults

    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.get("calls")["calls"]
        return calls


def _open(driver: WebDriver, base: str, query: str = "") -> None:
    driver.get(f"{base}/_fake/{query}")
    assert driver.title == "etcd discovery fake"
    _wait(driver, "the first poll", lambda: _text(driver, "#status").startswith("updated"))


# -- the actions, as a user takes them ---------------------------------------------------


def _create_token(driver: WebDriver, api: Api, size: int, members: int) -> dict[str, Any]:
    """Create a token with the form; the one the API then lists besides the earlier ones."""
    before = {t["token"] for t in api.tokens()}
    _type(driver, "token-size", str(size))
    _type(driver, "token-members", str(members))
    _click(driver, "#create-token")
    new = _wait(
        driver, "the created token", lambda: [t for t in api.tokens() if t["token"] not in before]
    )
    assert len(new) == 1
    token: dict[str, Any] = new[0]
    _wait(
        driver,
        "its row",
        lambda: token["token"] in _text(driver, f'tr.token[data-token="{token["token"]}"]'),
    )
    assert token["token"] in _text(driver, "#action-status")
    return token


def _add_fault(driver: WebDriver, api: Api, **fields: str) -> dict[str, Any]:
    """Fill the fault form (element id suffix -> value) and add the rule."""
    before = {f["id"] for f in api.faults()}
    for name, value in fields.items():
        if name in ("action", "route", "method"):
            _choose(driver, f"fault-{name}", value)
        else:
            _type(driver, f"fault-{name}", value)
    _click(driver, "#add-fault")
    new = _wait(
        driver, "the added fault", lambda: [f for f in api.faults() if f["id"] not in before]
    )
    rule: dict[str, Any] = new[0]
    _wait(
        driver,
        "its row",
        lambda: rule["description"] in _text(driver, f'tr.fault[data-id="{rule["id"]}"]'),
    )
    return rule


def _delete_fault(driver: WebDriver, api: Api, rule_id: int) -> None:
    _click(driver, f'tr.fault[data-id="{rule_id}"] button.delete-fault')
    _wait(driver, "the fault gone", lambda: rule_id not in [f["id"] for f in api.faults()])
    _wait(driver, "its row gone", lambda: not _rows(driver, f'tr.fault[data-id="{rule_id}"]'))


def _reset(driver: WebDriver, api: Api, *, confirm: bool = True) -> None:
    from selenium.webdriver.support import expected_conditions

    _click(driver, "#reset")
    alert = _wait(
        driver, "the confirmation", lambda: expected_conditions.alert_is_present()(driver)
    )
    assert "Reset the fake?" in alert.text
    if not confirm:
        alert.dismiss()
        return
    alert.accept()
    _wait(driver, "an empty fake", lambda: api.tokens() == [] and api.faults() == [])
    _wait(driver, "no tokens", lambda: _text(driver, "#tokens tbody") == "no tokens")


def _download(driver: WebDriver, downloads: Path) -> Any:
    """Click "Download state"; the file the browser saved, read as JSON."""
    saved = downloads / SAVED_STATE
    saved.unlink(missing_ok=True)
    _click(driver, "#download")
    # Chromium writes a .crdownload first and renames it when the file is whole.
    _wait(driver, "the saved state", saved.is_file)
    _wait(driver, "the download noted", lambda: SAVED_STATE in _text(driver, "#action-status"))
    return json.loads(saved.read_text(encoding="utf-8"))


def _upload(driver: WebDriver, path: Path) -> None:
    _find(driver, "#upload").send_keys(str(path))
    _wait(driver, "the upload's answer", lambda: path.name in _text(driver, "#action-status"))


# -- the tests ---------------------------------------------------------------------------


def test_the_dashboard_shows_the_fake_and_drives_its_clock(
    page: WebDriver, etcd_discovery: EtcdDiscovery, tmp_path: Path
) -> None:
    base = etcd_discovery.url
    api = Api(base)
    # A token seeded over the control API, as a suite in any language would.
    seeded = api.post("tokens", {"size": 3, "members": ["infra0"]})
    token = seeded["token"]
    # Another, full and started; and a fault that has fired once of its two times.
    api.post("tokens", {"size": 2, "members": ["etcd-a", "etcd-b"], "state": "started"})
    api.post("faults", {"status": 503, "route": "new", "times": 2})
    assert requests.get(f"{base}/new", timeout=WAIT).status_code == 503

    _open(page, base)
    row = f'tr.token[data-token="{token}"]'
    _wait(page, "the seeded token", lambda: token in _text(page, row))
    assert "infra0" in _text(page, f'{row} li.member[data-name="infra0"]')
    assert _text(page, f"{row} td.registered") == "1 of 3"
    _wait(page, "the fault", lambda: "503 new" in _text(page, "#faults"))
    assert "1 of 2" in _text(page, "#faults tr.fault")
    _wait(page, "the faulted request", lambda: "503 new" in _text(page, "#calls"))

    # The Freeze button stops the clock: TTLs left stay put from here on.
    _wait(page, "a running clock", lambda: _text(page, "#clock-state") == "running")
    _click(page, "#freeze")
    _wait(page, "a frozen clock", lambda: _text(page, "#clock-state") == "frozen")
    assert etcd_discovery.clock.frozen
    before = etcd_discovery.clock.now()

    # A member registered by a real request (etcd 0.4 style, with its 7-day TTL).
    put = requests.put(
        f"{seeded['url']}/infra1",
        data={"value": "http://10.0.0.2:7001", "ttl": "604800"},
        timeout=WAIT,
    )
    assert put.status_code == 201
    member = f'{row} li.member[data-name="infra1"]'
    _wait(page, "the registered member", lambda: "http://10.0.0.2:7001" in _text(page, member))
    assert "TTL 7d 0h" in _text(page, member)
    assert _text(page, f"{row} td.registered") == "2 of 3"
    _wait(page, "the PUT in the last requests", lambda: "/infra1" in _text(page, "#calls"))

    # The Advance button moves the clock by the seconds typed in.
    _type(page, "advance-seconds", "86400")
    _click(page, "#advance")
    _wait(page, "the TTL a day shorter", lambda: "TTL 6d 0h" in _text(page, member))
    assert etcd_discovery.clock.now() == pytest.approx(before + 86400)
    shown = _find(page, "#clock-time").get_attribute("data-now")
    assert float(shown or 0) == pytest.approx(before + 86400)
    _artifact(page, "dashboard.png", tmp_path)

    # "+7 days" passes the member's TTL: it shows as expired, not as "none yet" ...
    _click(page, "#advance-week")
    _wait(page, "the member expired", lambda: "expired" in _text(page, member))
    assert "expired" in _find(page, member).get_attribute("class").split()
    assert _text(page, f"{row} td.registered") == "1 of 3"
    (listed,) = [t for t in Api(base).tokens() if t["token"] == token]
    assert [m["name"] for m in listed["expired"]] == ["infra1"]
    assert etcd_discovery.clock.now() == pytest.approx(before + 86400 + 604800)
    # ... and Unfreeze lets the clock run again.
    _click(page, "#freeze")
    _wait(page, "a running clock", lambda: _text(page, "#clock-state") == "running")
    assert not etcd_discovery.clock.frozen


def test_ttls_count_down_between_polls(page: WebDriver, etcd_discovery: EtcdDiscovery) -> None:
    base = etcd_discovery.url
    seeded = Api(base).post("tokens", {"size": 1})
    # A short TTL on a running clock; nothing else changes, so no poll sends the token again.
    put = requests.put(
        f"{seeded['url']}/short", data={"value": "http://10.0.0.3:7001", "ttl": "90"}
    )
    assert put.status_code == 201
    _open(page, base)
    ttl = f'tr.token[data-token="{seeded["token"]}"] li.member[data-name="short"] span.ttl'
    _wait(page, "the member's TTL", lambda: _text(page, ttl).startswith("TTL 1m"))
    span = _find(page, ttl)  # the very element: a redraw would make it stale and fail
    first = span.text
    # The page counts down by itself: the same element shows less left.
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(page, WAIT, poll_frequency=0.1).until(lambda _: span.text != first)
    assert span.text.startswith("TTL 1m")
    assert span.text < first  # "TTL 1m 29s" < "TTL 1m 30s": fewer seconds left


def test_the_dashboard_creates_tokens_and_shows_registrations(
    page: WebDriver, etcd_discovery: EtcdDiscovery, tmp_path: Path
) -> None:
    base = etcd_discovery.url
    api = Api(base)
    _open(page, base)
    _wait(page, "no tokens yet", lambda: _text(page, "#tokens tbody") == "no tokens")
    token = _create_token(page, api, size=3, members=2)
    assert token["size"] == 3
    assert len(token["members"]) == 2
    row = f'tr.token[data-token="{token["token"]}"]'
    assert _text(page, f"{row} td.registered") == "2 of 3"
    bar = _find(page, f"{row} progress")  # a bar: members registered of the size
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("2", "3")

    # A third member registers for real (etcd 3.4 style, no TTL): the bar is full.
    put = requests.put(
        f"{token['url']}/4b7f4a1b6c7b6a3f",
        data={"value": "infra2=http://10.0.0.9:2380"},
        timeout=WAIT,
    )
    assert put.status_code == 201
    _wait(page, "a full bar", lambda: _text(page, f"{row} td.registered") == "3 of 3")
    assert "full" in _find(page, f"{row} span.count").get_attribute("class").split()
    assert "no TTL" in _text(page, f'{row} li.member[data-name="infra2"]')

    # What clients send is shown as text, never read as HTML.
    hostile = '<img src="x" onerror="document.title=1">'
    put = requests.put(f"{token['url']}/{hostile}", data={"value": "http://10.0.0.7:7001"})
    assert put.status_code == 201
    _wait(page, "the hostile member", lambda: hostile in _text(page, f"{row} td:last-child"))
    assert page.find_elements("css selector", "#tokens img") == []
    assert page.title == "etcd discovery fake"

    # A second token with no members: listed after the first, "none yet".
    other = _create_token(page, api, size=5, members=0)
    assert other["size"] == 5 and other["members"] == []
    other_row = f'tr.token[data-token="{other["token"]}"]'
    assert _text(page, f"{other_row} td.registered") == "0 of 5"
    assert _text(page, f"{other_row} li.empty") == "none yet"
    order = [r.get_attribute("data-token") for r in page.find_elements("css selector", "tr.token")]
    assert order == [t["token"] for t in api.tokens()]

    # A size the fake refuses: the page says why, and nothing is created.
    _type(page, "token-size", "1e30")
    _click(page, "#create-token")
    _wait(page, "the refusal", lambda: "size" in _text(page, "#action-status.error"))
    assert len(api.tokens()) == 2
    _refused_in_console(page, 400)
    _artifact(page, "dashboard-tokens.png", tmp_path)


def test_the_dashboard_adds_and_deletes_faults(
    page: WebDriver, etcd_discovery: EtcdDiscovery, tmp_path: Path
) -> None:
    base = etcd_discovery.url
    api = Api(base)
    _open(page, base)
    _wait(page, "no faults yet", lambda: _text(page, "#faults tbody") == "no faults")
    first = _add_fault(page, api, action="status", status="500", route="health", times="2")
    assert (first["action"], first["status"], first["route"], first["times"]) == (
        "status", 500, "health", 2
    )  # fmt: skip
    second = _add_fault(page, api, action="drop", route="new", method="GET", times="")
    assert (second["action"], second["route"], second["method"], second["times"]) == (
        "drop", "new", ["GET"], None
    )  # fmt: skip
    third = _add_fault(page, api, action="delay", delay="0.01", route="robots", method="")
    assert (third["action"], third["delay"], third["route"]) == ("delay", 0.01, "robots")

    # The counts follow the requests.
    assert requests.get(f"{base}/health", timeout=WAIT).status_code == 500
    first_row = f'tr.fault[data-id="{first["id"]}"]'
    _wait(page, "the fault fired", lambda: "1 of 2" in _text(page, first_row))
    _artifact(page, "dashboard-faults.png", tmp_path)

    # Delete one rule: the others stay.
    _delete_fault(page, api, first["id"])
    assert [f["id"] for f in api.faults()] == [second["id"], third["id"]]
    assert requests.get(f"{base}/health", timeout=WAIT).status_code == 200
    # "Remove all" removes the rest.
    _click(page, "#clear-faults")
    _wait(page, "no faults", lambda: api.faults() == [])
    _wait(page, "an empty table", lambda: _text(page, "#faults tbody") == "no faults")
    assert "removed 2 fault(s)" in _text(page, "#action-status")


def test_the_dashboard_filters_the_journal(
    page: WebDriver, etcd_discovery: EtcdDiscovery, tmp_path: Path
) -> None:
    base = etcd_discovery.url
    api = Api(base)
    token = api.post("tokens", {"size": 3})
    api.post("faults", {"status": 503, "route": "health", "times": 1})
    requests.get(f"{base}/new", timeout=WAIT)
    requests.get(f"{base}/health", timeout=WAIT)  # 503, faulted
    requests.get(f"{base}/robots.txt", timeout=WAIT)
    requests.put(f"{token['url']}/infra0", data={"value": "http://10.0.0.1:7001"}, timeout=WAIT)
    requests.get(f"{base}/{'0' * 32}", timeout=WAIT)  # an unknown token: 404
    calls = api.calls()
    assert len(calls) == 5
    _open(page, base)
    _wait(page, "the calls", lambda: len(_rows(page, "tr.call")) == 5)

    def shown() -> list[int]:
        return [int(r.split()[0]) for r in _rows(page, "tr.call")]

    def expect(match: Callable[[dict[str, Any]], bool]) -> list[int]:
        # What the server's journal says should show: newest first.
        return [c["number"] for c in reversed(calls) if match(c)]

    _choose(page, "filter-method", "PUT")
    _wait(page, "the PUTs", lambda: shown() == expect(lambda c: c["method"] == "PUT"))
    assert "1 of the last 5 match" in _text(page, "#calls-count")
    _choose(page, "filter-method", "GET")
    _choose(page, "filter-status", "4")
    _wait(page, "the 4xx GETs", lambda: shown() == expect(lambda c: c["status"] == 404))
    _choose(page, "filter-status", "fault")
    _wait(page, "the faulted", lambda: shown() == expect(lambda c: c["fault"] is not None))
    assert "503" in _text(page, "tr.call")
    _choose(page, "filter-status", "")
    _type(page, "filter-text", "ROBOTS")  # any case
    _wait(page, "robots", lambda: shown() == expect(lambda c: "robots" in c["path"]))
    _type(page, "filter-text", "no such path")
    _wait(page, "nothing", lambda: _text(page, "#calls tbody") == "no request matches")
    _artifact(page, "dashboard-journal.png", tmp_path)
    # A new call that matches shows up under the filter as it comes.
    _type(page, "filter-text", "robots")
    _wait(page, "robots again", lambda: len(shown()) == 1)
    requests.get(f"{base}/robots.txt", timeout=WAIT)
    _wait(page, "the new robots call", lambda: len(shown()) == 2)
    assert shown() == [c["number"] for c in reversed(api.calls()) if "robots" in c["path"]]


def test_the_dashboard_downloads_resets_and_uploads_the_state(
    page: WebDriver, etcd_discovery: EtcdDiscovery, downloads: Path, tmp_path: Path
) -> None:
    base = etcd_discovery.url
    api = Api(base)
    api.post("clock/freeze")  # the state stays as it is while the test reads it
    seeded = [
        api.post("tokens", {"size": 3, "members": [{"name": "old", "style": "v0.4"}, "b"]}),
        api.post("tokens", {"size": 1, "members": 1, "state": "started"}),
    ]
    tokens = api.tokens()
    _open(page, base)
    _wait(page, "the tokens", lambda: len(_rows(page, "tr.token")) == 2)

    # Download: the file is the state as the fake answers it, byte for byte as JSON.
    saved = _download(page, downloads)
    assert saved == api.get("state")
    kept = tmp_path / "kept-state.json"
    shutil.copy(downloads / SAVED_STATE, kept)

    # Reset asks first: "Cancel" changes nothing.
    _reset(page, api, confirm=False)
    assert api.tokens() == tokens
    _reset(page, api)
    assert api.get("calls")["calls"] == []
    assert not api.get("clock")["frozen"]

    # Upload the saved file: the state is back, as the API and the page show.
    _upload(page, kept)
    _wait(page, "the state back", lambda: _same_tokens(api.tokens()) == _same_tokens(tokens))
    assert "restored kept-state.json" in _text(page, "#action-status")
    for token in seeded:
        _wait(page, "its row back", lambda t=token["token"]: t in _text(page, "#tokens"))
    # A file that is not a state: refused with the fake's message, nothing changes.
    bad = tmp_path / "not-a-state.json"
    bad.write_text('{"store": 1}', encoding="utf-8")
    _upload(page, bad)
    assert "store must be an object" in _text(page, "#action-status.error")
    assert _same_tokens(api.tokens()) == _same_tokens(tokens)
    _refused_in_console(page, 400)
    _artifact(page, "dashboard-state.png", tmp_path)


def test_the_dashboard_carries_a_control_token(
    page: WebDriver, downloads: Path, tmp_path: Path
) -> None:
    from pytest_etcd_discovery._stack import FakeStack

    stack = FakeStack(control_token="dash-T0ken").start()
    try:
        base = stack.url
        api = Api(base, "dash-T0ken")
        token = api.post("tokens")["token"]
        # Without the token the page loads (static files) but the API answers 401: it says so.
        page.get(f"{base}/_fake/")
        _wait(page, "the 401", lambda: "Bearer TOKEN" in _text(page, "#status"))
        _refused_in_console(page, 401)
        # Given once in the URL: kept for the tab, out of the address bar, sent as a header.
        _open(page, base, "?token=dash-T0ken")
        row = f'tr.token[data-token="{token}"]'
        _wait(page, "the token's fake", lambda: token in _text(page, row))
        assert "token=" not in page.current_url
        page.refresh()  # a reload keeps working
        _wait(page, "the fake again", lambda: token in _text(page, row))
        # Every action carries the token (and passes the Origin and Host checks).
        _wait(page, "a running clock", lambda: _text(page, "#clock-state") == "running")
        _click(page, "#freeze")
        _wait(page, "a frozen clock", lambda: _text(page, "#clock-state") == "frozen")
        assert stack.clock.frozen
        before = stack.clock.now()
        _type(page, "advance-seconds", "60")
        _click(page, "#advance")
        _wait(page, "the clock moved", lambda: stack.clock.now() == before + 60)
        _wait(
            page,
            "the moved clock",
            lambda: float(_find(page, "#clock-time").get_attribute("data-now") or 0) >= before + 60,
        )
        created = _create_token(page, api, size=2, members=1)
        rule = _add_fault(page, api, action="status", status="502", route="new", times="1")
        _delete_fault(page, api, rule["id"])
        _add_fault(page, api, action="drop", route="health", times="")
        _click(page, "#clear-faults")
        _wait(page, "no faults", lambda: api.faults() == [])
        state = _download(page, downloads)
        assert state == api.get("state")
        _reset(page, api)
        _upload(page, downloads / SAVED_STATE)
        _wait(
            page,
            "the state back",
            lambda: {t["token"] for t in api.tokens()} == {token, created["token"]},
        )
        assert "error" not in (_find(page, "#action-status").get_attribute("class") or "")
    finally:
        assert stack.close() == []
