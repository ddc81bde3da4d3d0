"""Group 3: what the ``etcd_discovery`` fixture adds to a pytest run.

Whole ``pytest`` runs (subprocesses) of generated tests for each variant.  A small
conftest in each suite records every test's duration and CPU time (setup + call +
teardown), so the cost per test is the median of those over all tests of the runs of N
tests (two sizes) minus the same for the variant's baseline: a median over hundreds of
tests stays put when the machine is busy, a difference of whole-run times does not.  The
fixed cost per session is measured directly, on runs of a single test (repeated more
often): their time minus the baseline's, which holds start-up, the fixture's imports,
the session server and shutdown.  The older estimate, "run of N tests minus N median
tests", also counted the tests' tail (garbage collection, a long first test) and grew
with N.  Wall and CPU alike; the CPU time of a run is its rusage, and on a shared
machine it is the number to trust.

Fair to both plugins:

- each variant names the plugins its runs load (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``): ours
  and pytest-httpserver unless it says otherwise, nothing else.  Unrelated installed
  plugins (hypothesis alone is ~0.8 s of CPU) add start-up noise to every run and
  nothing to the differences;
- bytecode is cached (``PYTHONPYCACHEPREFIX``, one untimed warm-up run per suite), as for
  an installed package: ``PYTHONDONTWRITEBYTECODE`` would have every run compile this
  checkout's modules but not the installed pytest-httpserver's;
- the package measured is this checkout's (``PYTHONPATH``), not whatever is installed;
- pytest-httpserver imports werkzeug when pytest loads it, so with both plugins loaded its
  import cost sits in the "plain" baseline while ours sits in our fixture's first use:
  the "... alone" rows load one plugin only and compare with "plain, no plugins".
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
    "plain, no plugins": "def test_{i}():\n    pass\n",
    "etcd_discovery": "def test_{i}(etcd_discovery):\n    pass\n",
    "etcd_discovery+token": ("def test_{i}(etcd_discovery):\n    etcd_discovery.new_token()\n"),
    "httpserver": "def test_{i}(httpserver):\n    pass\n",
    "etcd_discovery alone (vs plain, no plugins)": "def test_{i}(etcd_discovery):\n    pass\n",
    "httpserver alone (vs plain, no plugins)": "def test_{i}(httpserver):\n    pass\n",
}
OURS = "pytest_etcd_discovery.plugin"
HTTPSERVER = "pytest_httpserver.pytest_plugin"
#: The plugins each variant's runs load (the default: both).  "plain, plugin disabled"
#: shows what our plugin costs tests and sessions that do not use it (imports, hooks);
#: "plain, httpserver disabled" the same for pytest-httpserver.
PLUGINS: dict[str, tuple[str, ...]] = {
    "plain, plugin disabled": (HTTPSERVER,),
    "plain, httpserver disabled": (OURS,),
    "plain, no plugins": (),
    "etcd_discovery alone (vs plain, no plugins)": (OURS,),
    "httpserver alone (vs plain, no plugins)": (HTTPSERVER,),
}
#: What each variant's costs are "over" (the default: "plain", both plugins loaded).
BASELINE: dict[str, str] = {
    "etcd_discovery alone (vs plain, no plugins)": "plain, no plugins",
    "httpserver alone (vs plain, no plugins)": "plain, no plugins",
}

#: Records each test's (setup + call + teardown) wall seconds and CPU seconds (of the
#: whole process, so the live server's thread counts) into $BENCH_DURATIONS.
CONFTEST = """\
import json
import os
import time

import pytest

_wall = {}
_cpu = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.process_time()
    try:
        return (yield)
    finally:
        _cpu[item.nodeid] = time.process_time() - start


def pytest_runtest_logreport(report):
    _wall[report.nodeid] = _wall.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_DURATIONS"], "w") as fh:
        json.dump({"wall": list(_wall.values()), "cpu": list(_cpu.values())}, fh)
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


def _env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _run_suite(
    suite: Path, count: int, plugins: tuple[str, ...], env: dict[str, str]
) -> dict[str, Any]:
    """One pytest run: wall seconds, CPU seconds, per-test wall and CPU seconds."""
    durations = suite / "durations.json"
    env = {**env, "BENCH_DURATIONS": str(durations)}
    load = [arg for plugin in plugins for arg in ("-p", plugin)]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *load, str(suite)]
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
    per_test: dict[str, list[float]] = json.loads(durations.read_text())
    return {"wall": wall, "cpu": cpu, "tests": per_test["wall"], "tests_cpu": per_test["cpu"]}


