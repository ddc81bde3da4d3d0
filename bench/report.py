"""Turn measurements into the markdown table, the target checks and the scale plot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Row
from .stats import median

TARGET_ORDER = (
    "live",
    "live-proc",
    "live-tls",
    "inprocess",
    "floor",
    "real",
    # issue 22's v3 group (bench/v3.py)
    "v3-fake",
    "v3-fake-proc",
    "v3-real",
)
_COLORS = {"live": "C0", "live-proc": "C1", "inprocess": "C2", "real": "C3", "fake": "C2"}
README_BEGIN = "<!-- bench:results:begin -->"
README_END = "<!-- bench:results:end -->"


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmt_values(row: Row) -> str:
    return ", ".join(f"{k}={_num(v)}{row.unit}" for k, v in row.values.items())


def median_series(
    runs: dict[str, list[list[dict[str, float]]]],
) -> dict[str, list[dict[str, float]]]:
    """Point-wise medians over repeated series."""
    out: dict[str, list[dict[str, float]]] = {}
    for target, series in runs.items():
        points = []
        for same_n in zip(*series, strict=True):
            point = {"n": same_n[0]["n"]}
            for key in same_n[0]:
                if key != "n":
                    point[key] = median([p[key] for p in same_n])
            points.append(point)
        out[target] = points
    return out


def median_watchers(
    runs: dict[str, dict[int, list[dict[str, float]]]],
) -> dict[str, list[dict[str, float]]]:
    return median_series(
        {t: [list(col) for col in zip(*by_n.values(), strict=True)] for t, by_n in runs.items()}
    )


def _rows(results: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [r for r in results["rows"] if r["group"] == group]


def _value(results: dict[str, Any], group: str, case: str, target: str) -> float | None:
    for r in _rows(results, group):
        if r["case"] == case:
            v = r["values"].get(target)
            return float(v) if v is not None else None
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def _targets_in(rows: list[dict[str, Any]]) -> list[str]:
    seen = {t for r in rows for t in r["values"]}
    return [t for t in TARGET_ORDER if t in seen]


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def _compare_table(
    results: dict[str, Any], group: str, first: str, ratios: list[tuple[str, str]]
) -> str:
    rows = _rows(results, group)
    targets = _targets_in(rows)
    header = [first, *targets, *(f"{a}/{b}" for a, b in ratios)]
    lines = []
    for r in rows:
        v = r["values"]
        line = [r["case"], *(_num(v.get(t)) for t in targets)]
        line += [_num(_ratio(v.get(a), v.get(b))) for a, b in ratios]
        lines.append(line)
    return _table(header, lines)


def _service_cpu_table(results: dict[str, Any], group: str, first: str, per: str) -> str:
    """CPU the service process(es) used, per ``per``: load-independent cost."""
    lines = []
    for r in _rows(results, group):
        cpu = r["extra"].get("service_cpu_ms") or {}
        if "live-proc" in cpu or "real" in cpu:
            lines.append(
                [
                    r["case"],
                    _num(cpu.get("live-proc"), 3),
                    _num(cpu.get("real"), 3),
                    _num(_ratio(cpu.get("live-proc"), cpu.get("real"))),
                ]
            )
    if not lines:
        return ""
    return (
        f"\nCPU used by the service's own process(es) per {per} (idle use subtracted; "
        "`real` = etcd + discovery.etcd.io):\n\n"
        + _table([first, "live-proc CPU ms", "real CPU ms", "live-proc/real"], lines)
    )


def _member_cpu_table(results: dict[str, Any]) -> str:
    """CPU the simulated members' own process used per bootstrap: the client's share."""
    rows = [r for r in _rows(results, "bootstrap") if r["extra"].get("member_cpu_ms")]
    if not rows:
        return ""
    targets = [t for t in TARGET_ORDER if any(t in r["extra"]["member_cpu_ms"] for r in rows)]
    lines = [
        [r["case"], *(_num(r["extra"]["member_cpu_ms"].get(t), 3) for t in targets)] for r in rows
    ]
    return (
        "\nCPU used by the simulated members' process per bootstrap (median; the client "
        "side: one selector loop with a kept connection per member, the same bytes for "
        "every service; "
        "`inprocess` members share the benchmark process and are not counted):\n\n"
        + _table(["members", *(f"{t} members CPU ms" for t in targets)], lines)
    )


def _requests_table(results: dict[str, Any]) -> str:
    """Requests one bootstrap took: the work depends on how the members interleave."""
    rows = [r for r in _rows(results, "bootstrap") if isinstance(r["extra"].get("requests"), dict)]
    if not rows:
        return ""
    targets = _targets_in(rows)
    lines = [[r["case"], *(_span(r["extra"]["requests"].get(t)) for t in targets)] for r in rows]
    return (
        "\nRequests per bootstrap (median, min-max). The members watch for every "
        "registration made after their own listing, so the count depends on how the "
        "members happened to interleave, for the real stack too:\n\n"
        + _table(["members", *targets], lines)
    )


def _span(values: list[int] | None) -> str:
    if not values:
        return "-"
    return f"{_num(median(values), 0)} ({min(values)}-{max(values)})"


@dataclass(frozen=True)
class Line:
    """One row of the side-by-side table: the fake's figure, the real stack's, and the
    issue's bound on their ratio (None: reported, no target)."""

    label: str
    unit: str
    fake: float | None
    real: float | None
    bound: float | None = None
    fake_name: str = "live"


