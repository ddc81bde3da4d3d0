"""Run every benchmark group; write JSON, markdown and a PNG plot under bench/results/.

    python -m bench            # full sizes (several minutes)
    python -m bench --smoke    # smallest sizes, well under a minute (CI)
    python -m bench --readme   # also refresh the table and plot in bench/README.md

Each group measures, in the same run and interleaved round-robin, the fake's live server
(``live``: in this process like the plugin runs it; ``live-proc``: its own process), the
fake in-process through ``responses`` (``inprocess``), the real stack (``real``) and,
for single requests, ``responses`` with a static body (``floor``).  Issue 20's groups
(``script``, ``wake``, ``connect``, ``idle``, and ``cluster``'s ``live-tls`` column: the
fake through its TLS front) compare ``live`` with ``real`` (:mod:`bench.atscale`); the
report puts their rows side by side in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import atscale, bootstrap, fixturecost, latency, realcluster, report, scale
from bench.common import Row
from bench.members import MemberProcess
from bench.stats import median
from bench.targets import (
    FloorTarget,
    FrontTarget,
    InProcessTarget,
    LiveTarget,
    Target,
    make_target,
    real_available,
)

BENCH_DIR = Path(__file__).resolve().parent
GROUPS = (
    "bootstrap",
    "script",
    "latency",
    "fixture",
    "scale",
    "wake",
    "connect",
    "idle",
    "cluster",
    "v3",
)


@dataclass(frozen=True)
class Sizes:
    bootstrap: tuple[int, ...]
    bootstrap_reps: int
    latency_batch: int
    latency_reps: int
    wake_batch: int
    fixture_sizes: tuple[int, int]
    fixture_reps: int
    members: tuple[int, ...]
    tokens: tuple[int, ...]
    watchers: tuple[int, ...]
    scale_reps: int
    cluster_reps: int
    #: Issue 20: fixed-script members, watchers woken at once, clients connecting at
    #: once, idle connections held, real cluster sizes; rounds for each.
    script: tuple[int, ...] = (20, 100)
    script_reps: int = 5
    wake_watchers: int = 1000
    connect_clients: int = 500
    idle_connections: int = 500  # per round, held: 3,000 per service after 6 rounds
    at_once_reps: int = 5
    cluster_sizes: tuple[int, ...] = (3, 5)


FULL = Sizes(
    bootstrap=(3, 20, 100),
    bootstrap_reps=7,
    latency_batch=50,
    latency_reps=9,
    wake_batch=10,
    fixture_sizes=(100, 400),
    fixture_reps=5,
    members=(10, 100, 1000),
    tokens=(10, 100, 1000, 10000),
    watchers=(10, 100, 1000),
    scale_reps=3,
    cluster_reps=5,
)
SMOKE = Sizes(
    bootstrap=(3,),
    bootstrap_reps=1,
    latency_batch=5,
    latency_reps=1,
    wake_batch=2,
    fixture_sizes=(5, 10),
    fixture_reps=1,
    members=(10,),
    tokens=(10,),
    watchers=(10,),
    scale_reps=1,
    cluster_reps=1,
    script=(100,),  # the hardest fixed-script row, so CI keeps it running
    script_reps=1,
    wake_watchers=50,
    connect_clients=50,
    idle_connections=20,
    at_once_reps=1,
    cluster_sizes=(3,),
)


def _script_round(target: Target, size: int, members: MemberProcess) -> dict[str, float]:
    return atscale.script_round(target, size, members)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _rotated(items: list[Target], turn: int) -> list[Target]:
    """A different target goes first each round, so drift does not favour one."""
    turn %= len(items) or 1
    return items[turn:] + items[:turn]


#: CPU seconds per wall second each service process uses while idle (etcd's raft ticker,
#: the fake's accept-loop poll); subtracted so service CPU counts the requests only.
IDLE_CPU_RATE: dict[str, float] = {}


def _measure(
    target: Target, fn: Callable[[], Any], service_cpu: dict[str, float] | None = None
) -> Any:
    """Run ``fn`` with ``target`` active; add the service's CPU seconds to ``service_cpu``."""
    target.activate()
    before = target.service_cpu()
    start = time.monotonic()
    try:
        return fn()
    finally:
        after = target.service_cpu()
        if service_cpu is not None and before is not None and after is not None:
            idle = IDLE_CPU_RATE.get(target.name, 0.0) * (time.monotonic() - start)
            service_cpu[target.name] = service_cpu.get(target.name, 0.0) + after - before - idle
        target.deactivate()


