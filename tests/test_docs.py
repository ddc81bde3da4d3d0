"""The documentation cannot rot: its samples are files that run, and what it shows on
the command line exists.

- Python samples are never written inline in the pages: they are ``literalinclude`` d
  from ``docs/samples/`` (collected by the normal test run) or ``examples/`` (run by CI's
  main job and the wheel test). This module checks that rule and runs the samples that
  need a command line of their own (pytest-xdist, a real service's URL).
- Console samples may only use options that exist: every ``--etcd-discovery-*`` option
  and every ``etcd-discovery-fake`` invocation shown in a page is checked against the
  plugin and the command.
- The tutorial's and the how-to pages' code is whole: each block names its file in its
  caption (or is marked a fragment), and each page's files, as a reader copies them
  (``docs/_ext/pagecode.py``), have no undefined names here; ``.ci/wheel_test.py`` runs
  them against the installed wheel.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pytest_etcd_discovery import plugin
from pytest_etcd_discovery.__main__ import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SAMPLES = DOCS / "samples"
PAGES = sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)
#: Where included samples may come from: both directories run in CI.
RUN_SOMEWHERE = (SAMPLES, ROOT / "examples")


def _recorded_options() -> tuple[set[str], set[str]]:
    # The reference table's own recorder (standard library only, so this runs under the
    # README's `pip install -e '.[test]'`, without the docs extra's Sphinx and docutils).
    recorder = _load_ext("pluginoptions").Recorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    flags = {f for opt in recorder.options for f in opt.flags}
    return flags, {ini.name for ini in recorder.inis}


def _load_ext(name: str) -> ModuleType:
    """A module of docs/_ext/ that needs no Sphinx (the README's test command installs
    only the test extra)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _console_lines() -> list[tuple[Path, str]]:
    """Commands in the pages' ``console`` blocks (lines starting with ``$``)."""
    found = []
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("$ "):
                found.append((page, stripped[2:]))
    return found


