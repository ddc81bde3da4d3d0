"""The suite's own touches to its terminal output (tests/reporting.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from reporting import tree_bytes

#: A progress mark alone on its line: what pytest-dev/pytest#3374 prints.
LONE_PROGRESS = re.compile(r"^\s+\[\s*\d+%\]$", re.MULTILINE)
CONFTEST = """
import pytest
from reporting import skip_empty_progress_lines, tmp_usage_line

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    skip_empty_progress_lines(config)

def pytest_terminal_summary(terminalreporter, config):
    terminalreporter.write_line(tmp_usage_line(config))
"""


def _fill_the_line(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two modules; the first one's dots end exactly at the edge of an 80-column line."""
    monkeypatch.setenv("COLUMNS", "80")
    width = 80 - len(" [100%]") - 1 - len("test_a.py ")
    pytester.makepyfile(
        test_a="\n".join(f"def test_{i}(): pass" for i in range(width)),
        test_b="def test_last(tmp_path):\n    (tmp_path / 'f').write_bytes(b'x' * 2_000_000)",
    )


def test_the_quirk_shows_without_the_workaround(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If pytest stops printing the lone line by itself, skip_empty_progress_lines can go."""
    _fill_the_line(pytester, monkeypatch)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=80 - 8 - 10 + 1)
    assert LONE_PROGRESS.search(result.stdout.str()), result.stdout.str()


def test_no_progress_line_of_its_own_and_the_tmp_usage_is_printed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill_the_line(pytester, monkeypatch)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=80 - 8 - 10 + 1)
    out = result.stdout.str()
    assert not LONE_PROGRESS.search(out), out
    lines = out.splitlines()
    first = next(i for i, text in enumerate(lines) if text.startswith("test_a.py "))
    assert lines[first].endswith(" [ 98%]") and len(lines[first]) == 80 - 1
    assert lines[first + 1].startswith("test_b.py .") and lines[first + 1].endswith(" [100%]")
    result.stdout.fnmatch_lines(["tmp_path usage: 2.0 MB in *"])


def test_tmp_usage_without_a_tmp_path(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["tmp_path usage: 0 MB (no test used tmp_path)"])


def test_tree_bytes_counts_files_not_links(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert tree_bytes(tmp_path) == 15 + len(str(tmp_path / "a"))  # a link is its target's name
