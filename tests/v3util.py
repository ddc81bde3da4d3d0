"""Helpers for the v3 API's differential tests: a real etcd 3.4 and the fake side by side,
requests sent to both, answers normalised (ids, revisions relative to a base, lease ids
numbered in order of appearance) so they can be compared as plain data."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from realutil import require_real

from pytest_etcd_discovery._real.processes import EtcdProcess
from pytest_etcd_discovery._v3.client import V3Client
from pytest_etcd_discovery._v3.server import V3Server

#: Bound for any single wait on a stream answer; answers that should come do so within it.
WAIT = 10.0
REVISION_FIELDS = frozenset({"revision", "create_revision", "mod_revision", "compact_revision"})
ID_FIELDS = frozenset({"cluster_id", "member_id"})
_prefixes = itertools.count()


@dataclass
class Side:
    """One etcd v3 endpoint under test (``name`` "real" or "fake")."""

    name: str
    endpoint: str
    client: V3Client
    server: V3Server | None = None  # the fake's, for its store and clock
    leases: dict[int, str] = field(default_factory=dict)
    base: int = 0

    def rebase(self) -> int:
        """Take the current revision as the base of relative revisions."""
        self.base = self.client.call("KV", "Range", key=b"\x00").header.revision
        self.leases.clear()
        return self.base

    def norm(self, message: Any) -> Any:
        return normalize(message, self.base, self.leases)

    def call(self, service: str, method: str, **fields: Any) -> Any:
        """The normalised answer, or ``("error", code name, message)``.  A callable field
        value is called with this side first (for revisions relative to its base)."""
        fields = {k: v(self) if callable(v) else v for k, v in fields.items()}
        try:
            return self.norm(self.client.call(service, method, **fields))
        except grpc.RpcError as err:
            return ("error", err.code().name, err.details())

    def lease(self, name: str) -> int:
        """The real lease id behind a normalised name ``"L0"``."""
        return next(lease_id for lease_id, label in self.leases.items() if label == name)


def normalize(message: Any, base: int, leases: dict[int, str]) -> Any:
    out: dict[str, Any] = {}
    for fd, value in message.ListFields():
        name = fd.name
        if name in ID_FIELDS:
            continue
        repeated = isinstance(value, (list, tuple)) or hasattr(value, "extend")
        if fd.message_type is not None:
            out[name] = (
                [normalize(v, base, leases) for v in value]
                if repeated
                else normalize(value, base, leases)
            )
        elif repeated:
            out[name] = list(value)
        elif name in REVISION_FIELDS and value > 0:
            out[name] = f"R{value - base:+d}"
        elif name in ("ID", "lease") and value:
            out[name] = leases.setdefault(value, f"L{len(leases)}")
        else:
            out[name] = value
    return out


def new_prefix() -> bytes:
    """A key prefix of its own for each test on the shared real etcd."""
    return f"/t{next(_prefixes)}/".encode()


def start_real(tmp: Path) -> EtcdProcess:
    require_real("etcd")
    etcd = EtcdProcess("v3", tmp / "v3.etcd")
    etcd.start()
    try:
        etcd.wait_ready()
    except BaseException:
        etcd.stop()
        raise
    return etcd


class Stream:
    """A bidirectional stream driven by hand: :meth:`send`, then :meth:`next`."""

    def __init__(self, client: V3Client, service: str, method: str) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._client = client
        self._service, self._method = service, method
        self.call: Any = client.stream(service, method, self._feed())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _feed(self) -> Iterator[Any]:
        while (request := self._requests.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            for answer in self.call:
                self._answers.put(answer)
        except grpc.RpcError as err:
            self._answers.put(err)
        self._answers.put(None)

    def send(self, **fields: Any) -> None:
        self._requests.put(self._client.request(self._service, self._method, **fields))

    def next(self, timeout: float = WAIT) -> Any:
        """The next answer (a ``grpc.RpcError`` if the stream failed, None at its end)."""
        return self._answers.get(timeout=timeout)

    def pending(self, timeout: float) -> bool:
        """Whether an answer arrives within ``timeout`` (for "nothing more comes")."""
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            return False
        self._answers.put(answer)  # keep it (order is not checked after this call)
        return True

    def close(self) -> None:
        self.call.cancel()
        self._requests.put(None)


def lockstep(sides: tuple[Side, Side], service: str, method: str, **fields: Any) -> Any:
    """Send one request to both; assert equal normalised answers; return the answer."""
    real, fake = (s.call(service, method, **fields) for s in sides)
    assert fake == real, f"{service}.{method}({fields}): fake differs from real etcd"
    return real
