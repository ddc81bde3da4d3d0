"""Release check: build the sdist and wheel, check them, and use the wheel on its own.

1. ``python -m build`` makes both; ``twine check --strict`` must pass.
2. The wheel holds the package (every subpackage and data file of the source tree),
   ``py.typed`` and the license, and nothing else (no tests, bench, examples, docs);
   the sdist holds the tests, examples and docs too, and every file or folder of the
   repository that README.md and pyproject.toml name (``.ci/run``, ``noxfile.py``, the
   files their links point to).
3. For every ``Programming Language :: Python :: 3.X`` classifier in pyproject.toml, a
   fresh virtual environment of that Python gets the wheel (not editable, with its
   dependencies from the package index); from it, outside the source tree,
   ``pytest --etcd-discovery-fake examples/`` must pass every test, and
   ``etcd-discovery-fake --port 0`` must start, answer ``/health`` on loopback and stop.
   The wheel alone (no extra) has no gRPC and ``--v3-port`` says which extra to install;
   the suite and the pages run after ``pip install 'wheel[etcd-v3]'`` (etcd v3 discovery).
   A classified Python that this machine cannot run fails the check: the classifiers
   list only what this proves.
4. In the same environment, the code of the tutorial and of every how-to page, as a
   reader copies it (``docs/_ext/pagecode.py``: each block names its file in its
   caption), is written to a fresh folder and run: test files with the page's own
   ``pytest`` command where the wheel alone can run it (else plain ``pytest``), every
   test they define must pass; scripts with ``bash``, printing what the page says they
   print. Blocks marked as fragments, and commands this cannot run, are listed.

Usage: ``python .ci/wheel_test.py [--keep DIR]`` from the repository root.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pytest_etcd_discovery"
#: Bounds for the commands run here, so a hang fails the check instead of CI's clock.
BUILD_TIMEOUT = 600
INSTALL_TIMEOUT = 600
SUITE_TIMEOUT = 300
SERVER_TIMEOUT = 30
#: Options a page's ``pytest`` command may carry for this check to run it as shown; the
#: others need more than the wheel (``-n``: pytest-xdist; ``--etcd-discovery-url``: a
#: real service).
RUNNABLE_PYTEST_OPTIONS = {"--etcd-discovery-fake", "--etcd-discovery-strict"}


def load_pagecode() -> Any:
    """docs/_ext/pagecode.py: the pages' code as files (standard library only)."""
    spec = importlib.util.spec_from_file_location("pagecode", ROOT / "docs/_ext/pagecode.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pagecode", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def require_real() -> bool:
    """``ETCD_DISCOVERY_REQUIRE_REAL`` (set by ``.ci/run``): a skipped test fails."""
    flag = os.environ.get("ETCD_DISCOVERY_REQUIRE_REAL", "").strip().lower()
    return flag not in ("", "0", "false", "no")


def run(cmd: list[str], *, timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def clean_env() -> dict[str, str]:
    """The environment without anything that would import the source tree instead."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def build(out: Path) -> tuple[Path, Path]:
    run(
        [sys.executable, "-m", "build", "--quiet", "--outdir", str(out), str(ROOT)],
        timeout=BUILD_TIMEOUT,
    )
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, (wheels, sdists)
    run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheels[0]), str(sdists[0])],
        timeout=120,
    )
    return wheels[0], sdists[0]


def tracked_files() -> set[str]:
    """The repository's files: the ones git tracks (so local leftovers do not count), or
    every file outside a git checkout (an unpacked sdist)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout.strip():
        return set(listed.stdout.splitlines())
    return {
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file()
        and not {"__pycache__", ".git", ".venv", ".nox", "_build", "build", "dist"} & set(p.parts)
        and ".egg-info" not in p.as_posix()
    }


def referenced_files() -> dict[str, set[str]]:
    """The repository's files that README.md and pyproject.toml point to, by the word that
    names them: a path (``.ci/run``, ``noxfile.py``), a folder (``examples/``: all of its
    files), or a link into the repository (``<Source>/blob/main/docs/tutorial.rst``)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    repository = meta["project"]["urls"]["Source"].rstrip("/")
    tracked = tracked_files()
    found: dict[str, set[str]] = {}
    for name in ("README.md", "pyproject.toml"):
        text = (ROOT / name).read_text(encoding="utf-8")
        # A link into the repository names the path after the branch.
        text = re.sub(re.escape(repository) + r"/(?:blob|raw|tree)/[\w.-]+/", " ", text)
        for word in set(re.findall(r"[\w.-]+(?:/[\w.-]+)*", text)):
            word = word.rstrip(".")  # a full stop ends a sentence, not a path
            if word in tracked:
                found[word] = {word}
            elif under := {f for f in tracked if f.startswith(word + "/")}:
                found[word] = under
    return found


def expected_package_files() -> set[str]:
    """Every file of the package in the source tree that belongs in the wheel: the ones
    git tracks (so local leftovers do not count), or all of them outside a git checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "--", PACKAGE], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode == 0 and listed.stdout.strip():
        return {line for line in listed.stdout.splitlines() if not line.endswith((".pyc", ".pyo"))}
    files = set()
    for path in (ROOT / PACKAGE).rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.add(path.relative_to(ROOT).as_posix())
    return files


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    dist_info = {n for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    package = names - dist_info
    stray = sorted(n for n in package if not n.startswith(PACKAGE + "/"))
    assert not stray, f"files outside the package in the wheel: {stray}"
    missing = sorted(expected_package_files() - package)
    assert not missing, (
        f"package files missing from the wheel: {missing}; add their pattern to "
        "[tool.setuptools.package-data] in pyproject.toml"
    )
    assert f"{PACKAGE}/py.typed" in package, "py.typed missing"
    licenses = [n for n in dist_info if "/licenses/" in n]
    assert any(n.endswith("/LICENSE") for n in licenses), f"no LICENSE in {sorted(dist_info)}"
    print(f"wheel: {len(package)} package files, py.typed, {', '.join(licenses)}", flush=True)


def check_sdist_contents(sdist: Path) -> None:
    """The sdist carries what it takes to test and document the package (MANIFEST.in)."""
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    needed = {
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "tests/conftest.py",
        "examples/test_provision.py",
        "docs/conf.py",
        "docs/index.rst",
        "bench/scale.png",
    }
    missing = sorted(needed - names)
    assert not missing, f"missing from the sdist: {missing}"
    # What README.md and pyproject.toml point a reader to must be in what they unpacked.
    referenced = referenced_files()
    assert {".ci/run", ".ci/wheel_test.py", "noxfile.py"} <= referenced.keys(), sorted(referenced)
    missing = sorted(
        f"{word}: {sorted(files - names)[:5]}"
        for word, files in referenced.items()
        if files - names
    )
    assert not missing, (
        f"README.md or pyproject.toml name what the sdist lacks (MANIFEST.in): {missing}"
    )
    junk = sorted(n for n in names if "__pycache__" in n or n.startswith("docs/_build"))
    assert not junk, f"build leftovers in the sdist: {junk[:5]}"
    print(
        f"sdist: {len(names)} entries, tests, examples and docs included, and the "
        f"{len(referenced)} paths README.md and pyproject.toml name",
        flush=True,
    )


def classified_pythons() -> list[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found = []
    for classifier in meta["project"]["classifiers"]:
        m = re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier)
        if m:
            found.append(m.group(1))
    assert found, "pyproject.toml lists no Python 3.X classifier"
    return found


def find_python(version: str) -> str:
    """An interpreter for ``version``: on PATH, or one of pyenv's installed versions."""
    candidates = [shutil.which(f"python{version}")]
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        roots.insert(0, subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout)
    for root in dict.fromkeys(r.strip() for r in roots if r.strip()):
        candidates += sorted(
            (str(p) for p in Path(root, "versions").glob(f"{version}.*/bin/python{version}")),
            reverse=True,
        )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            env=clean_env(),
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise SystemExit(
        f"wheel test: no Python {version} here, but pyproject.toml classifies it; "
        "install it or drop the classifier"
    )


def check_suite(venv_python: Path, work: Path) -> None:
    examples = work / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("__pycache__"))
    report = work / "examples.xml"
    run(
        [
            str(venv_python),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--etcd-discovery-fake",
            f"--junitxml={report}",
            "examples/",
        ],
        timeout=SUITE_TIMEOUT,
        cwd=work,
        env=clean_env(),
    )
    counts, _, _ = junit_outcome(report)
    # The examples skip without interception: a skip here means the flag did not reach
    # the installed plugin, which is a failure of this check.
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == 0, counts
    assert counts["skipped"] == 0, f"example tests skipped under the wheel: {counts}"


def junit_outcome(report: Path) -> tuple[dict[str, int], set[str], list[str]]:
    """A pytest junit report's counts, the names of the tests run (parameters cut off),
    and the reasons of the skipped ones."""
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    names = {case.get("name", "").split("[", 1)[0] for case in suite.iter("testcase")}
    skips = [
        f"{case.get('name')}: {skipped.get('message', '')}"
        for case in suite.iter("testcase")
        for skipped in case.iter("skipped")
    ]
    return counts, names, skips


def check_pages(venv: Path, work: Path) -> None:
    """The tutorial's and the how-to pages' code, copied from the pages into a fresh
    folder each, runs against the installed wheel (see the module's docstring, 4.)."""
    pagecode = load_pagecode()
    env = clean_env()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])  # the wheel's
    pytest_command = [str(venv / "bin" / "pytest"), "-p", "no:cacheprovider", "-q", "-rs"]
    for page in pagecode.pages(ROOT / "docs"):
        name = page.relative_to(ROOT / "docs").as_posix()
        blocks = pagecode.blocks(page)
        folder = work / "pages" / page.stem
        written = pagecode.write(blocks, folder)  # refuses a block it cannot place
        fragments = [b.where for b in blocks if b.is_code and b.fragment]
        commands, not_run = [], []
        for _, command in pagecode.console_commands(blocks):
            words = shlex.split(command)
            args = words[1:]
            if words[:3] in (
                ["pip", "install", "pytest-etcd-discovery"],
                ["pip", "install", "pytest-etcd-discovery[etcd-v3]"],
            ):
                continue  # what the wheel's installations above stand for
            if words[:1] == ["pytest"] and all(
                a in RUNNABLE_PYTEST_OPTIONS or (folder / a).exists() for a in args
            ):
                commands.append(args)
            else:
                not_run.append(command)
        tests = [f for f in written if f.suffix == ".py" and f.name.startswith("test_")]
        if tests and not commands:
            commands = [[]]  # plain pytest, in the page's folder
        defined = {t for f in tests for t in re.findall(r"^\s*def (test_\w+)", f.read_text(), re.M)}
        ran: set[str] = set()
        passed = 0
        for number, args in enumerate(commands if tests else []):
            report = folder / f"pytest-{number}.xml"
            run(
                [*pytest_command, f"--junitxml={report}", *args],
                timeout=SUITE_TIMEOUT,
                cwd=folder,
                env=env,
            )
            counts, names, skips = junit_outcome(report)
            assert counts["failures"] == counts["errors"] == 0, (name, counts)
            assert not (skips and require_real()), f"{name}: skipped in CI: {skips}"
            for skip in skips:
                print(f"  {name}: skipped {skip}", flush=True)
            ran |= names
            passed += counts["tests"] - counts["skipped"]
        assert defined <= ran, f"{name}: tests the page defines did not run: {defined - ran}"
        for script in (f for f in written if f.suffix == ".sh"):
            printed = run(
                ["bash", script.name],
                timeout=SUITE_TIMEOUT,
                cwd=folder,
                env=env,
                capture_output=True,
            ).stdout
            block = next(b for b in blocks if b.caption == script.relative_to(folder).as_posix())
            shown = pagecode.output_after(blocks, block)
            if shown is not None:  # "It prints:" and the output
                assert printed.splitlines() == shown.text.splitlines(), (name, printed, shown.text)
        files = ", ".join(f.relative_to(folder).as_posix() for f in written) or "no files"
        notes = [f"{files}: {passed} passed" if tests else f"{files}: ran as shown"]
        if fragments:
            notes.append(f"fragments not run: {', '.join(fragments)}")
        if not_run:
            notes.append(f"commands not run: {'; '.join(not_run)}")
        print(f"  {name}: {'; '.join(notes)}", flush=True)