def calibrate_idle(targets: list[Target], seconds: float) -> None:
    """Measure each service's idle CPU rate over one quiet window (not a wait for a
    condition: the window itself is the measurement)."""
    before = {t.name: t.service_cpu() for t in targets}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    for t in targets:
        first, now = before[t.name], t.service_cpu()
        if first is not None and now is not None:
            IDLE_CPU_RATE[t.name] = (now - first) / elapsed


def _command_output(argv: list[str]) -> str:
    exe = shutil.which(argv[0])
    if exe is None:
        return "missing"
    try:
        proc = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return repr(exc)
    return (proc.stdout or proc.stderr).strip()


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    from importlib.metadata import version

    etcd = _command_output(["etcd", "--version"]).splitlines()
    here = str(BENCH_DIR.parent)
    commit = _command_output(["git", "-C", here, "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"])
    discovery = _command_output(["dpkg-query", "-W", "-f=${Version}", "etcd-discovery"])
    return {
        # BENCH_COMMIT names the commit when running from an exported snapshot
        # (``git archive HEAD``), which is how a run avoids a work tree in flux.
        "commit": os.environ.get("BENCH_COMMIT")
        or (commit if "fatal" not in commit else "not a git checkout"),
        "dirty": bool(dirty) and "fatal" not in dirty,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "etcd": etcd[0] if etcd else "missing",
        "discovery.etcd.io": discovery,
        "werkzeug": version("werkzeug"),
        "requests": version("requests"),
        "responses": version("responses"),
        "loadavg_start": os.getloadavg()[0],
    }


