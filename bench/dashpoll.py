"""What the dashboard's polling costs a fake with many tokens (issue 21).

    python -m bench.dashpoll                 # 2,000 tokens of 3 members, 20 s per side
    python -m bench.dashpoll --smoke         # 50 tokens, 3 s per side

Starts ``etcd-discovery-fake`` (``python -m pytest_etcd_discovery``, its own process, as
a suite in another language runs it), seeds the tokens over the control API and then
measures, for each way of polling:

- ``old``: what the dashboard fetched every second before ``/_fake/changes``
  (``clock``, ``tokens``, ``faults`` and ``calls?limit=25``);
- ``changes``: ``GET /_fake/changes?since=CURSOR``, the cursor of the previous answer.

the bytes of an idle poll (nothing changed since the previous one) and the latency of
``GET /health`` (p50, p95) while a poller polls once a second, next to no poller at all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import requests

from .stats import median

OLD_POLL = ("clock", "tokens", "faults", "calls?limit=25")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def old_poll(session: requests.Session, base: str) -> Callable[[], int]:
    def poll() -> int:
        return sum(len(session.get(f"{base}/_fake/{p}", timeout=60).content) for p in OLD_POLL)

    return poll


def changes_poll(session: requests.Session, base: str) -> Callable[[], int]:
    cursor: list[str] = []

    def poll() -> int:
        params = {"calls": "500", **({"since": cursor[0]} if cursor else {})}
        reply = session.get(f"{base}/_fake/changes", params=params, timeout=60)
        cursor[:] = [reply.json()["cursor"]]
        return len(reply.content)

    return poll


def health_latencies(base: str, seconds: float, poll: Callable[[], int] | None) -> list[float]:
    """``GET /health`` one after another for ``seconds``, a poller polling once a second."""
    stop = threading.Event()

    def poller() -> None:
        while not stop.is_set():
            assert poll is not None
            poll()
            stop.wait(1.0)

    thread = threading.Thread(target=poller, daemon=True) if poll is not None else None
    if thread is not None:
        thread.start()
    samples: list[float] = []
    with requests.Session() as session:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            session.get(f"{base}/health", timeout=60).raise_for_status()
            samples.append(time.perf_counter() - start)
    stop.set()
    if thread is not None:
        thread.join()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--polls", default="old,changes", help="which to measure (old alone: a fake before it)"
    )
    args = parser.parse_args(argv)
    kinds = [(n, m) for n, m in (("old", old_poll), ("changes", changes_poll)) if n in args.polls]
    if args.smoke:
        args.tokens, args.seconds = 50, 3.0
    fake = subprocess.Popen(
        [sys.executable, "-m", "pytest_etcd_discovery", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        base = fake.stdout.readline().strip()
        with requests.Session() as session:
            for _ in range(args.tokens):
                body = {"size": args.members, "members": args.members}
                session.post(f"{base}/_fake/tokens", json=body, timeout=60).raise_for_status()
            print(f"{args.tokens} tokens of {args.members} members at {base}")
            for name, make in kinds:
                poll = make(session, base)
                first = poll()
                idle = [poll() for _ in range(5)]
                print(f"{name:8} first poll {first:>9,} B   idle poll {median(idle):>9,.0f} B")
        rows: list[tuple[str, Callable[[], int] | None]] = [("none", None)]
        rows += [(name, make(requests.Session(), base)) for name, make in kinds]
        for name, poller in rows:
            samples = health_latencies(base, args.seconds, poller)
            print(
                f"/health with poller {name:8} n={len(samples):>6}  "
                f"p50 {median(samples) * 1000:6.2f} ms  p95 {_p95(samples) * 1000:6.2f} ms"
            )
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
