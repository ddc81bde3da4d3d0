"""The drop-in front's cost: the fake over TLS through its proxy, next to the plain server.

    python -m bench.dropin            # 20 members, 7 rounds each, 200 connections
    python -m bench.dropin --smoke    # 3 members, 1 round, 10 connections (CI)

Two measurements, the two columns taking turns (a different one first each round):

1. **Bootstrap**: N simulated etcd 3.4 members (:mod:`bench.etcdsim`, in a child process
   as real members are) join one token.  ``live``: the live server's plain URL
   (``http://127.0.0.1:PORT/<token>``).  ``proxy-tls``: ``https://discovery.etcd.io/<token>``
   through the front as ``HTTPS_PROXY`` (``CONNECT``, then TLS with the test CA), as
   ``curl`` or ``etcd --discovery-proxy`` reach it.  Each member keeps its connection, so
   it pays for one handshake.
2. **Connection set-up**: a fresh connection and one ``GET /health`` on it, made by this
   process on raw sockets: plain TCP to the live server; TLS straight to the front (how
   the in-process cover connects); ``CONNECT`` plus TLS through the front (how a child
   process connects).  The difference to plain TCP is the TLS handshake's cost.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as ``python bench/dropin.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.common import RunError
from bench.members import MemberProcess
from bench.stats import median
from bench.targets import LiveTarget
from pytest_etcd_discovery._transport.proxy import DiscoveryFront

PUBLIC = "https://discovery.etcd.io"
_HEALTH = b"GET /health HTTP/1.1\r\nHost: discovery.etcd.io\r\nConnection: close\r\n\r\n"


def _new_token(session: requests.Session, base: str, size: int) -> str:
    reply = session.get(f"{base}/new?size={size}", timeout=10)
    if reply.status_code != 200:
        raise RunError(f"/new -> {reply.status_code} {reply.text}")
    return reply.text.strip()


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RunError(f"/health answered {data[:80]!r}")
    return data


def _connect(address: tuple[str, int]) -> socket.socket:
    # TCP_NODELAY, as urllib3, curl and Go set it on their connections.
    sock = socket.create_connection(address, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _plain(live: tuple[str, int]) -> None:
    with _connect(live) as sock:
        sock.sendall(_HEALTH)
        _read_all(sock)


def _tls_direct(front: DiscoveryFront, context: ssl.SSLContext) -> None:
    with (
        _connect(front.address) as raw,
        context.wrap_socket(raw, server_hostname="discovery.etcd.io") as tls,
    ):
        tls.sendall(_HEALTH)
        _read_all(tls)


def _tls_proxied(front: DiscoveryFront, context: ssl.SSLContext) -> None:
    with _connect(front.address) as raw:
        raw.sendall(b"CONNECT discovery.etcd.io:443 HTTP/1.1\r\nHost: discovery.etcd.io\r\n\r\n")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = raw.recv(1)
            if not byte:
                raise RunError("the front closed the CONNECT")
            head += byte
        with context.wrap_socket(raw, server_hostname="discovery.etcd.io") as tls:
            tls.sendall(_HEALTH)
            _read_all(tls)


def _per_call(fn: Callable[[], None], count: int) -> tuple[float, float]:
    """Median wall time of one call, and the CPU time of this process (client and
    server both live here) per call: unlike wall time, CPU does not grow when the
    machine is busy."""
    walls = []
    cpu = time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return median(walls), (time.process_time() - cpu) / count


def run(size: int, rounds: int, connections: int) -> dict[str, dict[str, float]]:
    live = LiveTarget()
    live.start()
    front = DiscoveryFront(live.server, [PUBLIC])  # the process's test CA for PUBLIC
    ca = front.ca
    front.start()
    members = MemberProcess()
    plain_session = live.session()
    tls_session = live.session()
    tls_session.proxies = {"https": front.proxy_url}
    tls_session.verify = str(ca.bundle_file)
    context = ca.client_context()
    bootstrap: dict[str, list[float]] = {"live": [], "proxy-tls": []}
    setup: dict[str, list[float]] = {"tcp": [], "tls-direct": [], "tls-proxied": []}
    setup_cpu: dict[str, list[float]] = {k: [] for k in setup}
    try:
        for turn in range(rounds):
            cases: list[tuple[str, Callable[[], float]]] = [
                (
                    "live",
                    lambda: members.bootstrap(
                        live,
                        _new_token(plain_session, live.base_url, size),
                        size,
                        60 + size,
                        driver="threads",  # as the TLS column must: the loop is plain http
                    )[0],
                ),
                (
                    "proxy-tls",
                    lambda: members.bootstrap(
                        live,
                        _new_token(tls_session, PUBLIC, size),
                        size,
                        60 + size,
                        proxy=front.proxy_url,
                        verify=str(ca.ca_cert_file),
                        driver="threads",
                    )[0],
                ),
            ]
            for name, case in cases[turn % 2 :] + cases[: turn % 2]:
                bootstrap[name].append(case())
            conns: list[tuple[str, Callable[[], None]]] = [
                ("tcp", lambda: _plain((live.server.host, live.server.port))),
                ("tls-direct", lambda: _tls_direct(front, context)),
                ("tls-proxied", lambda: _tls_proxied(front, context)),
            ]
            for name, conn in conns[turn % 3 :] + conns[: turn % 3]:
                wall, cpu = _per_call(conn, connections)
                setup[name].append(wall)
                setup_cpu[name].append(cpu)
    finally:
        members.close()
        plain_session.close()
        tls_session.close()
        front.stop()
        live.stop()
    return {
        "bootstrap_s": {k: median(v) for k, v in bootstrap.items()},
        "connection_ms": {k: median(v) * 1000 for k, v in setup.items()},
        "connection_cpu_ms": {k: median(v) * 1000 for k, v in setup_cpu.items()},
    }


def render(result: dict[str, dict[str, float]], size: int, rounds: int, conns: int) -> str:
    boot = result["bootstrap_s"]
    wall = result["connection_ms"]
    cpu = result["connection_cpu_ms"]
    ratio = boot["proxy-tls"] / boot["live"]
    rows = [
        ("tcp (live server)", "tcp"),
        ("tls-direct (in-process cover)", "tls-direct"),
        ("tls-proxied (CONNECT + TLS, child processes)", "tls-proxied"),
    ]
    lines = [
        f"Bootstrap of {size} simulated members (median of {rounds}):",
        "",
        "| column | seconds | vs live |",
        "|---|---|---|",
        f"| live (plain http://127.0.0.1) | {boot['live']:.3f} | 1.00x |",
        f"| proxy-tls (https://discovery.etcd.io via the front) | {boot['proxy-tls']:.3f} "
        f"| {ratio:.2f}x |",
        "",
        f"A new connection plus one GET /health ({rounds} rounds of {conns}; wall: median "
        "call; CPU: client + server, this process, per call):",
        "",
        "| connection | wall ms | CPU ms | TLS cost vs tcp (wall / CPU ms) |",
        "|---|---|---|---|",
    ]
    for label, key in rows:
        extra = (
            "-" if key == "tcp" else f"{wall[key] - wall['tcp']:.2f} / {cpu[key] - cpu['tcp']:.2f}"
        )
        lines.append(f"| {label} | {wall[key]:.2f} | {cpu[key]:.2f} | {extra} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dropin", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="smallest sizes (CI)")
    parser.add_argument("--members", type=int, default=None)
    args = parser.parse_args(argv)
    size = args.members or (3 if args.smoke else 20)
    rounds, conns = (1, 10) if args.smoke else (7, 200)
    result = run(size, rounds, conns)
    print(render(result, size, rounds, conns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