class Runner:
    def __init__(self, sizes: Sizes, groups: tuple[str, ...], use_real: bool) -> None:
        self.sizes = sizes
        self.groups = groups
        self.rows: dict[str, dict[str, Row]] = {g: {} for g in GROUPS}
        self.series: dict[str, Any] = {}
        self.fixture: dict[str, Any] = {}
        self.skipped: list[str] = []
        self.errors: list[str] = []
        names = ["live", "live-proc", "inprocess"]
        reason = real_available() if use_real else "--no-real"
        if reason is None:
            names.append("real")
        else:
            self.skipped.append(f"real stack: {reason}")
        self.targets: dict[str, Target] = {}
        self.members = MemberProcess()
        for name in names:
            target = make_target(name)
            target.start()
            self.targets[name] = target
        if "cluster" in groups:  # real etcd reaching the fake at its public URL
            live = self.targets["live"]
            assert isinstance(live, LiveTarget)
            front = FrontTarget(live)
            front.start()
            self.targets[front.name] = front
        _log(f"targets up: {', '.join(f'{t.name} {t.base_url}' for t in self.targets.values())}")
        calibrate_idle(list(self.targets.values()), 0.5 if sizes is SMOKE else 3.0)
        _log(f"idle service CPU (s/s): {IDLE_CPU_RATE}")

    def close(self) -> None:
        self.members.close()
        for target in reversed(self.targets.values()):  # the front before its server
            target.stop()

    def pick(self, *names: str) -> list[Target]:
        return [self.targets[n] for n in names if n in self.targets]

    # -- groups ------------------------------------------------------------------------

    def run_bootstrap(self) -> None:
        rows = self.rows["bootstrap"]
        targets = self.pick("live", "live-proc", "inprocess", "real")
        for size in self.sizes.bootstrap:
            row = rows.setdefault(f"N={size}", Row("bootstrap", f"N={size}", "ms"))
            for t in targets:  # warm-up round, not recorded
                _measure(t, partial(bootstrap.bootstrap_once, t, size, self.members))
            samples: dict[str, list[float]] = {}
            service_cpu: dict[str, float] = {}
            member_cpus: dict[str, list[float]] = {}
            for turn in range(self.sizes.bootstrap_reps):
                for t in _rotated(targets, turn):
                    seconds, reqs, member_cpu = _measure(
                        t, partial(bootstrap.bootstrap_once, t, size, self.members), service_cpu
                    )
                    samples.setdefault(t.name, []).append(seconds)
                    row.extra.setdefault("requests", {}).setdefault(t.name, []).append(reqs)
                    if member_cpu is not None:
                        member_cpus.setdefault(t.name, []).append(member_cpu * 1000)
            for name, values in samples.items():
                row.add(name, values, scale=1000)
            # CPU the service process(es) spent per bootstrap (live-proc and real only).
            row.extra["service_cpu_ms"] = {
                name: total * 1000 / self.sizes.bootstrap_reps
                for name, total in service_cpu.items()
            }
            # CPU the simulated members' process spent per bootstrap (median): the
            # client's own cost, which real etcd members (Go) keep small.
            row.extra["member_cpu_ms"] = {
                name: median(values) for name, values in member_cpus.items()
            }
            _log(
                f"bootstrap N={size}: {report.fmt_values(row)} cpu {row.extra['service_cpu_ms']}"
                f" members' cpu {row.extra['member_cpu_ms']}"
            )

    def run_latency(self) -> None:
        rows = self.rows["latency"]
        inproc = self.targets["inprocess"]
        assert isinstance(inproc, InProcessTarget)
        floor = FloorTarget(latency.floor_replies(InProcessTarget().app()))
        floor.start()
        bench = latency.LatencyBench(self.members)
        try:
            for case, label in latency.CASES:
                row = rows.setdefault(case, Row("latency", label, "ms"))
                targets = self.pick("live", "live-proc", "inprocess", "real")
                if case in ("new", "get", "put", "get-timeout"):
                    targets.append(floor)
                elif case in latency.WIRE_CASES:  # responses answers requests only
                    targets = [t for t in targets if not t.patches_this_process]
                else:  # the wake-up needs to see the watcher registered
                    targets = [t for t in targets if t.counts_watchers]
                batch = self.sizes.wake_batch if case == "wake" else self.sizes.latency_batch
                samples: dict[str, list[list[float]]] = {}
                cpu: dict[str, list[float]] = {}
                service_cpu: dict[str, float] = {}
                for t in targets:  # warm-up
                    _measure(t, partial(bench.batch, t, case, min(batch, 5)))
                for turn in range(self.sizes.latency_reps):
                    for t in _rotated(targets, turn):
                        sink = cpu.setdefault(t.name, [])
                        got = _measure(
                            t,
                            partial(bench.batch, t, case, batch, sink),
                            service_cpu,
                        )
                        samples.setdefault(t.name, []).append(got)
                for name, batches in samples.items():
                    flat = [s for b in batches for s in b]
                    row.samples[name] = [s * 1000 for s in flat]
                    row.values[name] = latency.summarize(batches)
                if cpu:
                    row.extra["cpu_ms"] = {
                        name: median(values) * 1000 for name, values in cpu.items() if values
                    }
                calls = batch * self.sizes.latency_reps
                row.extra["service_cpu_ms"] = {
                    name: total * 1000 / calls for name, total in service_cpu.items()
                }
                _log(f"latency {case}: {report.fmt_values(row)}")
        finally:
            bench.close()
            floor.stop()

    def run_fixture(self) -> None:
        if not fixturecost.httpserver_available():
            self.skipped.append("httpserver fixture: pytest-httpserver not installed")
        self.fixture = fixturecost.measure(
            self.sizes.fixture_sizes, self.sizes.fixture_reps, quick=self.sizes is SMOKE
        )
        _log(f"fixture: {json.dumps(self.fixture)}")

    def run_scale(self) -> None:
        s = self.sizes
        members: dict[str, list[list[dict[str, float]]]] = {}
        tokens: dict[str, list[list[dict[str, float]]]] = {}
        watchers: dict[str, dict[int, list[dict[str, float]]]] = {}
        timed_targets = self.pick("live", "live-proc", "inprocess", "real")
        for turn in range(s.scale_reps):
            for t in _rotated(timed_targets, turn):
                members.setdefault(t.name, []).append(
                    _measure(t, partial(scale.members_series, t, s.members))
                )
                tokens.setdefault(t.name, []).append(
                    _measure(t, partial(scale.tokens_series, t, s.tokens))
                )
                if t.counts_watchers:
                    for count in s.watchers:
                        point = _measure(t, partial(scale.watchers_point, t, count, self.members))
                        watchers.setdefault(t.name, {}).setdefault(count, []).append(point)
            _log(f"scale round {turn + 1}/{s.scale_reps} done")
        traced_members, members_journal = scale.traced_series("members", s.members)
        traced_tokens, tokens_journal = scale.traced_series("tokens", s.tokens)
        self.series = {
            "members": report.median_series(members),
            "tokens": report.median_series(tokens),
            "watchers": report.median_watchers(watchers),
            "traced_members": traced_members,
            "traced_tokens": traced_tokens,
            "journal": {"members": members_journal, "tokens": tokens_journal},
        }
        _log("scale: " + json.dumps(self.series["traced_members"][-1]))

    def run_cluster(self) -> None:
        reason = realcluster.cluster_missing()
        if reason is not None:
            self.skipped.append(f"cluster group: {reason}")
            return
        targets = self.pick("live", "live-tls", "real")
        for size in self.sizes.cluster_sizes:
            row = self.rows["cluster"].setdefault(
                f"{size} nodes", Row("cluster", f"{size} members to healthy", "ms")
            )
            samples: dict[str, list[float]] = {}
            for turn in range(self.sizes.cluster_reps):
                for t in _rotated(targets, turn):
                    samples.setdefault(t.name, []).append(
                        _measure(t, partial(realcluster.bootstrap_cluster, t, size))
                    )
            for name, values in samples.items():
                row.add(name, values, scale=1000)
            _log(f"cluster {size}: {report.fmt_values(row)}")

    # -- issue 20: many clients at once (bench/atscale.py) -------------------------------

    def _rounds(
        self, targets: list[Target], fn: Callable[[Target], Any], reps: int, warm: bool = True
    ) -> dict[str, list[Any]]:
        """``fn(target)`` for every target, ``reps`` interleaved rounds (a different
        target first each round) after one unrecorded warm-up round."""
        if warm:
            for t in targets:
                _measure(t, partial(fn, t))
        out: dict[str, list[Any]] = {}
        for turn in range(reps):
            for t in _rotated(targets, turn):
                out.setdefault(t.name, []).append(_measure(t, partial(fn, t)))
        return out

    def run_script(self) -> None:
        targets = self.pick("live", "real")
        for size in self.sizes.script:
            row = self.rows["script"].setdefault(f"N={size}", Row("script", f"N={size}", "ms"))
            got = self._rounds(
                targets,
                partial(_script_round, size=size, members=self.members),
                self.sizes.script_reps,
            )
            for name, rounds in got.items():
                row.add(name, [r["seconds"] for r in rounds], scale=1000)
                for key, scale_by in (
                    ("requests", 1),
                    ("last_put", 1000),
                    ("median_put", 1000),
                    ("served_once", 1000),
                    ("cpu", 1000),
                ):
                    row.extra.setdefault(key, {})[name] = median(
                        [r[key] * scale_by for r in rounds]
                    )
            _log(f"script N={size}: {report.fmt_values(row)} {json.dumps(row.extra)}")

    def run_wake(self) -> None:
        count = self.sizes.wake_watchers
        row = self.rows["wake"].setdefault(
            "wake", Row("wake", f"{count:,} watchers woken by one PUT", "ms")
        )
        got = self._rounds(
            self.pick("live", "real"),
            lambda t: scale.watchers_point(t, count, self.members),
            self.sizes.at_once_reps,
        )
        for name, points in got.items():
            row.add(name, [p["seconds"] for p in points], scale=1000)
            for key, scale_by in (
                ("median_wake", 1000),
                ("server_cpu", 1000),
                ("rss_per_watcher", 1),
            ):
                values = [p[key] * scale_by for p in points if key in p]
                if values:
                    row.extra.setdefault(key, {})[name] = median(values)
        _log(f"wake {count}: {report.fmt_values(row)} {json.dumps(row.extra)}")

    def run_connect(self) -> None:
        clients = self.sizes.connect_clients
        row = self.rows["connect"].setdefault(
            "connect", Row("connect", f"{clients:,} clients connecting at once", "ms")
        )
        got = self._rounds(
            self.pick("live", "real"),
            lambda t: atscale.connect_round(t, clients, self.members),
            self.sizes.at_once_reps,
        )
        for name, rounds in got.items():
            row.add(name, [r["reply_p50"] for r in rounds], scale=1000)
            for key in ("connect_p50", "connect_p99", "reply_p50", "reply_p99", "served"):
                scale_by = 1 if key == "served" else 1000
                row.extra.setdefault(key, {})[name] = median([r[key] * scale_by for r in rounds])
        _log(f"connect {clients}: {json.dumps(row.extra)}")

    def run_idle(self) -> None:
        count = self.sizes.idle_connections
        row = self.rows["idle"].setdefault(
            "idle", Row("idle", f"{count:,} more a round, all held", "B")
        )
        targets = self.pick("live", "live-proc", "real")
        try:
            got = self._rounds(
                targets,
                lambda t: atscale.idle_round(t, count, self.members),
                self.sizes.at_once_reps,
            )
        finally:  # every round's connections were held until now
            self.members.release(targets[0])
        for name, values in got.items():
            row.add(name, values)
        _log(f"idle {count}: {report.fmt_values(row)} per connection")

    def run_v3(self) -> None:
        # The etcd v3 API's Range/Put/Watch next to a real etcd's (bench/v3.py).
        from bench import v3

        v3.measure(
            self.sizes.latency_batch * 4, self.sizes.latency_reps, self.rows["v3"], self.skipped
        )

    def run(self) -> None:
        for group in self.groups:
            _log(f"group {group} ...")
            try:
                getattr(self, f"run_{group}")()
            except Exception as exc:  # the other groups still run; the exit code says it
                _log(f"group {group} FAILED: {exc}")
                self.errors.append(f"{group}: {str(exc)[:500]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="smallest sizes, one repetition")
    parser.add_argument(
        "--groups", default=",".join(GROUPS), help=f"comma list of {', '.join(GROUPS)}"
    )
    parser.add_argument("--no-real", action="store_true", help="leave the real stack out")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--readme", action="store_true", help="refresh the results block of bench/README.md"
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: rebuild the markdown and plot (and README with --readme) "
        "from a results.json written by an earlier run",
    )
    args = parser.parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
        results["checks"] = report.checks(results)
        write_outputs(results, args.out, args.readme)
        return 1 if results.get("errors") else 0
    groups = tuple(g for g in args.groups.split(",") if g)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {sorted(unknown)}")
    sizes = SMOKE if args.smoke else FULL
    started = time.time()
    machine = machine_info()
    _log(f"machine: {json.dumps(machine)}")
    runner = Runner(sizes, groups, use_real=not args.no_real)
    try:
        runner.run()
    finally:
        runner.close()
    machine["loadavg_end"] = os.getloadavg()[0]
    command = "python -m bench" + (" --smoke" if args.smoke else "")
    results = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine,
        "sizes": asdict(sizes),
        "rows": [asdict(r) for g in runner.rows.values() for r in g.values()],
        "fixture": runner.fixture,
        "series": runner.series,
        "skipped": runner.skipped,
        "errors": runner.errors,
        "idle_cpu_rate": IDLE_CPU_RATE,
    }
    results["checks"] = report.checks(results)
    write_outputs(results, args.out, args.readme)
    _log(f"done in {results['seconds']} s: {args.out / 'results.md'}")
    return 1 if runner.errors else 0


def write_outputs(results: dict[str, Any], out: Path, readme: bool) -> None:
    """results.json, results.md and scale.png under ``out``; optionally the README block
    (and bench/scale.png, which the README shows)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot = out / "scale.png"
    has_plot = report.plot(results, plot)
    markdown = report.markdown(results, "scale.png" if has_plot else None)
    (out / "results.md").write_text(markdown)
    if readme:
        if has_plot:
            shutil.copyfile(plot, BENCH_DIR / "scale.png")
        report.update_readme(BENCH_DIR / "README.md", markdown)
    print(markdown)


if __name__ == "__main__":
    raise SystemExit(main())
