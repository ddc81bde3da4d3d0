"""The etcd v3 API: the fake's Range, Put and Watch latency next to a real etcd's.

Targets, measured in the same run and interleaved round-robin:

- ``v3-fake``: the fake's v3 endpoint in this process, as ``etcd_discovery.v3`` runs it;
- ``v3-fake-proc``: the same in its own process (``etcd-discovery-fake --v3-port 0``);
- ``v3-real``: a real etcd 3.4 (``/usr/bin/etcd``) on loopback, its own data directory.

Every target is reached by one client (the project's ``V3Client``, plain gRPC), so the
client's cost is the same for all.  Cases, per request, median over repetitions of a
batch of sequential requests:

- ``Range``: a one-key read (the size key's read of v3 discovery);
- ``Put``: a one-key write (a member's registration);
- ``Watch``: a Put to a watched prefix until its event arrives on an open watch stream
  (a waiting member learning of the next one).

The issue's target: the fake at most the real etcd's per request.

    python -m bench.v3 [--smoke]     # on its own: prints the table
    python -m bench --groups v3      # in the whole bench's results
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/v3.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row

CASES = ("Range", "Put", "Watch")
TARGETS = ("v3-fake", "v3-fake-proc", "v3-real")
#: A watch event must arrive within this (a lost event fails the group, it does not hang).
EVENT_TIMEOUT = 10.0


class V3Target:
    """One etcd v3 API endpoint and a client of it."""

    def __init__(self, name: str, endpoint: str, stop: Callable[[], object]) -> None:
        from pytest_etcd_discovery._v3.client import V3Client

        self.name = name
        self.endpoint = endpoint
        self._stop = stop
        self.client = V3Client(endpoint)
        self.client.call("KV", "Put", key=b"/bench/size", value=b"3")  # connected, warm

    def close(self) -> None:
        self.client.close()
        self._stop()


def start_fake() -> V3Target:
    from pytest_etcd_discovery._v2store.clock import ControllableClock
    from pytest_etcd_discovery._v3.server import V3Server

    server = V3Server(clock=ControllableClock()).start()
    return V3Target("v3-fake", server.endpoint, server.stop)


def start_fake_proc() -> V3Target:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_etcd_discovery", "--port", "0", "--v3-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the discovery service's URL
    line = proc.stdout.readline().strip()  # "etcd v3: http://host:port", once it listens
    if not line.startswith("etcd v3: http://"):
        proc.kill()
        raise RuntimeError(f"etcd-discovery-fake --v3-port printed {line!r}")

    def stop() -> None:
        proc.terminate()
        proc.wait(timeout=30)

    return V3Target("v3-fake-proc", line.removeprefix("etcd v3: http://"), stop)


def start_real(workdir: Path) -> V3Target:
    from pytest_etcd_discovery._real.processes import EtcdProcess

    etcd = EtcdProcess("bench-v3", workdir / "etcd")
    etcd.start()
    etcd.wait_ready()
    return V3Target("v3-real", f"{etcd.host}:{etcd.client_port}", etcd.stop)


def real_missing() -> str | None:
    from pytest_etcd_discovery._real.processes import missing_binaries

    return missing_binaries("etcd")


# -- the cases -------------------------------------------------------------------------


def range_batch(target: V3Target, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        reply = target.client.call("KV", "Range", key=b"/bench/size")
        if reply.kvs[0].value != b"3":
            raise RuntimeError(f"{target.name}: Range answered {reply}")
    return (time.perf_counter() - start) / n


def put_batch(target: V3Target, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        target.client.call("KV", "Put", key=f"/bench/put/{i}".encode(), value=b"m=http://x")
    return (time.perf_counter() - start) / n


def watch_batch(target: V3Target, n: int) -> float:
    """Put -> event on an open watch, ``n`` times; seconds per round trip."""
    client = target.client
    prefix = b"/bench/watch/"
    create = client.request(
        "Watch", "Watch", create_request={"key": prefix, "range_end": prefix[:-1] + b"0"}
    )
    outbox: queue.Queue[Any] = queue.Queue()
    outbox.put(create)

    def requests() -> Iterator[Any]:
        while (item := outbox.get()) is not None:
            yield item

    stream: Any = client.stream("Watch", "Watch", requests())
    events: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for reply in stream:
                if reply.created:
                    events.put("created")
                for event in reply.events:
                    events.put(event)
        except Exception as exc:  # the stream's end when cancelled below
            events.put(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The timed loop starts on an established watch: its creation answered.
        first = events.get(timeout=EVENT_TIMEOUT)
        if first != "created":
            raise RuntimeError(f"{target.name}: watch not created: {first}")
        start = time.perf_counter()
        for i in range(n):
            key = prefix + str(i).encode()
            client.call("KV", "Put", key=key, value=b"m=http://x")
            event = events.get(timeout=EVENT_TIMEOUT)
            if isinstance(event, Exception) or event.kv.key != key:
                raise RuntimeError(f"{target.name}: expected the event of {key!r}: {event}")
        return (time.perf_counter() - start) / n
    finally:
        outbox.put(None)
        stream.cancel()
        reader.join(timeout=EVENT_TIMEOUT)


BATCHES: dict[str, Callable[[V3Target, int], float]] = {
    "Range": range_batch,
    "Put": put_batch,
    "Watch": watch_batch,
}


def measure(batch: int, reps: int, rows: dict[str, Row], skipped: list[str]) -> None:
    """Fill ``rows`` (case -> Row of group ``v3``, in ms per request)."""
    with tempfile.TemporaryDirectory(prefix="bench-v3-") as tmp:
        targets: list[V3Target] = []
        try:
            targets.append(start_fake())
            targets.append(start_fake_proc())
            reason = real_missing()
            if reason is None:
                targets.append(start_real(Path(tmp)))
            else:
                skipped.append(f"v3 group, real etcd: {reason}")
            for target in targets:  # warm: connections, caches, the first watch
                for case in CASES:
                    BATCHES[case](target, 20)
            samples: dict[tuple[str, str], list[float]] = {}
            for turn in range(reps):
                order = targets[turn % len(targets) :] + targets[: turn % len(targets)]
                for case in CASES:
                    for target in order:
                        value = BATCHES[case](target, batch)
                        samples.setdefault((case, target.name), []).append(value)
            for case in CASES:
                label = "Watch (Put to event)" if case == "Watch" else case
                row = rows.setdefault(case, Row("v3", label, "ms"))
                for target in targets:
                    row.add(target.name, samples[(case, target.name)], scale=1000)
        finally:
            for target in targets:
                target.close()


def table(rows: dict[str, Row]) -> str:
    """A markdown table of the rows, with the fake/real ratio per case."""
    lines = [
        "| v3 request (ms) | " + " | ".join(TARGETS) + " | fake/real |",
        "|---|" + "---|" * (len(TARGETS) + 1),
    ]
    for row in rows.values():
        values = [row.values.get(t) for t in TARGETS]
        fake, real = row.values.get("v3-fake"), row.values.get("v3-real")
        ratio = f"{fake / real:.2f}" if fake is not None and real else "-"
        shown = [f"{v:.3f}" if v is not None else "-" for v in values]
        lines.append(f"| {row.case} | " + " | ".join(shown) + f" | {ratio} |")
    return "\n".join(lines) + "\n"


def checks(rows: dict[str, Row]) -> list[dict[str, Any]]:
    """The issue's target per case: the fake (in-process) at most the real etcd's."""
    out = []
    for row in rows.values():
        fake, real = row.values.get("v3-fake"), row.values.get("v3-real")
        out.append(
            {
                "target": f"v3 {row.case}: fake <= real etcd per request",
                "measured": f"{fake} ms vs {real} ms",
                "ok": None if fake is None or real is None else fake <= real,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.v3", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small batches, one repetition")
    args = parser.parse_args(argv)
    batch, reps = (5, 1) if args.smoke else (200, 7)
    rows: dict[str, Row] = {}
    skipped: list[str] = []
    measure(batch, reps, rows, skipped)
    print(table(rows), end="")
    for note in skipped:
        print(f"skipped: {note}")
    for check in checks(rows):
        print(
            f"{'ok' if check['ok'] else 'NOT MET' if check['ok'] is False else '-'}: "
            f"{check['target']} ({check['measured']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