def _extra(results: dict[str, Any], group: str, case: str, key: str, target: str) -> float | None:
    for r in _rows(results, group):
        if r["case"] == case:
            value = (r["extra"].get(key) or {}).get(target)
            if isinstance(value, list):
                return median(value) if value else None
            return None if value is None else float(value)
    return None


def _extra_line(
    results: dict[str, Any],
    group: str,
    case: str,
    key: str,
    label: str,
    unit: str,
    bound: float | None = None,
) -> Line:
    """A row of one extra measurement, the fake (``live``) next to ``real``."""
    fake = _extra(results, group, case, key, "live")
    return Line(label, unit, fake, _extra(results, group, case, key, "real"), bound)


def at_scale_lines(results: dict[str, Any]) -> list[Line]:
    """Issue 20's rows, fake next to real, from whichever groups ran."""
    out: list[Line] = []
    for r in _rows(results, "script"):
        case, v = r["case"], r["values"]
        out.append(Line(f"fixed script {case}: wall", "ms", v.get("live"), v.get("real"), 1.0))
        for key, label, unit, bound in (
            ("requests", "requests", "", 1.0),
            ("median_put", "median PUT answered after", "ms", None),
            ("last_put", "last PUT answered after", "ms", None),
            ("served_once", "connections served once (a burst of N)", "ms", None),
            ("cpu", "clients' CPU (member process)", "ms", None),
        ):
            label = f"fixed script {case}: {label}"
            out.append(_extra_line(results, "script", case, key, label, unit, bound))
    for r in _rows(results, "bootstrap"):
        case, v = r["case"], r["values"]
        out.append(Line(f"natural protocol {case}: wall", "ms", v.get("live"), v.get("real")))
        label = f"natural protocol {case}: requests"
        out.append(_extra_line(results, "bootstrap", case, "requests", label, ""))
    for r in _rows(results, "wake"):
        case, v = r["case"], r["values"]
        out.append(Line(f"{case}: the last woken", "ms", v.get("live"), v.get("real"), 1.0))
        for key, label, unit, bound in (
            ("median_wake", "the median woken", "ms", None),
            ("server_cpu", "server CPU for the wake-up", "ms", 1.0),
            ("rss_per_watcher", "memory per waiting watcher (RSS)", "B", None),
        ):
            out.append(_extra_line(results, "wake", case, key, f"{case}: {label}", unit, bound))
    for r in _rows(results, "connect"):
        case = r["case"]
        for key, label, bound in (
            ("connect_p50", "connect p50", 1.0),
            ("reply_p50", "reply p50", 1.0),
            ("connect_p99", "connect p99", None),
            ("reply_p99", "reply p99", None),
            ("served", "replies", None),
        ):
            unit = "" if key == "served" else "ms"
            out.append(_extra_line(results, "connect", case, key, f"{case}: {label}", unit, bound))
    labels = dict(_cases())
    wire = {labels[case] for case in _wire_cases()}
    for r in _rows(results, "latency"):
        case, v = r["case"], r["values"]
        if case == labels["wake"]:
            out.append(Line("watch wake-up", "ms", v.get("live"), v.get("real"), 0.7))
        else:
            # The bound is the service's: on a lean client's kept connection. Through
            # requests the client's own CPU is most of both sides' time; shown, unbounded.
            bound = 0.5 if case in wire else None
            out.append(Line(f"kept connection: {case}", "ms", v.get("live"), v.get("real"), bound))
    for r in _rows(results, "cluster"):
        case, v = r["case"], r["values"]
        out.append(
            Line(
                f"real etcd 3.4, {case} (fake through the TLS front)",
                "ms",
                v.get("live-tls"),
                v.get("real"),
                1.0,
                fake_name="live-tls",
            )
        )
        if "live" in v:
            out.append(
                Line(
                    f"real etcd 3.4, {case} (fake's plain URL)", "ms", v.get("live"), v.get("real")
                )
            )
    for r in _rows(results, "idle"):
        case, v = r["case"], r["values"]
        for name in ("live", "live-proc"):
            if name in v:
                out.append(
                    Line(
                        f"memory per idle connection (RSS, {case})",
                        "B",
                        v.get(name),
                        v.get("real"),
                        fake_name=name,
                    )
                )
    return out


