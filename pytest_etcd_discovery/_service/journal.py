"""The journal: one :class:`Call` per request the fake answered, bounded in bytes.

Tests read it (``etcd_discovery.calls``) and the report prints it. Each entry keeps at
most :data:`MAX_ENTRY_CHARS` characters of form values and query, :data:`MAX_HEADER_CHARS`
of header fields and :data:`MAX_BODY_CHARS` of body (a 5 MiB body is not kept whole),
and the journal at most ``max_bytes`` bytes of memory in all, each entry
costed with :func:`sys.getsizeof` (its object, its strings, its form), dropping the
oldest entries first, so a long-running fake or a test sending large bodies stays small.
What requests repeat (the method, the query, form names and short values, a client's
header fields) is kept once for all entries (:class:`_Shared`), and an entry is costed
for what it does not share. (Measured with :mod:`tracemalloc`: a small request's entry
holds 0.35-0.9 KB, a ``requests`` GET's 0.47 KB, an etcd member's PUT 0.8 KB; the cost
is within -2 % to +15 % of it. Before the sharing and the slotted :class:`Call` they held
0.8-1.5 KB, costed at 1.5-1.9 times that.)
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_ENTRY_CHARS",
    "MAX_HEADER_CHARS",
    "MAX_JOURNAL_BYTES",
    "MAX_JOURNAL_CHARS",
    "TRUNCATED",
    "Call",
    "Journal",
    "Streamed",
]

#: What one entry keeps of its query and form values together (characters). Beyond it,
#: a value is cut and ends with :data:`TRUNCATED`, and later fields are left out.
MAX_ENTRY_CHARS = 16 * 1024
#: What one entry keeps of the request's header fields, names and values (characters).
MAX_HEADER_CHARS = 4 * 1024
#: What one entry keeps of the request's body, as text (characters).
MAX_BODY_CHARS = 8 * 1024
#: What the whole journal keeps by default: bytes of memory, as its entries' costs.
MAX_JOURNAL_BYTES = 32 * 1024 * 1024
#: The old name of :data:`MAX_JOURNAL_BYTES` (the bound was counted in characters).
MAX_JOURNAL_CHARS = MAX_JOURNAL_BYTES
#: The end of a value the journal cut short.
TRUNCATED = "…[truncated]"


# Slots: no per-entry attribute dict (~120 bytes of every entry).
@dataclass(slots=True)
class Call:
    """One request the fake answered: the journal entry tests and reports read."""

    method: str
    #: the path as sent (percent-decoded; bytes that are not UTF-8 shown as U+FFFD)
    path: str
    #: the query string as sent, without the ``?``
    query: str
    #: None while the request is still being answered (a long poll), 0 for a dropped one
    status: int | None
    transport: str
    #: the request's parameters (urlencoded body, then query) as etcd reads them
    form: dict[str, list[str]] = field(default_factory=dict)
    time: float = 0.0
    #: the fault rule that answered this request (see :mod:`.faults`), else None
    fault: str | None = None
    #: True when the journal cut the query, form values, header fields or body (see
    #: :data:`MAX_ENTRY_CHARS`, :data:`MAX_HEADER_CHARS`, :data:`MAX_BODY_CHARS`)
    truncated: bool = False
    #: the route it took, named as fault rules name them (``new``, ``token``,
    #: ``machine``, ``size``, ...); None for a path that routes nowhere or is redirected
    route: str | None = None
    #: a long poll (what a fault rule's ``route="watch"`` matches)
    watch: bool = False
    #: True while a streamed reply (an etcd-v2 long poll) is still being sent: its
    #: status is known at once, its body is not
    streaming: bool = False
    #: A ``/new`` that made a token: the token URL it handed out (on the host the
    #: request was addressed to, e.g. ``https://discovery.etcd.io/<token>``), else None
    created_url: str | None = None
    #: the request's header fields as received, ``(name, value)`` in order (cut at
    #: :data:`MAX_HEADER_CHARS`)
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: the request's body as text (bytes that are not UTF-8 as U+FFFD; cut at
    #: :data:`MAX_BODY_CHARS`)
    body: str = ""
    #: the body's whole length in bytes, as received
    body_size: int = 0

    @property
    def in_flight(self) -> bool:
        """True until the reply is complete: no status yet, or a body still streaming."""
        return self.status is None or self.streaming

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        status = "pending" if self.status is None else self.status
        return f"{self.method} {self.path}{query} -> {status} ({self.transport})"


class Streamed(Iterator[bytes]):
    """A long poll's body pieces that mark the journal entry complete once the body has
    ended, or when it is closed early (a client gone, the test over)."""

    __slots__ = ("_call", "_pieces")

    def __init__(self, pieces: Iterator[bytes], call: Call) -> None:
        self._pieces = pieces
        self._call = call

    def __next__(self) -> bytes:
        try:
            return next(self._pieces)
        except StopIteration:
            # Before the transport ends the reply (last chunk, length, close), so a
            # client that has the whole reply never sees its entry still streaming.
            self._call.streaming = False
            raise

    def close(self) -> None:
        try:
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()
        finally:
            self._call.streaming = False


def _entry_base() -> int:
    """What every entry costs whatever it holds: the :class:`Call` (slots, no attribute
    dict), its time, its slots in the journal's two lists and its recorded size."""
    sample = Call("GET", "/", "", None, "live", {}, 0.5, route="new", watch=False)
    return (
        sys.getsizeof(sample)
        + sys.getsizeof(sample.time)
        + 2 * 8  # the pointers in calls and _sizes
        + _INT  # the recorded size
    )


