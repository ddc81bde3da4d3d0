"""The Prometheus counters the real service exposes at ``/metrics``."""

from __future__ import annotations

import threading
from collections import Counter

HELP = {
    "new": ("endpoint_new_requests_total", "How many /new requests processed"),
    "token": ("endpoint_token_requests_total", "How many /token requests processed"),
    "health": ("endpoint_health_requests_total", "How many /health requests processed"),
}


class Metrics:
    """Request counters by endpoint, status code and method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int, str]] = Counter()

    def count(self, endpoint: str, code: int, method: str) -> None:
        with self._lock:
            self._counts[(endpoint, code, method)] += 1

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def render(self) -> str:
        """The text exposition format; like Go's client, a family with no sample is left out."""
        with self._lock:
            counts = dict(self._counts)
        lines: list[str] = []
        for endpoint, (name, text) in sorted(HELP.items(), key=lambda kv: kv[1][0]):
            samples = [
                f'{name}{{code="{code}",method="{method}"}} {n}'
                for (ep, code, method), n in sorted(counts.items())
                if ep == endpoint
            ]
            if samples:
                lines.append(f"# HELP {name} {text}, partitioned by status code and HTTP method.")
                lines.append(f"# TYPE {name} counter")
                lines.extend(samples)
        return "\n".join(lines) + "\n"
