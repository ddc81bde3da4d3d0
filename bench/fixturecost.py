"""Group 3: what the ``etcd_discovery`` fixture adds to a pytest run.

Whole ``pytest`` runs (subprocesses) of N generated tests for each variant, at two sizes.
A small conftest in each suite records every test's setup + call + teardown duration, so
the cost per test is the median of those over all tests of a variant minus the same for
plain tests (a median over hundreds of tests stays put when the machine is busy; a
difference of whole-run times does not). The fixed cost per session is what is left of
the run's wall time after n typical tests: start-up, the session server, shutdown. Every
variant runs with the same plugins installed, so interpreter and plugin start-up cancel
out; the CPU time of each run (its rusage) is recorded too.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import RunError
from .stats import clock, median

#: variant -> one test's source ({i} is its number).
VARIANTS: dict[str, str] = {
    "plain": "def test_{i}():\n    pass\n",
    "plain, plugin disabled": "def test_{i}():\n    pass\n",
    "plain, httpserver disabled": "def test_{i}():\n    pass\n",
    "etcd_discovery": "def test_{i}(etcd_discovery):\n    pass\n",
    "etcd_discovery+token": ("def test_{i}(etcd_discovery):\n    etcd_discovery.new_token()\n"),
    "httpserver": "def test_{i}(httpserver):\n    pass\n",
}
#: Extra pytest arguments per variant: "plain, plugin disabled" shows what our installed
#: plugin costs tests and sessions that do not use it (imports, autouse fixture, hooks);
#: "plain, httpserver disabled" the same for pytest-httpserver.
ARGS: dict[str, tuple[str, ...]] = {
    "plain, plugin disabled": ("-p", "no:etcd_discovery"),
    "plain, httpserver disabled": ("-p", "no:pytest_httpserver"),
}

#: Records (setup + call + teardown) seconds per test into $BENCH_DURATIONS.
CONFTEST = """\
import json
import os

_per_test = {}


def pytest_runtest_logreport(report):
    _per_test[report.nodeid] = _per_test.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_DURATIONS"], "w") as fh:
        json.dump(list(_per_test.values()), fh)
"""


def httpserver_available() -> bool:
    try:
        import pytest_httpserver  # noqa: F401
    except ImportError:
        return False
    return True


def _write_suite(root: Path, variant: str, count: int) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in variant)
    suite = root / f"{slug}_{count}"
    suite.mkdir()
    # Its own rootdir: the repository's pytest settings (addopts) must not apply.
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "conftest.py").write_text(CONFTEST)
    body = "".join(VARIANTS[variant].format(i=i) + "\n\n" for i in range(count))
    (suite / "test_suite.py").write_text(body)
    return suite


def _run_suite(suite: Path, count: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One pytest run: wall seconds, CPU seconds, per-test seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    durations = suite / "durations.json"
    env["BENCH_DURATIONS"] = str(durations)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(suite)]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = clock()
    proc = subprocess.run(
        argv, cwd=suite, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    wall = clock() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    if proc.returncode != 0 or f"{count} passed" not in proc.stdout:
        raise RunError(f"pytest run of {suite.name} failed:\n{proc.stdout[-2000:]}{proc.stderr}")
    per_test: list[float] = json.loads(durations.read_text())
    return {"wall": wall, "cpu": cpu, "tests": per_test}


def measure(
    sizes: tuple[int, int], reps: int, *, quick: bool = False
) -> dict[str, dict[str, float]]:
    """Per variant: run times at each size, cost per test and fixed cost per session (ms).
    ``quick`` (the smoke run) leaves out the plugin-disabled baselines."""
    variants = [v for v in VARIANTS if "httpserver" not in v or httpserver_available()]
    if quick:
        variants = [v for v in variants if "disabled" not in v]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fixture-") as tmp:
        suites = {(v, n): _write_suite(Path(tmp), v, n) for v in variants for n in sizes}
        # Round-robin, so a load change on the machine hits every variant alike.
        for _ in range(reps):
            for (v, n), suite in suites.items():
                runs.setdefault((v, n), []).append(_run_suite(suite, n, ARGS.get(v, ())))

    def per_test(v: str) -> float:
        return median([d for n in sizes for run in runs[(v, n)] for d in run["tests"]])

    def outside_tests(v: str, n: int, key: str) -> float:
        """Median over runs of (run time - n typical tests): what the session costs
        besides its tests, including a session fixture started in the first test."""
        return median([run[key] - n * median(run["tests"]) for run in runs[(v, n)]])

    result: dict[str, dict[str, float]] = {}
    plain_test = per_test("plain")
    for v in variants:
        entry: dict[str, float] = {}
        for n in sizes:
            entry[f"run_{n}_ms"] = median([r["wall"] for r in runs[(v, n)]]) * 1000
            entry[f"cpu_{n}_ms"] = median([r["cpu"] for r in runs[(v, n)]]) * 1000
        entry["test_ms"] = per_test(v) * 1000
        entry["per_test_ms"] = (per_test(v) - plain_test) * 1000
        # The session's fixed cost: time outside the tests, over plain's, at both sizes.
        entry["per_session_ms"] = (
            median([outside_tests(v, n, "wall") - outside_tests("plain", n, "wall") for n in sizes])
            * 1000
        )
        entry["per_session_cpu_ms"] = (
            median(
                [
                    median([r["cpu"] for r in runs[(v, n)]])
                    - median([r["cpu"] for r in runs[("plain", n)]])
                    - n * (per_test(v) - plain_test)
                    for n in sizes
                ]
            )
            * 1000
        )
        result[v] = entry
    return result