#: An int's object (CPython shares one object for each of -5..256).
_INT = sys.getsizeof(1 << 20)


_ENTRY_BASE = _entry_base()
#: A header field's ``(name, value)`` tuple, without its strings.
_PAIR = sys.getsizeof(("", ""))
#: An ASCII string's size less its length (CPython's compact ASCII strings).
_ASCII = sys.getsizeof("a") - 1
#: A ``/new`` entry gets its token URL later (``created_url``): counted in advance.
_CREATED_URL = sys.getsizeof("https://discovery.etcd.io/" + "0" * 32)
#: Shared between entries (see :class:`_Shared`): a method, query or form name of at most
#: this many characters,
_SHARE_TEXT = 64
#: a form value of at most this many (flags, numbers, TTLs: values that repeat; longer
#: ones are data, like a member's peer URLs),
_SHARE_VALUE = 8
#: a header field of at most this many (name and value).
_SHARE_FIELD = 256


class _Shared:
    """One copy of what many entries repeat: the method, the query, form names and short
    values, a client's header fields (the same few on every request).

    The entry that brings an item first pays for it (:meth:`text` returns its bytes);
    later entries hold the same object and pay only their pointer to it. At
    :data:`LIMIT` items the table starts over (items it shared stay with their entries),
    so what it keeps beyond the entries is bounded: at most ``LIMIT`` items of at most
    :data:`_SHARE_FIELD` characters, a few hundred KB in the worst case.
    """

    __slots__ = ("items",)

    LIMIT = 1024

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}

    def adopt(self, item: object) -> None:
        items = self.items
        if len(items) >= self.LIMIT:
            items.clear()
        items[item] = item

    def text(self, text: str, limit: int = _SHARE_TEXT) -> tuple[str, int]:
        """``text``, or the equal string an earlier entry brought; and the bytes this
        entry pays for it (0 when shared)."""
        if len(text) <= limit:
            shared = self.items.get(text)
            if shared is not None:
                return shared, 0
            self.adopt(text)
        return text, _str_bytes(text)

    def form(self, form: dict[str, list[str]]) -> tuple[dict[str, list[str]], int]:
        """A copy of ``form`` with shared names and short values, and its bytes (the dict,
        its lists, what it pays for its strings)."""
        if not form:
            return form, sys.getsizeof(form)
        kept: dict[str, list[str]] = {}
        size = 0
        for name, values in form.items():
            name, paid = self.text(name)
            out = list(values)  # exact size: a list grown by appends keeps spare room
            size += paid + sys.getsizeof(out)
            for i, value in enumerate(out):
                out[i], paid = self.text(value, _SHARE_VALUE)
                size += paid
            kept[name] = out
        return kept, size + sys.getsizeof(kept)


