"""What failing closed costs a run that never uses the fake (issue 19's target: within
noise, at most 5 ms of CPU per session).

    python -m bench.guardcost            # 200 tests, 15 interleaved runs per side
    python -m bench.guardcost --smoke    # 20 tests, 2 runs per side (CI)

Whole ``pytest`` runs (subprocesses) of the same unrelated suite, interleaved: with the
plugin loaded (``-p pytest_etcd_discovery.plugin``: its settings are read before the
first conftest and the guard patches the resolver for the whole run) and without it
(no plugin loaded at all, which is what ``-p no:etcd_discovery`` gives an installed
package).  Plugin auto-loading is off on both sides, so nothing else differs.  The CPU
time of a run is its rusage; the noise is the spread between runs of one side (half
the interquartile range of the without-plugin runs), reported beside the difference.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from .stats import clock, median

OURS = "pytest_etcd_discovery.plugin"
#: The plugin loaded with the guard turned off (the opt-out ini value).
GUARD_OFF = "etcd_discovery_allow_real_service=true"

#: An unrelated suite: tests that compute and touch the file system, none of it ours.
TEST = """
def test_{i}(tmp_path):
    (tmp_path / "f").write_text("x" * {i})
    assert sum(range({i})) == {i} * ({i} - 1) // 2
"""


def _quartiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 4], ordered[(3 * n) // 4]


def _run(
    suite: Path, plugins: tuple[str, ...], env: dict[str, str], count: int
) -> tuple[float, float]:
    load = [
        arg
        for plugin in plugins
        for arg in (("-p", plugin) if plugin != GUARD_OFF else ("-o", plugin))
    ]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *load, str(suite)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = clock()
    done = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    wall = clock() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or f"{count} passed" not in done.stdout:
        raise RuntimeError(f"the suite failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(count: int, reps: int) -> dict[str, dict[str, float]]:
    """Median CPU and wall ms of a whole run, per side, and the noise of each."""
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        suite = Path(tmp) / "suite"
        suite.mkdir()
        (suite / "pytest.ini").write_text("[pytest]\n")  # not this repository's settings
        (suite / "test_unrelated.py").write_text(
            "".join(TEST.format(i=i) for i in range(1, count + 1))
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        sides = {
            "plugin loaded": (OURS,),
            "plugin loaded, guard off": (OURS, GUARD_OFF),
            "without the plugin": (),
        }
        for plugins in sides.values():
            _run(suite, plugins, env, count)  # untimed: bytecode cached on both sides
        samples: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for _ in range(reps):  # interleaved: a load change hits both sides alike
            for side, plugins in sides.items():
                samples[side].append(_run(suite, plugins, env, count))
    result: dict[str, dict[str, float]] = {}
    for side, runs in samples.items():
        cpu = [c * 1000 for c, _ in runs]
        low, high = _quartiles(cpu)
        result[side] = {
            "cpu_ms": median(cpu),
            "wall_ms": median([w * 1000 for _, w in runs]),
            "noise_ms": (high - low) / 2,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guardcost", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="20 tests, 2 runs per side (CI)")
    parser.add_argument("--tests", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    count = args.tests or (20 if args.smoke else 200)
    reps = args.reps or (2 if args.smoke else 15)
    result = measure(count, reps)
    loaded, without = result["plugin loaded"], result["without the plugin"]
    unguarded = result["plugin loaded, guard off"]
    print(f"An unrelated suite of {count} tests, {reps} interleaved runs per side (medians):")
    print("| | CPU ms per run | wall ms per run | noise (half IQR of CPU) |")
    print("|---|---|---|---|")
    for side, row in result.items():
        print(f"| {side} | {row['cpu_ms']:.1f} | {row['wall_ms']:.1f} | {row['noise_ms']:.1f} |")
    print(
        f"the plugin: {loaded['cpu_ms'] - without['cpu_ms']:+.1f} ms CPU, "
        f"{loaded['wall_ms'] - without['wall_ms']:+.1f} ms wall per session; "
        f"the guard alone: {loaded['cpu_ms'] - unguarded['cpu_ms']:+.1f} ms CPU, "
        f"{loaded['wall_ms'] - unguarded['wall_ms']:+.1f} ms wall"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
