"""The dashboard (``GET /_fake/``) in a real headless Chromium, driven by selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skips
without them (a failure under ``ETCD_DISCOVERY_REQUIRE_REAL=1``, as in ``.ci/run``).
The screenshot is saved as a test artifact: in ``$ETCD_DISCOVERY_ARTIFACTS`` when set
(``.ci/run`` sets it), else in the test's ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from realutil import SKIP_PREFIX, skip_or_fail
from unitutil import wait_until

from pytest_etcd_discovery import EtcdDiscovery

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

WAIT = 15.0
CHROMIUM = ("chromium", "chromedriver")
ARTIFACTS_ENV = "ETCD_DISCOVERY_ARTIFACTS"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
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
    # An explicit driver path: selenium does not look for (or fetch) one.
    service = Service(executable_path=str(shutil.which("chromedriver")))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _shows(what: str, check: Callable[[], bool]) -> None:
    """Wait until the page (redrawn by its own polling) passes ``check``."""
    wait_until(check, f"the dashboard shows {what}", timeout=WAIT, interval=0.1)


def _text(driver: WebDriver, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""  # not drawn yet, or redrawn by a poll while being read


def test_the_dashboard_shows_the_fake_and_drives_its_clock(
    browser: WebDriver, etcd_discovery: EtcdDiscovery, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    base = etcd_discovery.url
    # A token seeded over the control API, as a suite in any language would.
    seeded = requests.post(
        f"{base}/_fake/tokens", json={"size": 3, "members": ["infra0"]}, timeout=WAIT
    ).json()
    token = seeded["token"]
    # Another, full and started; and a fault that has fired once of its two times.
    requests.post(
        f"{base}/_fake/tokens",
        json={"size": 2, "members": ["etcd-a", "etcd-b"], "state": "started"},
        timeout=WAIT,
    )
    requests.post(
        f"{base}/_fake/faults", json={"status": 503, "route": "new", "times": 2}, timeout=WAIT
    )
    assert requests.get(f"{base}/new", timeout=WAIT).status_code == 503

    browser.get(f"{base}/_fake/")
    assert browser.title == "etcd discovery fake"
    row = f'tr.token[data-token="{token}"]'
    _shows("the seeded token", lambda: token in _text(browser, row))
    assert "infra0" in _text(browser, f'{row} li.member[data-name="infra0"]')
    _shows("the fault", lambda: "503 new" in _text(browser, "#faults"))
    assert "1 of 2" in _text(browser, "#faults tr.fault")
    _shows("the faulted request", lambda: "503 new" in _text(browser, "#calls"))

    # The Freeze button stops the clock: TTLs left stay put from here on.
    _shows("a running clock", lambda: _text(browser, "#clock-state") == "running")
    browser.find_element(By.ID, "freeze").click()
    _shows("a frozen clock", lambda: _text(browser, "#clock-state") == "frozen")
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
    _shows("the registered member", lambda: "http://10.0.0.2:7001" in _text(browser, member))
    assert "TTL 7d 0h" in _text(browser, member)
    _shows("the PUT in the last requests", lambda: "/infra1" in _text(browser, "#calls"))

    # The Advance button moves the clock by the seconds typed in.
    field = browser.find_element(By.ID, "advance-seconds")
    field.clear()
    field.send_keys("86400")
    browser.find_element(By.ID, "advance").click()
    _shows("the TTL a day shorter", lambda: "TTL 6d 0h" in _text(browser, member))
    assert etcd_discovery.clock.now() == pytest.approx(before + 86400)
    shown = browser.find_element(By.ID, "clock-time").get_attribute("data-now")
    assert float(shown or 0) == pytest.approx(before + 86400)

    artifacts = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {shot}")


def test_the_dashboard_carries_a_control_token(browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    from pytest_etcd_discovery._stack import FakeStack

    stack = FakeStack(control_token="dash-T0ken").start()
    try:
        base = stack.url
        auth = {"Authorization": "Bearer dash-T0ken"}
        token = requests.post(f"{base}/_fake/tokens", headers=auth, timeout=WAIT).json()["token"]
        # Without the token the page loads (static files) but the API answers 401: it says so.
        browser.get(f"{base}/_fake/")
        _shows("the 401", lambda: "Bearer TOKEN" in _text(browser, "#status"))
        # Given once in the URL: kept for the tab, out of the address bar, sent as a header.
        browser.get(f"{base}/_fake/?token=dash-T0ken")
        row = f'tr.token[data-token="{token}"]'
        _shows("the token's fake", lambda: token in _text(browser, row))
        assert "token=" not in browser.current_url
        browser.refresh()  # a reload keeps working
        _shows("the fake again", lambda: token in _text(browser, row))
        # Its actions carry the token too (and pass the Origin check).
        _shows("a running clock", lambda: _text(browser, "#clock-state") == "running")
        browser.find_element(By.ID, "freeze").click()
        _shows("a frozen clock", lambda: _text(browser, "#clock-state") == "frozen")
        assert stack.clock.frozen
    finally:
        assert stack.close() == []