def _at_scale_table(results: dict[str, Any]) -> str:
    lines = at_scale_lines(results)
    if not lines:
        return ""
    body = [
        [
            line.label + (f" ({line.unit})" if line.unit else ""),
            f"{_num(line.fake)}" + ("" if line.fake_name == "live" else f" ({line.fake_name})"),
            _num(line.real),
            _num(_ratio(line.fake, line.real)),
            "-" if line.bound is None else f"<= {line.bound:g}",
        ]
        for line in lines
    ]
    return _table(["row", "fake", "real", "fake/real", "target"], body)


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against this run's numbers (``ok`` None = not measured)."""
    out: list[dict[str, Any]] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        out.append({"target": name, "measured": measured, "ok": ok})

    # Issue 20 (the natural protocol's bootstrap has no target: its request count
    # follows how fast PUTs return, see the side-by-side table).
    for line in at_scale_lines(results):
        if line.bound is None:
            continue
        ratio = _ratio(line.fake, line.real)
        add(
            f"{line.label}: {line.fake_name} <= {line.bound:g}x real",
            f"{_num(line.fake)} vs {_num(line.real)} {line.unit} ({_num(ratio)}x)",
            None if ratio is None else ratio <= line.bound,
        )
    for case in ("new", "get", "put"):
        label = _label(results, case)
        inproc = _value(results, "latency", label, "inprocess")
        floor = _value(results, "latency", label, "floor")
        cpu = _cpu(results, label)
        cpu_ratio = _ratio(cpu.get("inprocess"), cpu.get("floor"))
        add(
            f"in-process {case} within 1.5x of the responses floor (CPU time; wall in brackets)",
            f"{_num(cpu.get('inprocess'), 3)} vs {_num(cpu.get('floor'), 3)} ms CPU "
            f"({_num(cpu_ratio)}x) [wall {_num(inproc, 3)} vs {_num(floor, 3)} ms, "
            f"{_num(_ratio(inproc, floor))}x]",
            None if cpu_ratio is None else cpu_ratio <= 1.5,
        )
    fixture = results.get("fixture") or {}
    ours = fixture.get("etcd_discovery")
    theirs = fixture.get("httpserver")
    if ours:
        add(
            "fixture <= 0.2 ms per test over plain",
            f"{_num(ours['per_test_ms'], 3)} ms",
            ours["per_test_ms"] <= 0.2,
        )
        add(
            "fixture per-session cost well under pytest-httpserver's",
            f"{_num(ours['per_session_ms'])} ms vs "
            + (
                f"{_num(theirs['per_session_ms'])} ms wall (CPU: "
                f"{_num(ours.get('per_session_cpu_ms'))} vs "
                f"{_num(theirs.get('per_session_cpu_ms'))} ms)"
                if theirs
                else "not measured"
            ),
            None if not theirs else ours["per_session_ms"] < 0.5 * theirs["per_session_ms"],
        )
    for target in ("live", "inprocess"):
        wake = _value(results, "latency", _label(results, "wake"), target)
        add(
            f"watch wake-up < 1 ms median ({target})",
            f"{_num(wake, 3)} ms",
            None if wake is None else wake < 1.0,
        )
    series = results.get("series") or {}
    for target, points in (series.get("watchers") or {}).items():
        top = max(points, key=lambda p: p["n"])
        if top["n"] >= 1000:
            add(
                f"1,000 watchers woken by one write < 1 s ({target})",
                f"{_num(top['seconds'] * 1000)} ms",
                top["seconds"] < 1.0,
            )
    traced = series.get("traced_members") or []
    if traced:
        top = traced[-1]
        per = top["bytes"] / top["n"]
        add(
            f"memory < 2 KB per registered member (fake, tracemalloc, {int(top['n'])} members)",
            f"{_num(per, 0)} B/member",
            per < 2048,
        )
    for kind in ("members", "tokens"):
        for target, points in (series.get(kind) or {}).items():
            growth = _linearity(points, "seconds")
            if growth is not None:
                add(
                    f"time linear in {kind} ({target}: per-item cost last/first segment)",
                    f"{_num(growth)}x",
                    growth < 2.0,
                )
        traced_points = series.get(f"traced_{kind}") or []
        growth = _linearity(traced_points, "bytes")
        if growth is not None:
            add(
                f"memory linear in {kind} (fake, tracemalloc: per-item last/first segment)",
                f"{_num(growth)}x",
                growth < 2.0,
            )
    # Issue 22: the v3 endpoint at most the real etcd's per request.
    for r in _rows(results, "v3"):
        fake, real = r["values"].get("v3-fake"), r["values"].get("v3-real")
        add(
            f"v3 {r['case']}: v3-fake <= v3-real per request",
            f"{_num(fake, 3)} vs {_num(real, 3)} ms",
            None if fake is None or real is None else fake <= real,
        )
    return out