def check_command(venv: Path, work: Path) -> None:
    command = venv / "bin" / "etcd-discovery-fake"
    print("+", command, "--port 0", flush=True)
    proc = subprocess.Popen(
        [str(command), "--port", "0"],
        cwd=work,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # The command prints its URL once it accepts connections; readline returns ""
        # if it died first, which the assertion below reports with its stderr.
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), (url, proc.poll())
        with urllib.request.urlopen(f"{url}/health", timeout=SERVER_TIMEOUT) as reply:
            body = reply.read().decode()
            assert reply.status == 200, reply.status
        assert body == "OK", body  # the original service's /health
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=SERVER_TIMEOUT)
        assert code == 0, f"etcd-discovery-fake exited {code} on SIGTERM"
        print(f"command: {url}/health answered {body.strip()}, stopped with 0", flush=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
        if err.strip():
            print(err, file=sys.stderr)


def check_without_extra(venv: Path, work: Path) -> None:
    """Without the etcd-v3 extra there is no gRPC, and the command's ``--v3-port`` names the
    extra to install instead of failing with a traceback."""
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import grpc"], capture_output=True, cwd=work, env=clean_env()
    )
    assert probe.returncode != 0, "grpc is importable without the etcd-v3 extra"
    done = subprocess.run(
        [str(venv / "bin" / "etcd-discovery-fake"), "--port", "0", "--v3-port", "0"],
        capture_output=True,
        text=True,
        cwd=work,
        env=clean_env(),
        timeout=SERVER_TIMEOUT,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "pip install 'pytest-etcd-discovery[etcd-v3]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    print("without the etcd-v3 extra: no grpc; --v3-port names the extra", flush=True)


def check_python(version: str, wheel: Path, base: Path) -> None:
    python = find_python(version)
    work = base / f"py{version}"
    work.mkdir()
    venv = work / "venv"
    started = time.monotonic()
    run([python, "-m", "venv", str(venv)], timeout=120, env=clean_env())
    venv_python = venv / "bin" / "python"
    run(
        [str(venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        timeout=INSTALL_TIMEOUT,
        env=clean_env(),
    )
    # The installed package, not the source tree, must be what runs.
    where = subprocess.run(
        [str(venv_python), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
        env=clean_env(),
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), f"{PACKAGE} imported from {where}"
    check_command(venv, work)
    check_without_extra(venv, work)
    # The examples and pages include etcd v3 discovery: the etcd-v3 extra from here on.
    run(
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{wheel}[etcd-v3]",
        ],
        timeout=INSTALL_TIMEOUT,
        env=clean_env(),
    )
    check_suite(venv_python, work)
    check_pages(venv, work)
    print(f"== Python {version}: wheel OK ({time.monotonic() - started:.0f} s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="build and test in DIR and keep it")
    args = parser.parse_args()
    versions = classified_pythons()
    with tempfile.TemporaryDirectory(prefix="wheel-test-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        wheel, sdist = build(base / "dist")
        check_wheel_contents(wheel)
        check_sdist_contents(sdist)
        for version in versions:
            check_python(version, wheel, base)
    print(f"wheel test: {wheel.name} works on Python {', '.join(versions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
