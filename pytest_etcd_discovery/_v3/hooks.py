"""How the project's journal and fault plan plug into the v3 server.

The server calls a :class:`V3Hooks` around every request it serves:

``before(call) -> V3Decision | None``
    once per unary request, once when a stream opens (``call.request`` is ``None``) and
    once per message on a stream (``call.request`` is that ``WatchRequest`` or
    ``LeaseKeepAliveRequest``).  ``None`` (or a decision with nothing set) serves it
    normally.  A :class:`V3Decision` can ``delay`` it first (seconds; when the client goes
    away first the wait ends and the call is not served: ``call.error`` is
    ``("CANCELLED", "context canceled")``), then answer it with a gRPC status (``code`` is a
    ``grpc.StatusCode`` name such as ``"UNAVAILABLE"`` or ``"DEADLINE_EXCEEDED"``,
    ``message`` its text) or, on a stream, ``drop`` the stream (ended with ``UNAVAILABLE``
    as a broken connection ends it for the client).  ``call.fault`` is set to
    ``decision.description`` so the journal can show which rule fired.

``after(call) -> None``
    once per unary request and once per stream when it ends, with ``call.response`` (the
    answer message, or for a stream the number of answers sent) or ``call.error``
    (``(code, message)``) filled in, and ``call.finished`` set from the clock.

Hooks run on the server's event loop thread, one call at a time there; they must be
thread-safe towards the test's own thread and must not block (a blocked hook holds every
call of the server; a delay is the decision's, waited without blocking).
:class:`NoHooks` does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["NoHooks", "V3Call", "V3Decision", "V3Hooks"]


@dataclass
class V3Call:
    """One request (or one stream) the server handled."""

    service: str  # "KV", "Watch", "Lease", "Maintenance", "Cluster"
    method: str  # "Range", "Put", "Watch", "LeaseKeepAlive", ...
    request: Any  # the request message; None for a stream's opening
    peer: str  # gRPC's peer string, "ipv4:127.0.0.1:PORT"
    started: float  # clock time
    stream: bool = False
    response: Any = None
    error: tuple[str, str] | None = None
    fault: str | None = None
    finished: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The gRPC method path, ``/etcdserverpb.KV/Range``."""
        return f"/etcdserverpb.{self.service}/{self.method}"


@dataclass(frozen=True)
class V3Decision:
    """What a fault does with a call (see the module doc)."""

    delay: float = 0.0
    code: str | None = None
    message: str = ""
    drop: bool = False
    description: str = ""


class V3Hooks(Protocol):
    def before(self, call: V3Call) -> V3Decision | None: ...

    def after(self, call: V3Call) -> None: ...


class NoHooks:
    """Serve everything, record nothing."""

    def before(self, call: V3Call) -> V3Decision | None:
        return None

    def after(self, call: V3Call) -> None:
        return None
