"""Two touches to the suite's own terminal output (used by conftest.py).

* :func:`tmp_usage_line`: what the run left in pytest's temporary directory, printed at
  the end so that CI shows it (real etcd members once left gigabytes of WAL there).
* :func:`skip_empty_progress_lines`: pytest prints a module's ``[ NN%]`` twice when its
  dots end exactly at the terminal's edge, the second time on a line of its own
  (pytest-dev/pytest#3374, open since 2018; here after ``test_conformance_keysapi.py``,
  whose 26 tests fill an 80-column line).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest


def tree_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def tmp_usage_line(config: pytest.Config) -> str:
    """``tmp_path usage: 12.3 MB in /tmp/pytest-of-me/pytest-7``."""
    factory = config._tmp_path_factory  # type: ignore[attr-defined]
    # Set once a test (or xdist) asked for it; getbasetemp() would make a new empty one.
    basetemp: Path | None = factory._basetemp
    if basetemp is None:
        return "tmp_path usage: 0 MB (no test used tmp_path)"
    return f"tmp_path usage: {tree_bytes(basetemp) / 1e6:.1f} MB in {basetemp}"


def skip_empty_progress_lines(config: pytest.Config) -> None:
    """When a module's dots end at the edge of the line, pytest writes its ``[ NN%]`` and
    a newline there, and then, as the next module starts, the same mark again on a line of
    its own and one more newline. Skip that second mark and its newline.

    Private pytest names (``_write_progress_information_filling_space``, ``_tw``): where
    they are missing this does nothing, and tests/test_reporting.py says so.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    fill = getattr(reporter, "_write_progress_information_filling_space", None)
    writer = getattr(reporter, "_tw", None)
    if fill is None or writer is None:  # -p no:terminal, or a pytest that changed them
        return
    line = writer.line

    def line_unless_at_line_start(s: str = "", **markup: bool) -> None:
        writer.line = line  # once: the newline write_fspath_result ends the lone mark with
        if s or writer.width_of_current_line:
            line(s, **markup)

    def fill_unless_at_line_start() -> None:
        if writer.width_of_current_line:
            fill()
        else:
            writer.line = line_unless_at_line_start

    reporter._write_progress_information_filling_space = fill_unless_at_line_start  # type: ignore[union-attr]
