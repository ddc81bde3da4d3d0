"""The README is a first look and its example runs; the documentation says what the code
does (issue #12, item 11): every public attribute of the fixture's object and of a
journal entry is documented, the profile table gives each profile's real long-poll limit,
and what ``-p no:etcd_discovery`` does is what happens."""

from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path

import pytest
from test_plugin import run_subprocess

import pytest_etcd_discovery
from pytest_etcd_discovery.handle import EtcdDiscovery
from pytest_etcd_discovery.service.app import Call
from pytest_etcd_discovery.service.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DETAILS = (ROOT / "docs" / "reference" / "details.rst").read_text(encoding="utf-8")
PROFILES_PAGE = (ROOT / "docs" / "explanation" / "profiles.rst").read_text(encoding="utf-8")

#: Used by the plugin itself, not by tests.
_PLUGIN_ONLY = {"start_intercept", "stop_intercept", "keep_journal", "is_fake"}


def _between(text: str, first: str, last: str) -> str:
    """The sections of an rst page from title ``first`` up to title ``last``."""
    return text[text.index(f"\n{first}\n") : text.index(f"\n{last}\n")]


def test_readme_example_runs_under_the_fake(pytester: pytest.Pytester) -> None:
    (example,) = re.findall(r"^```python\n(.*?)^```$", README, re.M | re.S)
    assert 15 <= len(example.splitlines()) <= 25  # a first look, not a manual
    pytester.makepyfile(test_readme_example=example)
    pytester.runpytest("--etcd-discovery-fake", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_readme_links_exist() -> None:
    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    assert len(links) >= 15
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert missing == []


def test_every_public_attribute_of_the_fixture_object_is_documented() -> None:
    fixtures = _between(DETAILS, "Fixtures", "Hostile input")
    names = {n for n in dir(EtcdDiscovery) if not n.startswith("_")} - _PLUGIN_ONLY
    names |= {"url", "profile", "hosts"}  # set in __init__
    missing = sorted(n for n in names if f".{n}" not in fixtures and f"``{n}``" not in fixtures)
    assert missing == []


def test_every_journal_field_is_documented() -> None:
    fixtures = _between(DETAILS, "Fixtures", "Hostile input")
    missing = [f.name for f in dataclasses.fields(Call) if f"``{f.name}``" not in fixtures]
    assert missing == []
    assert "raw query string" in fixtures  # Call.query is a string, not a dict


def test_profile_table_gives_each_long_poll_limit() -> None:
    lines = PROFILES_PAGE.splitlines()
    at = lines.index("   * - watches")
    # The row's two cells: each starts with "     - " and may continue on indented lines.
    cells = " ".join(line.strip() for line in lines[at + 1 : at + 6]).split("* -")[0]
    etcd_v2, discoveryserver = [c.strip() for c in cells.split("- ") if c.strip()][:2]
    assert PROFILES["etcd-v2"].watch_timeout is None
    assert "no time limit" in etcd_v2 and not re.search(r"\d+ ?min", etcd_v2)
    timeout = PROFILES["discoveryserver"].watch_timeout
    assert f"after {timeout:g} s" in discoveryserver


MARKED = """
    import pytest

    @pytest.mark.etcd_discovery(size=1)
    def test_marked(etcd_discovery):
        pass
"""


def test_disabling_the_plugin_under_strict_markers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a child process: an in-process run would see the markers pytest.mark cached
    # from this session.
    pytester.makepyfile(MARKED)
    off = ("-p", "no:etcd_discovery", "--strict-markers")
    # What the docs say: the markers are gone, modules using them fail to collect...
    result = run_subprocess(pytester, monkeypatch, *off)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'etcd_discovery' not found in `markers` configuration option*"])
    assert "'etcd_discovery' not found in `markers`" in DETAILS
    # ...unless the suite lists them itself; then the fixture is what is missing.
    pytester.makeini("[pytest]\nmarkers =\n    etcd_discovery: x\n    etcd_discovery_fault: y\n")
    result = run_subprocess(pytester, monkeypatch, *off)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'etcd_discovery' not found*"])
    assert "fixture 'etcd_discovery' not found" in DETAILS
    # And with the plugin on, the markers declared twice are fine.
    run_subprocess(pytester, monkeypatch, "--strict-markers").assert_outcomes(passed=1)


def test_changelog_dates_the_version_the_package_carries() -> None:
    """Keep a Changelog form (issue #14): ``Unreleased`` on top, then a dated section for
    the version the package reports, and only the section types the format knows."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\S+))?$", changelog, re.M)
    assert releases[0] == ("Unreleased", "")
    version, date = releases[1]
    assert version == pytest_etcd_discovery.__version__
    datetime.date.fromisoformat(date)  # raises on anything but YYYY-MM-DD
    kinds = set(re.findall(r"^### (.+)$", changelog, re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
