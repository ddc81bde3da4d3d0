"""CPU instructions per request of the live server on a kept connection, by callgrind.

``python -m bench.instructions [get|put|wake ...]`` runs this module's driver twice under
``valgrind --tool=callgrind`` (a short and a long run) and prints the difference per
request: start-up and the client's set-up cancel out. Instruction counts stay the same on
a loaded machine, where wall-clock medians do not, so they are the before/after measure
of the server's per-request path. Each thread is counted apart (``--separate-threads``):
the server's threads, and in all with this raw-socket client (the main thread).

``python -m bench.instructions --drive get 500`` is the driver alone.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_etcd_discovery import DiscoveryServer

KINDS = ("get", "put", "wake")


class _Wire:
    """One kept HTTP/1.1 connection speaking raw bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.host = f"127.0.0.1:{port}"

    def send(self, method: str, path: str, body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: bench\r\n"
        if body:
            head += (
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
        self.sock.sendall(head.encode() + b"\r\n" + body)

    def reply(self) -> tuple[bytes, bytes]:
        """One whole reply (Content-Length or chunked): its head and body."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = re.search(rb"\r\nContent-Length: (\d+)", head)
        if length is not None:
            end = int(length[1])
            while len(rest) < end:
                self._more()
                rest = self.buf.partition(b"\r\n\r\n")[2]
        else:
            while b"0\r\n\r\n" not in rest:
                self._more()
                rest = self.buf.partition(b"\r\n\r\n")[2]
            end = rest.index(b"0\r\n\r\n") + 5
        self.buf = rest[end:]
        return head, rest[:end]

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data


def drive(kind: str, count: int) -> None:
    with DiscoveryServer() as server:
        wire = _Wire(server.port)
        wire.send("GET", "/new?size=3")
        url = "/" + wire.reply()[1].decode().strip().rsplit("/", 1)[1]
        for i in range(3):
            wire.send("PUT", f"{url}/m{i}", f"value=m{i}%3Dhttp://10.0.0.{i}:2380".encode())
            wire.reply()
        if kind == "get":
            for _ in range(count):
                wire.send("GET", url)
                wire.reply()
        elif kind == "put":
            for i in range(count):
                wire.send("PUT", f"{url}/p{i:x}?prevExist=false", b"value=v")
                wire.reply()
        else:
            watcher = _Wire(server.port)
            store = server.app.store
            for i in range(count):
                watcher.send("GET", f"{url}?wait=true&recursive=true")
                # The write must find the watcher waiting (not answer it from history):
                # yield to the server's thread until it has read the watch.
                while store.watcher_count == 0:
                    os.sched_yield()
                wire.send("PUT", f"{url}/w{i:x}", b"value=v")
                wire.reply()
                watcher.reply()
            watcher.sock.close()
        wire.sock.close()


def _instructions(kind: str, count: int) -> tuple[int, int]:
    """(instructions of the whole process, of its threads but the main one: the server)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.instructions",
                "--drive",
                kind,
                str(count),
            ],
            check=True,
            capture_output=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        totals: dict[int, int] = {}
        for name in os.listdir(tmp):
            if "-" not in name:
                continue  # not a thread's file
            thread = int(name.rsplit("-", 1)[1])
            with open(os.path.join(tmp, name), encoding="ascii", errors="replace") as file:
                for line in file:
                    if line.startswith(("summary:", "totals:")):
                        totals[thread] = int(line.split()[1])
                        break
    if 1 not in totals:
        raise RuntimeError("no totals in callgrind's output")
    return sum(totals.values()), sum(n for thread, n in totals.items() if thread != 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--drive", nargs=2, metavar=("KIND", "COUNT"))
    parser.add_argument("kinds", nargs="*", default=list(KINDS))
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=1200)
    args = parser.parse_args(argv)
    if args.drive:
        drive(args.drive[0], int(args.drive[1]))
        return 0
    for kind in args.kinds:
        short = _instructions(kind, args.short)
        long = _instructions(kind, args.long)
        runs = args.long - args.short
        whole, server = ((b - a) / runs for a, b in zip(short, long, strict=True))
        print(f"{kind}: {server:,.0f} instructions per request in the server ({whole:,.0f} in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
