"""The dashboard's poll, ``GET /_fake/changes?since=CURSOR``: only what changed.

Polling every endpoint costs as much as the state is big: with 2,000 tokens each poll of
``GET /_fake/tokens`` is 1.4 MB, built while the fake serves its clients.  This answer
carries, besides the clock (always: it is what TTLs count down from), only

- ``tokens``: the tokens whose keys changed since the cursor's store index, read from the
  store's event history (``removed``: those gone); every token (``"full": true``) on the
  first poll, after a reset or restore, or when the history no longer reaches back;
- ``faults``: the rules, when one was added or removed or its counts moved;
- ``calls``: the journal's new calls, and those that were still running at the last poll
  and have an answer now; the latest ``calls=N`` (``"full": true``) on the first poll;
  each with what the dashboard shows (``GET /_fake/calls`` has their headers and body).

and a ``cursor`` to send back next time.  An idle poll is a few hundred bytes whatever the
size of the state.  The cursor is opaque to clients: a store generation and index, a
journal generation and next number, a checksum of the fault counts and the numbers of
the calls still running.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._constants import TRANSPORT_FIXTURE
from .._etcd_rules import TOKEN_RE
from .._v2store.clock import ControllableClock
from .control import _call_view, _rfc3339, _token_views, expired_members, token_view
from .control_io import ControlError, _only, _query_int

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from .app import DiscoveryApp
    from .faults import FaultPlan
    from .journal import Call

#: Calls sent on a first poll unless ``calls=N`` says otherwise, and the most it may ask.
DEFAULT_CALLS = 200
MAX_CALLS = 1000
#: Running calls (long polls) the cursor follows; older ones are left as running.
MAX_PENDING = 64

_NUMBER = r"(\d{1,19})"
#: store.index.journal.next.faults[.pending...]
_CURSOR_RE = re.compile(
    rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}\.{_NUMBER}\.([0-9a-f]{{1,8}})((?:\.\d{{1,19}})*)"
)


@dataclass(frozen=True)
class Cursor:
    """Where a poller stands: what it has seen of the store, the journal and the faults."""

    store: int
    index: int
    journal: int
    next: int
    faults: str
    pending: tuple[int, ...] = ()

    def __str__(self) -> str:
        head = f"{self.store}.{self.index}.{self.journal}.{self.next}.{self.faults}"
        return head + "".join(f".{n}" for n in self.pending)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR_RE.fullmatch(text)
        if match is None:
            raise ControlError(f"since must be a cursor from an earlier answer, got {text!r}")
        pending = tuple(int(n) for n in match[6].split(".")[1:])
        if len(pending) > MAX_PENDING:
            raise ControlError(f"since follows at most {MAX_PENDING} running calls")
        store, index, journal, following = (int(match[i]) for i in range(1, 5))
        return cls(store, index, journal, following, match[5], pending)


def changes(app: DiscoveryApp, request: Request, base: str, plan: FaultPlan) -> dict[str, Any]:
    """The answer to ``GET /_fake/changes`` (see the module's docstring)."""
    _only(request.args, {"since", "calls"}, "query")
    raw = request.args.get("since")
    since = Cursor.parse(raw) if raw else None
    limit = _query_int(request, "calls", DEFAULT_CALLS) or 0
    if not 1 <= limit <= MAX_CALLS:
        raise ControlError(f"calls must be from 1 to {MAX_CALLS}, got {limit}")

    store = app.store
    # Read before the data: a write in between is sent again next time, never missed.
    generation, index = store.generation, store.index
    clock = app.clock
    now = clock.now()
    answer: dict[str, Any] = {
        "clock": {
            "now": now,
            "time": _rfc3339(now),
            "frozen": isinstance(clock, ControllableClock) and clock.frozen,
            "controllable": isinstance(clock, ControllableClock),
        },
        "index": index,
    }

    if since is None or since.store != generation:
        answer["tokens"] = {"full": True, "tokens": _token_views(app, base), "removed": []}
    elif since.index != index:
        keys = store.changed_keys(since.index)
        changed = _changed_tokens(app, keys) if keys is not None else None
        if changed is None:
            answer["tokens"] = {"full": True, "tokens": _token_views(app, base), "removed": []}
        elif changed:
            expired = expired_members(app)
            views = {name: token_view(app, name, base, expired) for name in sorted(changed)}
            shown = [v for v in views.values() if v is not None]
            # Gone now; not those made after the cursor (/health's): never sent.
            removed = [n for n, v in views.items() if v is None and changed[n] <= since.index]
            if shown or removed:
                answer["tokens"] = {"full": False, "tokens": shown, "removed": removed}

    rules = plan.as_dicts()
    counts = [(id(plan), r["id"], r["seen"], r["fired"]) for r in rules]
    checksum = f"{zlib.crc32(repr(counts).encode()):x}"
    if since is None or since.faults != checksum:
        answer["faults"] = rules

    journal = app.journal
    journal_generation = journal.generation
    sent: list[tuple[int, Call]]
    if since is None or since.journal != journal_generation:
        following, sent, full = *_latest(app, limit), True
        pending: list[int] = []
    else:
        following, new = journal.since(since.next)
        first = following - len(new)
        sent = [(first + i, c) for i, c in enumerate(new)]
        full = len(sent) > limit
        pending = []
        if full:
            sent = sent[-limit:]
        else:
            for number in since.pending:
                call = journal.at(number)
                if call is None:
                    continue  # trimmed away: nothing more to tell about it
                if call.status is None:
                    pending.append(number)
                else:
                    sent.insert(0, (number, call))
    sent = [(n, c) for n, c in sent if c.transport != TRANSPORT_FIXTURE]
    pending += [n for n, c in sent if c.status is None and n not in pending]
    if sent or full:
        answer["calls"] = {
            "full": full,
            "calls": [_slim(n, c) for n, c in sorted(sent, key=lambda nc: nc[0])],
            "next": following,
        }
    cursor = Cursor(
        generation,
        index,
        journal_generation,
        following,
        checksum,
        tuple(sorted(pending)[-MAX_PENDING:]),
    )
    answer["cursor"] = str(cursor)
    return answer


#: What the dashboard shows of a call (``GET /_fake/calls`` has the rest: headers, body).
_CALL_FIELDS = ("number", "method", "path", "query", "status", "transport", "time", "fault")


def _slim(number: int, call: Call) -> dict[str, Any]:
    view = _call_view(number, call)
    return {name: view[name] for name in _CALL_FIELDS}


def _latest(app: DiscoveryApp, limit: int) -> tuple[int, list[tuple[int, Call]]]:
    """The journal's next number and its last ``limit`` calls, numbered."""
    journal = app.journal
    following, calls = journal.since(max(0, journal.dropped + len(journal.calls) - limit))
    first = following - len(calls)
    numbered = [(first + i, c) for i, c in enumerate(calls)]
    return following, numbered[-limit:]


def _changed_tokens(app: DiscoveryApp, keys: list[tuple[str, int]]) -> dict[str, int] | None:
    """The tokens the changed ``keys`` touched, each with the createdIndex of the first
    change of its directory itself (0 when none): above the cursor, the token was made
    after it.  None when a change touched every token (their parent deleted or expired)."""
    parent = app.token_key("")  # the tokens' parent with its final "/"
    names: dict[str, int] = {}
    for key, created in keys:
        if key.startswith(parent):
            name, _, below = key[len(parent) :].partition("/")
            if not TOKEN_RE.fullmatch(name):
                continue
            first = names.setdefault(name, 0)
            if not below and not first:
                names[name] = created  # a directory created, deleted or expired
        elif parent.startswith(key.rstrip("/") + "/"):
            return None
    return names