def bounded_headers(headers: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], bool]:
    """``headers`` as a new list cut to :data:`MAX_HEADER_CHARS` in all (a value cut
    ends with :data:`TRUNCATED`, later fields left out); and whether anything was cut."""
    kept, cut, _ = bounded_headers_bytes(headers)
    return kept, cut


def bounded_headers_bytes(
    headers: Iterable[tuple[str, str]], shared: _Shared | None = None
) -> tuple[list[tuple[str, str]], bool, int]:
    """:func:`bounded_headers`, and the bytes the kept fields' tuples and strings hold
    (not the list's own): counted in the same pass, not a second loop per request.
    With ``shared``, a field an earlier entry brought is that entry's tuple, and costs
    nothing here."""
    kept: list[tuple[str, str]] = []
    budget = MAX_HEADER_CHARS
    size = 0
    for pair in headers:
        name, value = pair
        chars = len(name) + len(value)
        if chars > budget:
            if budget > len(name):
                value = _cut(value, budget - len(name))
                kept.append((name, value))
                size += _PAIR + _str_bytes(name) + _str_bytes(value)
            return kept, True, size
        budget -= chars
        if type(pair) is not tuple:
            pair = (name, value)
        if shared is not None and chars <= _SHARE_FIELD:
            known = shared.items.get(pair)
            if known is not None:
                kept.append(known)
                continue
            shared.adopt(pair)
        kept.append(pair)
        # An ASCII string's size by arithmetic: getsizeof per field cost a request 2 us.
        if name.isascii() and value.isascii():
            size += _PAIR + 2 * _ASCII + chars
        else:
            size += _PAIR + _str_bytes(name) + _str_bytes(value)
    return kept, False, size


def _str_bytes(text: str) -> int:
    return _ASCII + len(text) if text.isascii() else sys.getsizeof(text)


def bounded_body(body: bytes) -> tuple[str, bool]:
    """``body`` as text cut to :data:`MAX_BODY_CHARS` (ending with :data:`TRUNCATED`);
    and whether it was cut."""
    if not body:
        return "", False
    # Decode no more than can be kept (4 bytes at most per character).
    text = body[: 4 * MAX_BODY_CHARS].decode("utf-8", "replace")
    if len(text) <= MAX_BODY_CHARS and len(body) <= 4 * MAX_BODY_CHARS:
        return text, False
    return _cut(text[:MAX_BODY_CHARS], MAX_BODY_CHARS), True


def _cut(text: str, budget: int) -> str:
    return text[: max(budget - len(TRUNCATED), 0)] + TRUNCATED


