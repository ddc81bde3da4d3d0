"""Reference tables generated from the plugin itself, so they cannot drift from it.

- ``.. etcd-discovery-options::``: the command-line options and ini values, recorded by
  calling the plugin's ``pytest_addoption`` with a parser that notes what is added
  (``pluginoptions.Recorder``).
- ``.. etcd-discovery-markers::``: the markers as ``pytest --markers`` lists them.
- ``.. etcd-discovery-fixtures::``: the fixtures and their docstrings as
  ``pytest --fixtures -v`` prints them.
- ``.. etcd-discovery-command-help::``: ``etcd-discovery-fake --help``.

The pytest runs load only this plugin (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), in an empty
directory, so the build stays quick and independent of the machine's other plugins.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from pluginoptions import Recorder  # no docutils in it: tests/test_docs.py uses it too
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

PLUGIN = "pytest_etcd_discovery.plugin"


def _pytest_output(*args: str) -> str:
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    with tempfile.TemporaryDirectory() as empty:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider", *args],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if result.returncode not in (0, 5):  # 5: no tests collected, expected here
        raise RuntimeError(f"pytest {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


class _RstDirective(SphinxDirective):
    """Renders generated reStructuredText as if it were written in the page."""

    #: The modules the output comes from: the page is rebuilt when one changes.
    sources: tuple[str, ...] = ("plugin", "_constants", "_settings", "_marker")

    def rst(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        import importlib

        for name in self.sources:
            module = importlib.import_module(f"pytest_etcd_discovery.{name}")
            self.env.note_dependency(str(module.__file__))
        node = nodes.section()
        node.document = self.state.document
        lines = StringList(self.rst(), source=f"<{self.name}>")
        self.state.nested_parse(lines, self.content_offset, node)
        return list(node.children)


def _lit(text: str) -> str:
    return f"``{text}``"


class OptionsDirective(_RstDirective):
    def rst(self) -> list[str]:
        import importlib

        plugin = importlib.import_module(PLUGIN)
        recorder = Recorder()
        plugin.pytest_addoption(recorder)
        inis = {ini.name: ini for ini in recorder.inis}
        out = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 30 25 45",
            "",
            "   * - command line",
            "     - ini value",
            "     - meaning",
        ]
        for opt in recorder.options:
            flag = opt.flags[0]
            if opt.choices:
                flag += " " + "|".join(opt.choices)
            elif opt.metavar:
                flag += " " + opt.metavar
            ini = inis.pop(opt.dest, None)
            ini_text = f"{_lit(ini.name)} ({ini.type})" if ini else ""
            out += [f"   * - {_lit(flag)}", f"     - {ini_text}", f"     - {opt.help}"]
        for ini in inis.values():  # ini values without a command-line spelling
            default = (
                f" Default: {_lit(repr(ini.default))}." if ini.default not in (None, []) else ""
            )
            out += [
                "   * - ",
                f"     - {_lit(ini.name)} ({ini.type})",
                f"     - {ini.help}.{default}",
            ]
        return out


class MarkersDirective(_RstDirective):
    def rst(self) -> list[str]:
        out: list[str] = []
        for line in _pytest_output("--markers").splitlines():
            m = re.match(r"@pytest\.mark\.(etcd_discovery\w*)(\(.*?\)): (.*)$", line)
            if m:
                name, signature, text = m.groups()
                out += [f"``@pytest.mark.{name}{signature}``", f"   {text}", ""]
        if not out:
            raise RuntimeError("pytest --markers listed no etcd_discovery marker")
        return out


class FixturesDirective(_RstDirective):
    def rst(self) -> list[str]:
        text = _pytest_output("--fixtures", "-v")
        # Our section runs from its banner to the next banner or the closing line.
        section = re.search(
            rf"-+ fixtures defined from {re.escape(PLUGIN)} -+\n(.*?)(?:\n-{{3,}} |\n={{3,}})",
            text,
            re.S,
        )
        if section is None:
            raise RuntimeError("pytest --fixtures printed no section for the plugin")
        out: list[str] = []
        for block in re.split(r"\n(?=\S)", section.group(1).strip("\n")):
            head, _, body = block.partition("\n")
            m = re.match(r"(\w+)( \[\w+ scope\])? -- ", head)
            if m is None:
                continue
            name, scope = m.group(1), (m.group(2) or " [function scope]").strip(" []")
            out += [f".. rubric:: ``{name}`` ({scope})", ""]
            out += [line for line in textwrap.dedent(body).splitlines()] + [""]
        return out


class CommandHelpDirective(_RstDirective):
    sources = ("__main__",)

    def rst(self) -> list[str]:
        from pytest_etcd_discovery.__main__ import build_parser

        parser = build_parser()
        help_text = parser.format_help()
        return ["::", ""] + ["   " + line for line in help_text.splitlines()] + [""]


def setup(app: Sphinx) -> dict[str, Any]:
    os.environ.setdefault("COLUMNS", "88")  # argparse wraps help to this width
    app.add_directive("etcd-discovery-options", OptionsDirective)
    app.add_directive("etcd-discovery-markers", MarkersDirective)
    app.add_directive("etcd-discovery-fixtures", FixturesDirective)
    app.add_directive("etcd-discovery-command-help", CommandHelpDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
