"""Query strings and form bodies parsed the way Go's ``net/http`` parses them.

etcd reads parameters with ``r.ParseForm()``: the body (urlencoded PUT/POST) comes
before the query string, the first value of a name wins, and a malformed escape or
a ``;`` separator is an error that etcd reports as ``210 Invalid POST form``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .._errors import Error

MAX_FORM_SIZE = 10 << 20  # Go's limit for an urlencoded body
#: A ``%`` that does not start a two-digit hex escape.
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


class FormError(Error, ValueError):
    """Go's parse error text, e.g. ``invalid URL escape "%zz"``."""


def query_unescape(text: str) -> str:
    """``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte.

    Bytes that are not UTF-8 stay as surrogate escapes, so a value keeps its exact
    bytes (compare-and-swap compares bytes in Go) and JSON shows them as Go does.
    """
    if "%" not in text:
        return text.replace("+", " ") if "+" in text else text
    bad = _BAD_ESCAPE.search(text)
    if bad is not None:
        # Go names the first bad escape by its next 3 bytes.
        raw = text[bad.start() :].encode("utf-8", "surrogateescape")
        raise FormError(f'invalid URL escape "{raw[:3].decode("utf-8", "replace")}"')
    # Every % starts a valid escape now. (Not urllib's unquote_to_bytes: its first use
    # builds a 35 KB table that a process keeps.)
    parts = text.replace("+", " ").encode("utf-8", "surrogateescape").split(b"%")
    for i in range(1, len(parts)):
        part = parts[i]
        parts[i] = bytes.fromhex(part[:2].decode("ascii")) + part[2:]
    return b"".join(parts).decode("utf-8", "surrogateescape")


def parse_query(query: str, into: dict[str, list[str]]) -> str | None:
    """``url.ParseQuery`` into ``into``; returns Go's first error text, or None."""
    error: str | None = None
    for pair in query.split("&"):
        if ";" in pair:
            error = error or "invalid semicolon separator in query"
            continue
        if not pair:
            continue
        key, _, value = pair.partition("=")
        try:
            key = query_unescape(key)
            value = query_unescape(value)
        except FormError as exc:
            error = error or str(exc)
            continue
        into.setdefault(key, []).append(value)
    return error


@dataclass
class Form:
    """A request's merged parameters: body values first, then the query's."""

    values: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: str = "") -> str:
        """``FormValue``: the first value, or ``default``."""
        vals = self.values.get(name)
        return vals[0] if vals else default


def parse_form(method: str, query: str, content_type: str, body: bytes) -> Form:
    """``r.ParseForm()`` for ``method``: urlencoded bodies of POST/PUT/PATCH count."""
    form = Form()
    if method in ("POST", "PUT", "PATCH"):
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            if len(body) > MAX_FORM_SIZE:
                form.error = "http: POST too large"
            else:
                text = body.decode("utf-8", "surrogateescape")
                form.error = parse_query(text, form.values)
    query_error = parse_query(query, form.values)
    form.error = form.error or query_error
    return form


def go_parse_bool(text: str) -> bool:
    """``strconv.ParseBool``; raises ValueError like Go returns an error."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def go_parse_uint64(text: str) -> int:
    """``strconv.ParseUint(text, 10, 64)``."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(text)
    value = int(text)
    if value >= 1 << 64:
        raise ValueError(text)
    return value


def go_atoi(text: str) -> int:
    """``strconv.Atoi`` with Go's error text."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < 1 << 63:
        raise ValueError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value
