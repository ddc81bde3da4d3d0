"""Issue 20's rows: the live server when many clients arrive at once, next to the real stack.

Every client runs in the member process (:mod:`bench.members`), so the in-process
``live`` server shares its GIL with nothing but the benchmark's waiting main thread.

* :func:`script_round` — the **fixed script** (:class:`~bench.etcdsim.ScriptedMember`):
  N members each PUT their key, then GET the token directory every 10 ms until it lists
  N members; the same requests for both services.  Also ``served_once``: N fresh
  connections opened at once, one token GET each (``Connection: close``), time until
  the last has its reply — how fast the service takes up a crowd of connections
  without the script's load.
* :func:`connect_round` — C clients connecting at once, one token GET each
  (:func:`bench.connect.burst`): connect and reply percentiles.
* :func:`idle_round` — C more kept-alive connections, each served one token GET,
  then left idle (held until the group ends): resident memory the server's process(es)
  grew by, per connection.

The 1,000 watchers woken by one PUT (time, server CPU, memory per waiting watcher) are
:func:`bench.scale.watchers_point`; real etcd clusters are :mod:`bench.realcluster`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .common import RunError, new_token
from .connect import pct
from .members import MemberProcess
from .targets import Target

#: The fixed script's pause between a member's GETs (from each reply to the next GET).
POLL_INTERVAL = 0.010


def script_round(target: Target, size: int, members: MemberProcess) -> dict[str, float]:
    """One fixed-script bootstrap of ``size`` members on a new token, after a burst of
    ``size`` single-GET connections on it (seconds for times)."""
    token_url = new_token(target, size)
    served = members.burst(target, urlsplit(token_url).path, size, timeout=60)
    if len(served["reply"]) != size:
        raise RunError(f"{target.name}: {len(served['reply'])} of {size} connections served")
    result = members.script(target, token_url, size, timeout=60 + size, interval=POLL_INTERVAL)
    result["served_once"] = max(served["reply"])
    return result


def connect_round(target: Target, clients: int, members: MemberProcess) -> dict[str, float]:
    """``clients`` connections at once, one token GET on each: p50/p99 seconds to the
    completed handshake and to the whole reply, and how many were answered ``200``.

    Not ``GET /health``: discovery.etcd.io answers that by creating a token in etcd
    (a raft write per call), and under a crowd some fail ("health failed to
    setupToken", 400)."""
    path = urlsplit(new_token(target, 3)).path
    got = members.burst(target, path, clients, timeout=30)
    out = {
        f"{kind}_{label}": pct(got[kind], q)
        for kind in ("connect", "reply")
        for label, q in (("p50", 0.5), ("p99", 0.99))
    }
    out["served"] = float(len(got["reply"]))
    return out


def idle_round(target: Target, count: int, members: MemberProcess) -> float:
    """Resident bytes per idle kept-alive connection the serving process(es) grew by
    while ``count`` more were opened and served once.  Connections stay open from round
    to round (:meth:`~bench.members.MemberProcess.release` ends them all): memory freed by
    an earlier round would otherwise be reused and show as no growth (Go's heap, Python's
    arenas and thread stacks)."""
    before = target.server_rss()
    if before is None:
        raise RunError(f"{target.name}: no process to read the memory of")
    members.hold(target, urlsplit(new_token(target, 3)).path, count, timeout=60)
    after = target.server_rss()
    assert after is not None
    return (after - before) / count