def _cpu(results: dict[str, Any], label: str) -> dict[str, float]:
    for r in _rows(results, "latency"):
        if r["case"] == label:
            return dict(r["extra"].get("cpu_ms") or {})
    return {}


def _cases() -> tuple[tuple[str, str], ...]:
    from .latency import CASES

    return CASES


def _wire_cases() -> tuple[str, ...]:
    from .latency import WIRE_CASES

    return WIRE_CASES


def _label(results: dict[str, Any], case: str) -> str:
    return dict(_cases())[case]


def _linearity(points: list[dict[str, float]], key: str) -> float | None:
    """Per-item cost in the last segment over the first (1.0 = perfectly linear)."""
    if len(points) < 2:
        return None
    first = points[0][key] / points[0]["n"]
    last = (points[-1][key] - points[-2][key]) / (points[-1]["n"] - points[-2]["n"])
    return _ratio(last, first)


def _series_table(results: dict[str, Any], kind: str) -> str:
    series = results["series"]
    timed = series.get(kind) or {}
    traced = {int(p["n"]): p for p in series.get(f"traced_{kind}") or []}
    targets = [t for t in TARGET_ORDER if t in timed]
    header = [kind, *(f"{t} s" for t in targets)]
    header += ["fake B/item (tracemalloc)"]
    mem_targets = [t for t in targets if any("bytes" in p for p in timed[t])]
    header += [f"{t} RSS B/item" for t in mem_targets]
    if kind == "members":
        header += [f"{t} GET ms" for t in targets]
    lines = []
    for i, point in enumerate(timed[targets[0]] if targets else []):
        n = int(point["n"])
        line = [f"{n:,}"]
        line += [_num(timed[t][i]["seconds"], 3) for t in targets]
        tp = traced.get(n)
        line.append(_num(tp["bytes"] / n, 0) if tp else "-")
        line += [_num(timed[t][i].get("bytes", float("nan")) / n, 0) for t in mem_targets]
        if kind == "members":
            line += [_num(timed[t][i]["get_seconds"] * 1000) for t in targets]
        lines.append(line)
    return _table(header, lines)


