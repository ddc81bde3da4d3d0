"""Shared pieces: the result record, bounded threads, token helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .stats import median
from .targets import Target


@dataclass
class Row:
    """One measured case: a value (median) per target, plus the raw samples."""

    group: str
    case: str
    unit: str
    values: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Whether smaller is better (times, bytes) — every row here is.
    note: str = ""

    def add(self, target: str, samples: list[float], scale: float = 1.0) -> None:
        scaled = [s * scale for s in samples]
        self.samples[target] = scaled
        self.values[target] = median(scaled)


class RunError(RuntimeError):
    """A benchmark did not finish, or a simulated client saw a wrong answer."""


def run_threads(
    target: Target, workers: list[Callable[[], Any]], timeout: float, start: threading.Barrier
) -> list[Any]:
    """Run each worker in its own thread; all start on ``start``; bounded by ``timeout``.

    On the deadline every blocked long poll is released and :class:`RunError` raised.
    """
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(i: int, fn: Callable[[], Any]) -> None:
        try:
            start.wait(timeout)
            results[i] = fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, fn), daemon=True, name=f"bench-{i}")
        for i, fn in enumerate(workers)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        target.release()
        for t in threads:
            t.join(5)
        raise RunError(f"{target.name}: workers still running after {timeout} s")
    if errors:
        raise RunError(f"{target.name}: {errors[0]!r}") from errors[0]
    return results


def new_token(target: Target, size: int) -> str:
    session = target.session()
    resp = session.get(f"{target.base_url}/new?size={size}", timeout=target.timeout())
    session.close()
    if resp.status_code != 200:
        raise RunError(f"{target.name}: /new -> {resp.status_code} {resp.text}")
    return resp.text.strip()