#: Runs per median: the CPU time of a whole run varies by ±10-30 % on a shared 2-CPU
#: machine, so five runs leave a median off by tens of milliseconds.
MIN_REPS = 7
#: The one-test suites that give the fixed cost per session run this many times more often
#: (they are short, and the cost they measure is a small difference of whole runs).
SESSION_REPS_FACTOR = 3


def measure(
    sizes: tuple[int, int], reps: int, *, quick: bool = False
) -> dict[str, dict[str, float]]:
    """Per variant: run times at each size, cost per test and fixed cost per session (ms),
    each over the variant's baseline.

    - per test: the median of the tests' own durations (CPU: process time, which counts
      the live server's thread) in the runs of ``sizes`` tests, minus the baseline's; the
      mean (first and last test left out) is given too, as it counts garbage collection;
    - per session: whole runs of a single test, minus the baseline's (and minus the one
      test's per-test cost): start-up, the fixture's imports, the session server and
      shutdown, with nothing extrapolated.

    ``quick`` (the smoke run) leaves out the plugin-disabled baselines and the one-plugin
    rows, and repeats nothing."""
    variants = [v for v in VARIANTS if "httpserver" not in v or httpserver_available()]
    if quick:
        # The main rows only: plain and what is measured over it.
        others = {*BASELINE, *BASELINE.values()}
        variants = [v for v in variants if "disabled" not in v and v not in others]
    else:
        reps = max(reps, MIN_REPS)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    counts = (*sizes, 1)
    with tempfile.TemporaryDirectory(prefix="bench-fixture-") as tmp:
        env = _env(Path(tmp) / "pycache")
        suites = {(v, n): _write_suite(Path(tmp), v, n) for v in variants for n in counts}
        # Untimed: compiles and caches every module and rewritten test file once.
        for (v, n), suite in suites.items():
            _run_suite(suite, n, PLUGINS.get(v, (OURS, HTTPSERVER)), env)
        # Round-robin, so a load change on the machine hits every variant alike.
        for rep in range(reps * (1 if quick else SESSION_REPS_FACTOR)):
            for (v, n), suite in suites.items():
                if n != 1 and rep >= reps:
                    continue
                plugins = PLUGINS.get(v, (OURS, HTTPSERVER))
                runs.setdefault((v, n), []).append(_run_suite(suite, n, plugins, env))

    def per_test(v: str, kind: str) -> float:
        return median([d for n in sizes for run in runs[(v, n)] for d in run[kind]])

    def per_test_mean(v: str, kind: str) -> float:
        return median(
            [sum(run[kind][1:-1]) / (n - 2) for n in sizes for run in runs[(v, n)] if n > 2]
        )

    def one_test_run(v: str, total: str) -> float:
        return median([run[total] for run in runs[(v, 1)]])

    result: dict[str, dict[str, float]] = {}
    for v in variants:
        base = BASELINE.get(v, "plain")
        entry: dict[str, float] = {}
        for n in sizes:
            entry[f"run_{n}_ms"] = median([r["wall"] for r in runs[(v, n)]]) * 1000
            entry[f"cpu_{n}_ms"] = median([r["cpu"] for r in runs[(v, n)]]) * 1000
        entry["run_1_ms"] = one_test_run(v, "wall") * 1000
        entry["cpu_1_ms"] = one_test_run(v, "cpu") * 1000
        entry["test_ms"] = per_test(v, "tests") * 1000
        entry["test_cpu_ms"] = per_test(v, "tests_cpu") * 1000
        entry["per_test_ms"] = (per_test(v, "tests") - per_test(base, "tests")) * 1000
        entry["per_test_cpu_ms"] = (per_test(v, "tests_cpu") - per_test(base, "tests_cpu")) * 1000
        entry["per_test_cpu_mean_ms"] = (
            per_test_mean(v, "tests_cpu") - per_test_mean(base, "tests_cpu")
        ) * 1000
        entry["per_session_ms"] = (
            one_test_run(v, "wall") - one_test_run(base, "wall") - entry["per_test_ms"] / 1000
        ) * 1000
        entry["per_session_cpu_ms"] = (
            one_test_run(v, "cpu") - one_test_run(base, "cpu") - entry["per_test_cpu_ms"] / 1000
        ) * 1000
        result[v] = entry
    return result
