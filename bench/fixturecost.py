"""Group 3: what the ``etcd_discovery`` fixture adds to a pytest run.

Whole ``pytest`` runs (subprocesses) of N generated tests for each variant, N at two
sizes; the slope between the sizes minus the plain tests' slope is the marginal cost per
test, and what is left at the smaller size is the fixed cost per session. Every variant
runs with the same plugins installed, so interpreter and plugin start-up cancel out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import RunError
from .stats import clock, median

#: variant -> one test's source ({i} is its number).
VARIANTS: dict[str, str] = {
    "plain": "def test_{i}():\n    pass\n",
    "plain, plugin disabled": "def test_{i}():\n    pass\n",
    "etcd_discovery": "def test_{i}(etcd_discovery):\n    pass\n",
    "etcd_discovery+token": ("def test_{i}(etcd_discovery):\n    etcd_discovery.new_token()\n"),
    "httpserver": "def test_{i}(httpserver):\n    pass\n",
}
#: Extra pytest arguments per variant ("plain, plugin disabled" shows what the installed
#: plugin costs tests that do not use it: its autouse fixture and hooks).
ARGS: dict[str, tuple[str, ...]] = {"plain, plugin disabled": ("-p", "no:etcd_discovery")}


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
    body = "".join(VARIANTS[variant].format(i=i) + "\n\n" for i in range(count))
    (suite / "test_suite.py").write_text(body)
    return suite


def _run_suite(suite: Path, count: int, extra: tuple[str, ...] = ()) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(suite)]
    start = clock()
    proc = subprocess.run(
        argv, cwd=suite, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    seconds = clock() - start
    if proc.returncode != 0 or f"{count} passed" not in proc.stdout:
        raise RunError(f"pytest run of {suite.name} failed:\n{proc.stdout[-2000:]}{proc.stderr}")
    return seconds


def measure(sizes: tuple[int, int], reps: int) -> dict[str, dict[str, float]]:
    """Per variant: median run time at each size, per-test and per-session costs (ms)."""
    variants = [v for v in VARIANTS if v != "httpserver" or httpserver_available()]
    small, large = sizes
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fixture-") as tmp:
        suites = {(v, n): _write_suite(Path(tmp), v, n) for v in variants for n in (small, large)}
        # Round-robin, so a load change on the machine hits every variant alike.
        for _ in range(reps):
            for (v, n), suite in suites.items():
                times.setdefault((v, n), []).append(_run_suite(suite, n, ARGS.get(v, ())))
    med = {key: median(values) for key, values in times.items()}
    plain_slope = (med[("plain", large)] - med[("plain", small)]) / (large - small)
    result: dict[str, dict[str, float]] = {}
    for v in variants:
        slope = (med[(v, large)] - med[(v, small)]) / (large - small)
        per_test = slope - plain_slope
        per_session = med[(v, small)] - med[("plain", small)] - per_test * small
        result[v] = {
            f"run_{small}_ms": med[(v, small)] * 1000,
            f"run_{large}_ms": med[(v, large)] * 1000,
            "per_test_ms": per_test * 1000,
            "per_session_ms": per_session * 1000,
        }
    return result
