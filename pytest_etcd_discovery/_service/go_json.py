"""JSON bytes as Go's ``encoding/json`` writes them.

Clients compare raw bodies more often than one would hope, so the fake escapes the
way Go does: ``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u00XX``/``\\u20XX``, control
characters as ``\\u00XX`` (except ``\\n``, ``\\r``, ``\\t``), non-ASCII kept as UTF-8,
and bytes that were not UTF-8 (kept as surrogate escapes) as ``\\ufffd``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ESCAPES: dict[int, str] = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update(
    {
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord("\t"): "\\t",
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        ord("<"): "\\u003c",
        ord(">"): "\\u003e",
        ord("&"): "\\u0026",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
    }
)
# Bytes that were not UTF-8 (kept as surrogate escapes): Go writes the escape \ufffd.
_ESCAPES.update({i: "\\ufffd" for i in range(0xD800, 0xE000)})


def _encode(obj: Any, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append('"' + obj.translate(_ESCAPES) + '"')
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif obj is None:
        out.append("null")
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key, value in obj.items():
            if not first:
                out.append(",")
            first = False
            _encode(str(key), out)
            out.append(":")
            _encode(value, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            _encode(value, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as Go JSON")


_NEEDS_GO_ESCAPE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def _go_escape(match: re.Match[str]) -> str:
    return _ESCAPES[ord(match.group())]


#: One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def dumps(obj: Any) -> str:
    """``json.Marshal``: compact, Go's escaping, dict order kept.

    The C encoder does the work; the characters Go escapes and Python doesn't are then
    rewritten (they can only stand inside strings). Python writes ``\\b`` and ``\\f``
    where Go writes ``\\u0008``/``\\u000c``: such text takes the exact, slower path.
    """
    text = _ENCODER.encode(obj)
    if "\\b" in text or "\\f" in text:
        return _exact(obj)
    if text.isascii() and "<" not in text and ">" not in text and "&" not in text:
        return text  # the usual reply: nothing to escape, and these scans run in C
    return _NEEDS_GO_ESCAPE.sub(_go_escape, text)


def _exact(obj: Any) -> str:
    out: list[str] = []
    _encode(obj, out)
    return "".join(out)


def encode_line(obj: Any) -> bytes:
    """``json.NewEncoder(w).Encode``: the same plus a trailing newline."""
    return (dumps(obj) + "\n").encode("utf-8")
