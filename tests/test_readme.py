"""The README is a first look and its example runs; the documentation says what the code
does (issue #12, item 11): every public attribute of the fixture's object and of a
journal entry is documented, the profile table gives each profile's real long-poll limit,
and what ``-p no:etcd_discovery`` does is what happens."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import itertools
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest
from test_plugin import run_subprocess

import pytest_etcd_discovery
from pytest_etcd_discovery._etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._service.app import Call
from pytest_etcd_discovery._service.profiles import PROFILES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on the backport there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
#: The repository every URL of the project points into (README, CHANGELOG, Project-URLs).
REPOSITORY = PROJECT["urls"]["Source"].rstrip("/")
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


def _readme_commands() -> ModuleType:
    """.ci/readme_commands.py: how .ci/run reads the README's opening commands."""
    spec = importlib.util.spec_from_file_location(
        "readme_commands", ROOT / ".ci/readme_commands.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_opens_with_the_install_then_two_commands_for_a_checkout() -> None:
    """A user's install first; then the block .ci/run runs as written (issue #23)."""
    before_first_block = README[: README.index("```")]
    assert "`pip install pytest-etcd-discovery`" in before_first_block
    commands = _readme_commands().opening_commands(README)

    main, test = (shlex.split(commands[name]) for name in ("main", "test"))
    # The main job: the example suite under the fake, with the package alone.
    assert main == [
        "pip",
        "install",
        "-e",
        ".",
        "&&",
        "pytest",
        "--etcd-discovery-fake",
        "examples/",
    ]
    # The tests: the test extra alone, nothing more, then the whole suite.
    assert test == ["pip", "install", "-e", ".[test]", "&&", "pytest"]
    # .ci/run runs both from there, the test command before anything else it runs.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [line for line in ci.splitlines() if line.startswith(("python3 ", "readme_command "))]
    assert steps[0] == "readme_command test", steps[:3]
    assert "readme_command main" in steps


def test_readme_opening_commands_are_read_as_written() -> None:
    parse = _readme_commands().opening_commands
    text = "# x\n\n```sh\na --b 'c d'   # one\n\ne && f  # two\n```\n\n```sh\ng\n```\n"
    assert parse(text) == {"main": "a --b 'c d'", "test": "e && f"}
    with pytest.raises(ValueError, match="3 commands"):
        parse("```sh\na\nb\nc\n```\n")


def test_readme_links_are_absolute_and_exist() -> None:
    """A package index shows README.md without the files around it: every link and the
    image point into the repository, at files that exist here."""
    targets = re.findall(r"\]\(([^)]+)\)", README)
    relative = [t for t in targets if not t.startswith("https://")]
    assert relative == []
    paths = re.findall(re.escape(REPOSITORY) + r"/(?:blob|raw|tree)/main/([^)#]+)\)", README)
    assert len(paths) >= 15
    assert "docs/dashboard.png" in paths
    assert [p for p in paths if not (ROOT / p).exists()] == []
    assert REPOSITORY in targets


def test_project_urls_point_into_one_repository() -> None:
    urls = PROJECT["urls"]
    assert {"Documentation", "Source", "Changelog", "Issues"} <= urls.keys()
    assert REPOSITORY.startswith("https://github.com/")
    for name, url in urls.items():
        assert url.startswith(REPOSITORY), (name, url)
        path = url.removeprefix(REPOSITORY + "/blob/main/")
        if path != url:
            assert (ROOT / path).is_file(), (name, url)


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
    # Each version heading links somewhere: Keep a Changelog's definitions at the bottom.
    links = dict(re.findall(r"^\[([^\]]+)\]: (\S+)$", changelog, re.M))
    assert list(links) == [name for name, _ in releases]
    assert links["Unreleased"] == f"{REPOSITORY}/compare/v{version}...HEAD"
    for (newer, _), (older, _) in itertools.pairwise(releases[1:]):
        assert links[newer] == f"{REPOSITORY}/compare/v{older}...v{newer}"
    oldest = releases[-1][0]
    assert oldest == "Unreleased" or links[oldest] == f"{REPOSITORY}/releases/tag/v{oldest}"