def _ini_blocks() -> list[tuple[Path, str]]:
    """The bodies of the pages' ``.. code-block:: ini`` blocks."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^( *)\.\. code-block:: ini\n\n((?:\1   .*\n|\n)+)", text, re.M):
            found.append((page, m.group(2)))
    return found


def test_there_are_pages_and_samples() -> None:
    assert len(PAGES) >= 10
    assert len(list(SAMPLES.glob("test_*.py"))) >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_python_samples_are_included_files_that_run(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    inline = re.findall(
        r"^\s*\.\. (?:code-block|code|sourcecode):: *(?:python|py|pycon)\s*$", text, re.M
    )
    assert not inline, f"{page.name}: inline Python; put it in docs/samples/ and include it"
    assert ">>> " not in text, f"{page.name}: an interactive sample nothing runs"
    for target in re.findall(r"^\s*\.\. literalinclude:: *(\S+)", text, re.M):
        path = (page.parent / target).resolve()
        assert path.is_file(), f"{page.name}: {target} does not exist"
        assert any(path.is_relative_to(d) for d in RUN_SOMEWHERE), (
            f"{page.name}: {target} is not under docs/samples/ or examples/, so nothing runs it"
        )
        if path.suffix == ".py" and path.is_relative_to(SAMPLES):
            assert path.name.startswith(("test_", "conftest")), f"{target}: not collected"


def test_console_samples_use_options_that_exist() -> None:
    flags, inis = _recorded_options()
    lines = _console_lines()
    assert lines, "no console samples found"
    for page, command in lines:
        for option in re.findall(r"--etcd-discovery-[a-z-]+", command):
            assert option in flags, f"{page.name}: {option} is not an option of the plugin"
        for ini in re.findall(r"\betcd_discovery_[a-z_]+(?= *=)", command):
            assert ini in inis, f"{page.name}: {ini} is not an ini value of the plugin"
        words = shlex.split(command, comments=True)
        if words and words[0] == "etcd-discovery-fake":
            build_parser().parse_args(words[1:])  # exits (fails the test) on a bad option


def test_ini_samples_use_ini_values_that_exist() -> None:
    _, inis = _recorded_options()
    blocks = _ini_blocks()
    assert blocks, "no ini samples found"
    for page, body in blocks:
        assert body.strip().startswith("[pytest]"), f"{page.name}: {body!r}"
        keys = re.findall(r"^ *(\w+) *=", body, re.M)
        assert keys, f"{page.name}: an ini sample without a value"
        for key in keys:
            assert key in inis, f"{page.name}: {key} is not an ini value of the plugin"


def _run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_xdist_sample_under_two_workers() -> None:
    result = _run_pytest("-p", "xdist", "-n", "2", "docs/samples/test_howto_xdist.py")

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout


@pytest.mark.real
def test_nightly_sample_against_the_real_service(real_service: object) -> None:
    url = str(real_service.url)  # type: ignore[attr-defined]

    result = _run_pytest("--etcd-discovery-url", url, "docs/samples/test_howto_nightly.py")

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b3 passed, 1 skipped\b", result.stdout), result.stdout
    # The fake-only sample says why it skipped, naming the real service it ran against.
    assert f"real service at {url}" in result.stdout, result.stdout


def test_plan_sample_is_a_plan_the_command_loads() -> None:
    from pytest_etcd_discovery._service.faults import load_plan

    plan = load_plan(SAMPLES / "plan.toml")

    # What the page says the sample does: two 503s on the size route, then late PUTs.
    first, second = plan.rules
    assert (first.action, first.status, first.route, first.times) == ("status", 503, "size", 2)
    assert (second.action, second.delay, second.method) == ("delay", 6, ("PUT",))


def test_every_sample_file_is_used_by_a_test() -> None:
    # A sample that is not Python (a plan, a script) runs only if a test names it.
    runners = "".join(
        p.read_text(encoding="utf-8") for p in [*SAMPLES.glob("test_*.py"), Path(__file__)]
    )
    for sample in SAMPLES.iterdir():
        if sample.is_file() and sample.suffix != ".py":
            assert sample.name in runners, f"nothing runs docs/samples/{sample.name}"


PAGECODE = _load_ext("pagecode")
CODE_PAGES = PAGECODE.pages(DOCS)


def test_the_tutorial_and_every_howto_page_have_code_pages() -> None:
    names = [p.relative_to(DOCS).as_posix() for p in CODE_PAGES]
    assert "tutorial.rst" in names
    assert {p.relative_to(DOCS).as_posix() for p in DOCS.glob("howto/*.rst")} <= set(names)


@pytest.mark.parametrize("page", CODE_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_is_whole_files(page: Path, tmp_path: Path) -> None:
    """Every code block names its file; the files a reader copies together define every
    name they use (the wheel test runs them)."""
    blocks = PAGECODE.blocks(page)
    written = PAGECODE.write(blocks, tmp_path)  # raises on a block with no file
    assert written, f"{page.name}: no code"
    python = [str(p) for p in written if p.suffix == ".py"]
    if python:
        # Pyflakes' checks (undefined names, unused or redefined imports), and nothing else:
        # this project's own lint configuration does not apply to a reader's folder.
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F", *python],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        for path in python:
            compile(Path(path).read_text(encoding="utf-8"), path, "exec")


SYNTHETIC = """\
Title
=====

.. literalinclude:: code.py
   :caption: pkg/mod.py
   :end-before: @functools.cache

Some text, then a deliberate piece nothing runs::

   not python at all

.. code-block:: python
   :class: fragment

   undefined_name()

.. literalinclude:: code.py
   :caption: pkg/mod.py
   :pyobject: second

.. code-block:: console

   $ pytest --etcd-discovery-fake pkg/
"""

CODE = """\
import functools


def first() -> int:
    return 1


@functools.cache
def second() -> int:
    return first() + 1
"""


def test_pagecode_reads_a_page_as_a_reader_copies_it(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text(CODE, encoding="utf-8")
    page = tmp_path / "page.rst"
    page.write_text(SYNTHETIC, encoding="utf-8")

    blocks = PAGECODE.blocks(page)

    assert [(b.directive, b.language, b.caption, b.fragment) for b in blocks] == [
        ("literalinclude", "python", "pkg/mod.py", False),
        ("::", "text", None, False),
        ("code-block", "python", None, True),
        ("literalinclude", "python", "pkg/mod.py", False),
        ("code-block", "console", None, False),
    ]
    # The pieces of one file, in page order; the decorator comes with its function.
    assert PAGECODE.files(blocks) == {"pkg/mod.py": CODE.replace("\n\n\n@", "\n\n@")}
    assert [c for _, c in PAGECODE.console_commands(blocks)] == [
        "pytest --etcd-discovery-fake pkg/"
    ]


def test_pagecode_refuses_a_code_block_without_a_file(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(".. code-block:: python\n\n   print(1)\n", encoding="utf-8")

    with pytest.raises(ValueError, match="without a caption naming its file"):
        PAGECODE.files(PAGECODE.blocks(page))
