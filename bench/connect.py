"""Many clients connecting at once: the fake's live server next to the real stack.

    python -m bench.connect                 # 500 clients, 5 rounds, live + real
    python -m bench.connect --clients 1000 --rounds 3 --no-real

Each round opens N sockets to the service at the same moment (non-blocking
``connect``), then sends ``GET /health`` on each as soon as it is connected, from one
selector thread in a child process (so the in-process ``live`` server does not share
its GIL with the clients). Per client: the time to a completed TCP handshake (it waits
when the listen backlog is full: a dropped SYN is sent again after 1 s) and the time to
the whole reply. The table shows medians of the per-round p50 / p99 / max, in ms.
Nothing in ``tests/`` runs this, and no test asserts a time.  ``python -m bench`` has
the same burst as its ``connect`` group (issue 20's row, 500 clients, from the member
process), next to the other rows of that run.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/connect.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def request_for(path: str) -> bytes:
    """One ``GET path`` that asks the server to close the connection after its reply."""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def burst(
    host: str, port: int, clients: int, deadline: float = 30.0, request: bytes = REQUEST
) -> dict[str, list[float]]:
    """Connect ``clients`` sockets at once; per socket the seconds to connect and to a
    whole ``200`` reply (the server closes the connection after it)."""
    selector = selectors.DefaultSelector()
    start = time.perf_counter()
    state: dict[socket.socket, dict[str, Any]] = {}
    for _ in range(clients):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex((host, port))
        state[sock] = {"reply": b""}
        selector.register(sock, selectors.EVENT_WRITE)
    connected: list[float] = []
    replied: list[float] = []
    left = clients
    while left and time.perf_counter() - start < deadline:
        for key, events in selector.select(timeout=0.5):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            now = time.perf_counter() - start
            if events & selectors.EVENT_WRITE:
                if conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    selector.unregister(conn)
                    left -= 1
                    continue
                connected.append(now)
                conn.sendall(request)
                selector.modify(conn, selectors.EVENT_READ)
                continue
            try:
                data = conn.recv(65536)
            except ConnectionError:
                data = b""
            state[conn]["reply"] += data
            if not data:
                if state[conn]["reply"].startswith(b"HTTP/1.1 200 "):
                    replied.append(now)
                selector.unregister(conn)
                left -= 1
    for sock in state:
        sock.close()
    return {"connect": connected, "reply": replied, "clients": [float(clients)]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _client(url: str, clients: int) -> dict[str, list[float]]:
    """Run :func:`burst` in a child process (its own GIL) and return its samples."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    out = subprocess.run(
        [sys.executable, "-m", "bench.connect", "--client", f"{host}:{port}", str(clients)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    result: dict[str, list[float]] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--client", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        host, port = args.client[0].rsplit(":", 1)
        print(json.dumps(burst(host, int(port), int(args.client[1]))))
        return 0

    from pytest_etcd_discovery._real.processes import RealDiscoveryService, real_stack_missing
    from pytest_etcd_discovery._transport.server import DiscoveryServer

    targets: dict[str, Any] = {"live": DiscoveryServer()}
    if not args.no_real and real_stack_missing() is None:
        targets["real"] = RealDiscoveryService()
    for target in targets.values():
        target.start()
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    try:
        for round_ in range(args.rounds):
            names = list(targets)
            names = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in names:
                samples = _client(targets[name].url, args.clients)
                rows[name].append(
                    {
                        f"{kind} {label}": 1000 * pct(samples[kind], q)
                        for kind in ("connect", "reply")
                        for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
                    }
                    | {"served": len(samples["reply"])}
                )
    finally:
        for target in targets.values():
            target.stop()
    columns = list(next(iter(rows.values()))[0])
    print(f"{args.clients} clients at once, {args.rounds} rounds (ms, median over rounds)\n")
    print("| target | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, per_round in rows.items():
        cells = [sorted(s[c] for s in per_round)[len(per_round) // 2] for c in columns]
        print(f"| {name} | " + " | ".join(f"{v:,.1f}" for v in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
