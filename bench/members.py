"""Simulated etcd members and watchers in a process of their own, as real etcd members are.

A service on a socket meets its members from other processes: the plugin's live server
runs in the pytest process and etcd members are separate programs. Simulating 100 members
as 100 threads of the benchmark process would make the fake's ``live`` server share one
GIL with a 100-thread client (the real stack would not), and the benchmark would measure
that client more than the server. So for every socket target the members of group 1 run
here, in one child process driven over stdin/stdout (one JSON line per bootstrap), started
once and reused; only ``inprocess`` keeps its members in the benchmark process, where
``responses`` can intercept them.

The blocked watchers of group 4 and of group 2's wake-up row live here too, for the
same reason: 1,000 ``requests`` threads in the benchmark process measured mostly
themselves (the real stack took 1.7 s to wake them). Here one thread holds all their
connections in a selector and speaks HTTP/1.1 itself, the same bytes for every service.
The members, likewise, each keep one :mod:`http.client` connection
(:class:`~.etcdsim.WireClient`) instead of a ``requests`` session: see
:mod:`bench.etcdsim`.  Each bootstrap's reply carries this process's CPU time for it,
the members' own cost.

``python -m bench.members`` is the child; :class:`MemberProcess` is the parent's handle.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import RunError
from .etcdsim import WireClient
from .targets import Target, wait_watchers

_ROOT = Path(__file__).resolve().parent.parent


def _python_path() -> list[str]:
    import pytest_etcd_discovery

    package_root = str(Path(pytest_etcd_discovery.__file__).resolve().parent.parent)
    extra = os.environ.get("PYTHONPATH", "")
    return [str(_ROOT), package_root, *filter(None, extra.split(os.pathsep))]


class _Remote(Target):
    """The service as the child sees it: a base URL and the shared timeouts."""

    name = "remote"

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url


class MemberProcess:
    """The child process that runs simulated members against a socket target."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench.members"],
                cwd=_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                # The same package the parent benchmarks (an exported snapshot, a work tree).
                env={**os.environ, "PYTHONPATH": os.pathsep.join(_python_path())},
            )
        return self._proc

    def bootstrap(
        self,
        target: Target,
        token_url: str,
        size: int,
        timeout: float,
        *,
        proxy: str | None = None,
        verify: str | None = None,
        driver: str = "loop",
    ) -> tuple[float, int, float]:
        """Bootstrap ``size`` members on ``token_url``; (seconds, requests sent, CPU
        seconds the member process used for it).

        ``proxy``/``verify``: the members go through this HTTP proxy and trust this CA
        bundle (the drop-in benchmark's TLS front).  ``driver``: ``"loop"`` runs every
        member on one selector loop (:mod:`bench.memberloop`, plain http only),
        ``"threads"`` each member in a thread with its own :class:`WireClient`.  On the
        deadline every long poll of ``target`` is released and the child restarted.
        """
        self._send(
            {
                "op": "bootstrap",
                "base_url": target.base_url,
                "token_url": token_url,
                "size": size,
                "timeout": timeout,
                "proxy": proxy,
                "verify": verify,
                "driver": driver,
            }
        )
        reply = self._reply(target, timeout + 10)  # the child bounds its run by ``timeout``
        return float(reply["seconds"]), int(reply["requests"]), float(reply["cpu"])

    def script(
        self, target: Target, token_url: str, size: int, timeout: float, interval: float
    ) -> dict[str, float]:
        """The fixed script (:func:`bench.bootstrap.script_loop`) for ``size`` members:
        seconds, requests, last PUT answered after (s), and the member process's CPU."""
        self._send(
            {
                "op": "script",
                "base_url": target.base_url,
                "token_url": token_url,
                "size": size,
                "timeout": timeout,
                "interval": interval,
            }
        )
        reply = self._reply(target, timeout + 10)
        return {k: float(v) for k, v in reply.items()}

    def burst(
        self, target: Target, path: str, clients: int, timeout: float
    ) -> dict[str, list[float]]:
        """``clients`` connections opened at once, one ``GET path`` each
        (:func:`bench.connect.burst`); per client the seconds to connect and to reply."""
        parts = urlsplit(target.base_url)
        self._send(
            {
                "op": "burst",
                "host": parts.hostname,
                "port": parts.port,
                "path": path,
                "clients": clients,
                "timeout": timeout,
            }
        )
        reply = self._reply(target, timeout + 10)
        return {k: [float(x) for x in v] for k, v in reply.items()}

    def hold(self, target: Target, path: str, count: int, timeout: float) -> None:
        """Open ``count`` more keep-alive connections, each served one ``GET path``, and
        keep them open and idle until :meth:`release`."""
        self._send(
            {
                "op": "hold",
                "base_url": target.base_url,
                "path": path,
                "count": count,
                "timeout": timeout,
            }
        )
        self._reply(target, timeout + 10)

    def release(self, target: Target) -> None:
        """Close the connections :meth:`hold` opened."""
        self._send({"op": "release"})
        self._reply(target, 30)

    def watch(
        self,
        target: Target,
        url: str,
        count: int,
        wake: Callable[[], None],
        timeout: float,
        ready: Callable[[], None] | None = None,
    ) -> tuple[float, list[float]]:
        """``count`` long polls of ``url`` blocked at once, then ``ready()`` (a reading
        taken with every poll registered, outside the timed interval), then ``wake()``
        (the write).

        Returns the ``time.monotonic()`` just before ``wake()`` and the instant each poll
        had its whole reply (the same clock in both processes).
        """
        before = target.watchers()
        self._send({"op": "watch", "url": url, "count": count, "timeout": timeout})
        self._reply(target, timeout)  # every request sent
        try:
            wait_watchers(target, before + count, timeout=timeout)
        except TimeoutError as exc:
            target.release()
            self._reply(target, 10)
            raise RunError(str(exc)) from exc
        if ready is not None:
            ready()
        start = time.monotonic()
        wake()
        reply = self._reply(target, timeout)
        return start, [float(t) for t in reply["woke"]]

    def _send(self, request: dict[str, Any]) -> None:
        proc = self._start()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()

    def _reply(self, target: Target, timeout: float) -> dict[str, Any]:
        """The child's next line; on the deadline, long polls released, child restarted."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        if not ready:
            target.release()
            self.close()
            raise RunError(f"{target.name}: the simulated clients did not answer in {timeout} s")
        line = proc.stdout.readline()
        if not line:
            self.close()
            raise RunError(f"{target.name}: the member process exited ({proc.returncode})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RunError(f"{target.name}: {reply['error']}")
        return reply

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the child ends at end of input
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class _Poll:
    """One long poll on its own connection, read without blocking."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
        self.sock.setblocking(False)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        self.request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Accept-Encoding: identity\r\nAccept: */*\r\n\r\n"
        ).encode()
        self.buffer = b""
        self.status = 0
        self.done = False

    def feed(self) -> None:
        """Read what arrived; ``done`` once the whole reply is in (or the peer closed)."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            self.done = not data
            return
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        if "content-length" in headers:
            self.done = len(body) >= int(headers["content-length"])
        elif headers.get("transfer-encoding") == "chunked":
            self.done = body.endswith(b"0\r\n\r\n")
        else:
            self.done = not data  # the body ends when the connection does
        if self.done:
            json.loads(_unchunk(body) if headers.get("transfer-encoding") == "chunked" else body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2 :]


def _watch(request: dict[str, Any]) -> dict[str, Any]:
    polls = [_Poll(request["url"]) for _ in range(request["count"])]
    for poll in polls:
        poll.sock.sendall(poll.request)
    print(json.dumps({"sent": len(polls)}), flush=True)
    woke: list[float] = []
    deadline = time.monotonic() + request["timeout"]
    with selectors.DefaultSelector() as sel:
        for poll in polls:
            sel.register(poll.sock, selectors.EVENT_READ, poll)
        while len(woke) < len(polls):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(woke)}/{len(polls)} polls answered")
            for key, _ in sel.select(left):
                poll = key.data
                poll.feed()
                if poll.done:
                    woke.append(time.monotonic())
                    sel.unregister(poll.sock)
                    if poll.status != 200:
                        raise RuntimeError(f"a poll got {poll.status}: {poll.buffer[:200]!r}")
    for poll in polls:
        poll.sock.close()
    return {"woke": woke}


#: The idle connections of the last ``hold``, open until ``release``.
_held: list[socket.socket] = []


def _hold(request: dict[str, Any]) -> dict[str, Any]:
    """Open ``count`` more connections at once, one keep-alive ``GET path`` on each;
    once every reply is in, they stay open (and idle) in :data:`_held` with the earlier
    ones."""
    from .memberloop import _ReplyParser

    parts = urlsplit(request["base_url"])
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    head = f"GET {request['path']} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    deadline = time.monotonic() + request["timeout"]
    count = request["count"]
    with selectors.DefaultSelector() as sel:
        for _ in range(count):
            sock = socket.socket()
            _held.append(sock)
            sock.setblocking(False)
            sock.connect_ex(address)
            sel.register(sock, selectors.EVENT_WRITE, _ReplyParser())
        waiting = count
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{waiting} of {count} new connections not served")
            for key, events in sel.select(left):
                held = key.fileobj
                assert isinstance(held, socket.socket)
                if events & selectors.EVENT_WRITE:
                    error = held.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        raise OSError(error, f"connect: {os.strerror(error)}")
                    held.sendall(head)
                    sel.modify(held, selectors.EVENT_READ, key.data)
                    continue
                parser = key.data
                if parser.feed(held.recv(65536)):
                    if parser.status != 200 or parser.close_after:
                        raise RuntimeError(
                            f"GET -> {parser.status} {bytes(parser.body)[:200]!r}, "
                            f"close: {parser.close_after}"
                        )
                    sel.unregister(held)
                    waiting -= 1
    return {"held": len(_held)}


def _release() -> dict[str, Any]:
    count = len(_held)
    for sock in _held:
        sock.close()
    _held.clear()
    return {"released": count}


def main() -> None:
    from .bootstrap import bootstrap_here, bootstrap_loop, script_loop
    from .connect import burst, request_for

    for line in sys.stdin:
        request = json.loads(line)
        try:
            cpu = time.process_time()  # every thread of this process: the clients
            if request["op"] == "watch":
                reply = _watch(request)
            elif request["op"] == "hold":
                reply = _hold(request)
            elif request["op"] == "release":
                reply = _release()
            elif request["op"] == "burst":
                reply = dict(
                    burst(
                        request["host"],
                        request["port"],
                        request["clients"],
                        request["timeout"],
                        request_for(request["path"]),
                    )
                )
            elif request["op"] == "script":
                reply = script_loop(
                    _Remote(request["base_url"]),
                    request["token_url"],
                    request["size"],
                    request["timeout"],
                    request["interval"],
                )
                reply["cpu"] = time.process_time() - cpu
            else:
                token_url = request["token_url"]
                remote = _Remote(request["base_url"])
                if request["driver"] == "loop":
                    seconds, requests = bootstrap_loop(
                        remote, token_url, request["size"], request["timeout"]
                    )
                else:
                    connect = partial(WireClient, token_url, request["proxy"], request["verify"])
                    seconds, requests = bootstrap_here(
                        remote, token_url, request["size"], request["timeout"], connect
                    )
                cpu = time.process_time() - cpu
                reply = {"seconds": seconds, "requests": requests, "cpu": cpu}
        except Exception as exc:  # reported to the parent, which fails the group
            if request.get("op") == "hold":
                _release()
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