def markdown(results: dict[str, Any], plot_name: str | None) -> str:
    m = results["machine"]
    parts = [
        f"Measured {results['date']} with `{results['command']}` ({results['seconds']} s).\n",
        _table(
            ["machine", ""],
            [
                ["CPU", f"{m['cpu']}, nproc {m['nproc']}"],
                ["memory", f"{m['memory_gib']} GiB"],
                [
                    "load average (1 min) at start / end",
                    f"{m['loadavg_start']:.1f} / {m.get('loadavg_end', 0):.1f}",
                ],
                ["kernel", m["kernel"]],
                [
                    "code",
                    f"commit {m.get('commit')}" + (" + local changes" if m.get("dirty") else ""),
                ],
                ["Python", m["python"]],
                ["etcd", m["etcd"]],
                ["discovery.etcd.io (Debian etcd-discovery)", m["discovery.etcd.io"] or "missing"],
                [
                    "werkzeug / requests / responses",
                    f"{m['werkzeug']} / {m['requests']} / {m['responses']}",
                ],
            ],
        ),
    ]
    if results.get("errors"):
        parts.append("**Groups that failed:** " + "; ".join(results["errors"]) + "\n")
    for note in results.get("notes") or []:
        parts.append(f"Note: {note}\n")
    if results["skipped"]:
        parts.append("Skipped: " + "; ".join(results["skipped"]) + "\n")
    parts.append("### Targets\n")
    parts.append(
        _table(
            ["target", "measured", "met"],
            [
                [c["target"], c["measured"], {True: "yes", False: "**no**", None: "-"}[c["ok"]]]
                for c in results["checks"]
            ],
        )
    )
    at_scale = _at_scale_table(results)
    if at_scale:
        parts.append(
            "### Many clients at once (issue 20): the fake next to the real stack\n\n"
            "Medians of interleaved rounds. `fake` is the live server in the benchmark "
            "process unless named; every client runs in the member process. The fixed "
            "script: each of N members PUTs its key, then GETs the token every 10 ms until "
            "it lists N. The natural protocol: etcd's own (group 1), whose request count "
            "follows how fast PUTs return, so it has no target.\n\n"
        )
        parts.append(at_scale)
    if _rows(results, "bootstrap"):
        parts.append(
            "### 1. Bootstrap workload, the natural protocol (ms, median; N simulated "
            "etcd 3.4 members)\n"
        )
        parts.append(
            _compare_table(
                results,
                "bootstrap",
                "members",
                [("live", "real"), ("live-proc", "real"), ("inprocess", "real")],
            )
        )
        parts.append(_requests_table(results))
        parts.append(_service_cpu_table(results, "bootstrap", "members", "bootstrap"))
        parts.append(_member_cpu_table(results))
    if _rows(results, "latency"):
        parts.append("### 2. Single-request latency (ms, median of batch medians)\n")
        parts.append(
            _compare_table(
                results,
                "latency",
                "request",
                [
                    ("live", "real"),
                    ("live-proc", "real"),
                    ("inprocess", "real"),
                    ("inprocess", "floor"),
                ],
            )
        )
        cpu_lines = []
        for r in _rows(results, "latency"):
            cpu = r["extra"].get("cpu_ms") or {}
            if "inprocess" in cpu and "floor" in cpu:
                cpu_lines.append(
                    [
                        r["case"],
                        _num(cpu["inprocess"], 3),
                        _num(cpu["floor"], 3),
                        _num(_ratio(cpu["inprocess"], cpu["floor"])),
                    ]
                )
        if cpu_lines:
            parts.append(
                "\nCPU time of the calling thread per call (the whole cost of an in-process "
                "call, and steady when the machine is busy):\n\n"
            )
            parts.append(
                _table(
                    ["request", "inprocess CPU ms", "floor CPU ms", "inprocess/floor"], cpu_lines
                )
            )
        parts.append(
            _service_cpu_table(results, "latency", "request", "call (the wake-up: per sample)")
        )
    fixture = results.get("fixture") or {}
    if fixture:
        sizes = results["sizes"]["fixture_sizes"]
        parts.append(
            f"### 3. Fixture cost (whole pytest runs of {sizes[0]} and {sizes[1]} tests)\n"
        )
        lines = []
        for variant, v in fixture.items():
            lines.append(
                [
                    variant,
                    _num(v[f"run_{sizes[0]}_ms"]),
                    _num(v[f"run_{sizes[1]}_ms"]),
                    _num(v.get("test_ms"), 3),
                    _num(v["per_test_ms"], 3),
                    _num(v.get("per_test_cpu_ms"), 3),
                    _num(v["per_session_ms"]),
                    _num(v.get("per_session_cpu_ms")),
                ]
            )
        parts.append(
            _table(
                [
                    "tests use",
                    f"run {sizes[0]} ms",
                    f"run {sizes[1]} ms",
                    "one test ms (median)",
                    "per test over plain ms (wall)",
                    "per test over plain ms (CPU)",
                    "per session over plain ms (wall)",
                    "per session over plain ms (CPU)",
                ],
                lines,
            )
        )
    series = results.get("series") or {}
    if series:
        parts.append("### 4. Scale (median of repeated series; time is cumulative)\n")
        parts.append("One token, members registered one by one (PUT prevExist=false):\n\n")
        parts.append(_series_table(results, "members"))
        parts.append("\nTokens created with `/new`:\n\n")
        parts.append(_series_table(results, "tokens"))
        watchers = series.get("watchers") or {}
        if watchers:
            targets = [t for t in TARGET_ORDER if t in watchers]
            parts.append(
                "\nBlocked recursive watchers on one token, woken by one PUT "
                "(ms until the last / the median one has its reply):\n\n"
            )
            lines = []
            for i, p in enumerate(watchers[targets[0]]):
                line = [f"{int(p['n']):,}"]
                for t in targets:
                    q = watchers[t][i]
                    line.append(f"{_num(q['seconds'] * 1000)} / {_num(q['median_wake'] * 1000)}")
                lines.append(line)
            parts.append(_table(["watchers", *targets], lines))
        journal = series.get("journal") or {}
        if journal:
            j = journal.get("members") or {}
            parts.append(
                f"\nOf the fake's memory, the request journal (`app.calls`) held "
                f"{_num(j.get('journal_bytes', 0), 0)} B for {int(j.get('journal_entries', 0))} "
                "entries in the members series.\n"
            )
    if _rows(results, "cluster"):
        parts.append(
            "\n### 5. Real etcd clusters bootstrapped through discovery (ms to all healthy; "
            "`live-tls`: the fake at `https://discovery.etcd.io` through its TLS front, "
            "etcd's `--discovery-proxy` and the test CA)\n"
        )
        parts.append(
            _compare_table(
                results,
                "cluster",
                "cluster",
                [("live", "real"), ("live-proc", "real"), ("live-tls", "real")],
            )
        )
    if _rows(results, "v3"):
        parts.append(
            "\n### 6. The etcd v3 API (issue 22): one request (ms, median of batch medians; "
            "`v3-fake` in the benchmark process, `v3-fake-proc` the command's, `v3-real` "
            "etcd 3.4)\n"
        )
        parts.append(
            _compare_table(
                results, "v3", "v3 request", [("v3-fake", "v3-real"), ("v3-fake-proc", "v3-real")]
            )
        )
    if plot_name:
        parts.append(f"\n![scale series]({plot_name})\n")
    return "\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> bool:
    """Log-log plot of the scale series; False when matplotlib is missing or no data."""
    series = results.get("series") or {}
    if not series:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    panels = [
        (axes[0][0], "members", "seconds", "register N members on one token (s)"),
        (axes[0][1], "tokens", "seconds", "create N tokens (s)"),
        (axes[0][2], "watchers", "seconds", "wake N blocked watchers (s)"),
        (axes[1][0], "members", "bytes", "memory for N members (bytes)"),
        (axes[1][1], "tokens", "bytes", "memory for N tokens (bytes)"),
        (axes[1][2], "members", "get_seconds", "GET token with N members (s)"),
    ]
    for ax, kind, key, title in panels:
        data = dict(series.get(kind) or {})
        if key == "bytes":
            data = {f"{t} (RSS)": pts for t, pts in data.items() if pts and key in pts[0]}
            traced = series.get(f"traced_{kind}")
            if traced:
                data["fake (tracemalloc)"] = traced
        for name, points in data.items():
            xs = [p["n"] for p in points if p.get(key, 0) > 0]
            ys = [p[key] for p in points if p.get(key, 0) > 0]
            if xs:
                # One colour per target in every panel.
                color = _COLORS.get(name.split(" (")[0], "C4")
                ax.plot(xs, ys, marker="o", label=name, color=color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("N")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def update_readme(readme: Path, block: str) -> None:
    """Replace the text between the results markers of ``readme`` with ``block``."""
    text = readme.read_text() if readme.exists() else f"{README_BEGIN}\n{README_END}\n"
    if README_BEGIN not in text or README_END not in text:
        text += f"\n{README_BEGIN}\n{README_END}\n"
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{block}\n{README_END}{tail}")