def bounded(query: str, form: dict[str, list[str]]) -> tuple[str, dict[str, list[str]], int, bool]:
    """``query`` and ``form`` cut to :data:`MAX_ENTRY_CHARS` in all; also returns the
    characters kept and whether anything was cut. ``form`` is returned as it is when
    it fits (the common case: no copy)."""
    budget = MAX_ENTRY_CHARS
    truncated = False
    if len(query) > budget // 2:
        query = _cut(query, budget // 2)  # half for the query, so form values show too
        truncated = True
    budget -= len(query)
    # Most GETs carry no form: skip building the generators for nothing.
    size = sum(len(k) + sum(len(v) for v in vs) for k, vs in form.items()) if form else 0
    if size <= budget:
        return query, form, len(query) + size, truncated
    kept: dict[str, list[str]] = {}
    for name, values in form.items():
        if budget <= len(name):
            break
        budget -= len(name)
        out = kept[name] = []
        for value in values:
            if len(value) > budget:
                out.append(_cut(value, budget))
                budget = 0
                break
            out.append(value)
            budget -= len(value)
        if budget <= 0:
            break
    return query, kept, MAX_ENTRY_CHARS - max(budget, 0), True


#: Numbers journals' lists: a new journal, a clear or a renew takes the next one.
_GENERATIONS = itertools.count(1)


class Journal:
    """The :class:`Call` s of one service, oldest first, bounded.

    :param max_calls: keep at most about this many entries; None keeps all that fit
        ``max_bytes`` (tests reset the journal anyway; a long-running server should not).
    :param max_bytes: keep entries costing at most this many bytes in all (see
        :meth:`record`); past it the oldest go, down to half of it.
    """

    def __init__(self, max_calls: int | None = None, max_bytes: int = MAX_JOURNAL_BYTES) -> None:
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.calls: list[Call] = []
        #: How many entries were trimmed away: ``calls[i]`` is call number
        #: ``dropped + i`` since the last clear (see :meth:`since`).
        self.dropped = 0
        self._sizes: list[int] = []
        self._chars = 0
        self._lock = threading.Lock()
        self._shared = _Shared()
        #: Changes on every clear or renew: call numbers restart from 0 then.
        self.generation = next(_GENERATIONS)

    def record(
        self,
        *,
        method: str,
        path: str,
        query: str,
        transport: str,
        form: dict[str, list[str]],
        time: float,
        route: str | None = None,
        watch: bool = False,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Call:
        """Add the entry of a request about to be answered (its status still None)."""
        shared = self._shared
        kept_headers, cut_headers, size = bounded_headers_bytes(headers, shared)
        text, cut_body = bounded_body(body)
        method, paid = shared.text(method)
        size += paid
        query, form, _, truncated = bounded(query, form)
        form, paid = shared.form(form)
        size += paid
        query, paid = shared.text(query)
        size += paid
        call = Call(
            method,
            path,
            query,
            None,
            transport,
            form,
            time,
            truncated=truncated or cut_headers or cut_body,
            route=route,
            watch=watch,
            headers=kept_headers,
            body=text,
            body_size=len(body),
        )
        # What the entry holds: its object and the parts it does not share (a non-ASCII
        # string costs 2-4 bytes a character, which a count of characters misses).
        size += _ENTRY_BASE + _str_bytes(path) + sys.getsizeof(kept_headers)
        if text:  # the empty string is shared, and so are small ints (body_size)
            size += _str_bytes(text) + (_INT if len(body) > 256 else 0)
        if route == "new":
            size += _CREATED_URL
        with self._lock:
            self.calls.append(call)
            self._sizes.append(size)
            self._chars += size
            # Trim in batches so recording stays O(1) amortised.
            if self.max_calls is not None and len(self.calls) >= 2 * self.max_calls:
                self._drop_oldest(len(self.calls) - self.max_calls)
            if self._chars > self.max_bytes:
                self._drop_to(self.max_bytes // 2)
        return call

    def _drop_oldest(self, count: int) -> None:
        self._chars -= sum(self._sizes[:count])
        self.dropped += count
        del self.calls[:count]
        del self._sizes[:count]

    def _drop_to(self, chars: int) -> None:
        count, total = 0, self._chars
        while total > chars and count < len(self._sizes) - 1:
            total -= self._sizes[count]
            count += 1
        self._drop_oldest(count)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self._sizes.clear()
            self._chars = 0
            self.dropped = 0
            self._shared = _Shared()  # its items were paid by the entries gone
            self.generation = next(_GENERATIONS)

    def since(self, number: int) -> tuple[int, list[Call]]:
        """The entries from call ``number`` on (0 = the first since the last clear), as
        far as they are still kept, and the number the next call will get."""
        with self._lock:
            start = max(number - self.dropped, 0)
            return self.dropped + len(self.calls), self.calls[start:]

    @property
    def next_number(self) -> int:
        """The number the next call will get (calls since the last clear)."""
        with self._lock:
            return self.dropped + len(self.calls)

    def renew(self) -> None:
        """Start an empty list of calls, leaving the old list to whoever holds it (a
        request that outlived its test still lands there, not in the new one)."""
        with self._lock:
            self.calls = []
            self._sizes = []
            self._chars = 0
            self.dropped = 0
            self._shared = _Shared()
            self.generation = next(_GENERATIONS)

    def at(self, number: int) -> Call | None:
        """Call ``number`` (as :meth:`since` numbers them), None when no longer kept."""
        with self._lock:
            offset = number - self.dropped
            return self.calls[offset] if 0 <= offset < len(self.calls) else None

    @property
    def bytes(self) -> int:
        """The bytes the journal's entries hold now, as :meth:`record` costs them."""
        return self._chars

    #: The old name of :attr:`bytes`.
    chars = bytes

    @property
    def max_chars(self) -> int:
        """The old name of :attr:`max_bytes`."""
        return self.max_bytes
