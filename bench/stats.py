"""Small timing and statistics helpers shared by the benchmark groups."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence

clock = time.perf_counter


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def p90(values: Sequence[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` took."""
    start = clock()
    fn()
    return clock() - start


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (this process by default), from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in {path}")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` used so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        # The command name may contain spaces; the fields after its ")" are fixed.
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds_fine(pid: int) -> float:
    """CPU seconds ``pid``'s live threads ran so far, in nanoseconds of resolution (the
    sum of ``/proc/<pid>/task/*/schedstat``; /proc/<pid>/stat counts 10 ms ticks, too
    coarse for one wake-up).  A thread that exited meanwhile is not counted."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return cpu_seconds(pid)
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as fh:
                total += int(fh.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we listed them
    return total / 1e9
