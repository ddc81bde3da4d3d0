"""Go ``net/http`` behaviour the real services get for free: path cleaning, the
mux's redirect, ``http.Error`` and a bare ``WriteHeader``, as :class:`~.messages.Reply` s.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import quote

from .._v2store.store import clean_path
from .messages import Reply

__all__ = [
    "bare_response",
    "body_reply",
    "go_clean_path",
    "http_error",
    "redirect",
    "redirect_to_clean",
    "status_text",
]

TEXT_PLAIN = "text/plain; charset=utf-8"
TEXT_HTML = "text/html; charset=utf-8"


def status_text(status: int) -> str:
    """Go's ``http.StatusText``: the reason phrase, "" for a code it does not know."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def body_reply(
    status: int,
    body: bytes | str,
    headers: Sequence[tuple[str, str]] = (),
    content_type: str | None = TEXT_PLAIN,
) -> Reply:
    """A reply with a whole body: ``Content-Type`` (unless None), ``headers``, then its
    ``Content-Length``. A 1xx or 204 reply has no length, a 304 no entity headers."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    fields: list[tuple[str, str]] = []
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    fields.extend(headers)
    if 100 <= status < 200 or status == 204:
        return Reply(status, fields, data)
    if status == 304:
        entity = ("content-type", "content-length", "content-encoding", "content-language")
        return Reply(status, [f for f in fields if f[0].lower() not in entity], data)
    fields.append(("Content-Length", str(len(data))))
    return Reply(status, fields, data)


def http_error(body: str, status: int) -> Reply:
    """``http.Error``: text/plain, nosniff, and a newline after the message."""
    reply = body_reply(status, body + "\n")
    reply.headers.append(("X-Content-Type-Options", "nosniff"))
    return reply


def bare_response(status: int) -> Reply:
    """A status with no body and no Content-Type, like Go's ``WriteHeader`` alone."""
    return body_reply(status, b"", content_type=None)


def go_clean_path(path: str) -> str:
    """Go's ``http`` cleanPath: ``path.Clean`` keeping a trailing slash."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        # No empty, "." or ".." segment: already clean (the common case, kept cheap).
        return path
    cleaned = clean_path(path)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def redirect(location: str, method: str) -> Reply:
    """``http.Redirect`` with 301: a tiny HTML body for GET only."""
    # Go escapes non-ASCII bytes of the target (hexEscapeNonASCII).
    location = "".join(
        chr(b) if b < 0x80 else f"%{b:02x}" for b in location.encode("utf-8", "surrogateescape")
    )
    if method == "GET":
        escaped = location.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        escaped = escaped.replace('"', "&#34;").replace("'", "&#39;")
        reply = body_reply(301, f'<a href="{escaped}">Moved Permanently</a>.\n\n', (), TEXT_HTML)
    elif method == "HEAD":
        reply = body_reply(301, b"", (), TEXT_HTML)
    else:
        reply = bare_response(301)
    reply.headers.append(("Location", location))
    return reply


def redirect_to_clean(path: str, query: str, method: str) -> Reply | None:
    """Go's ServeMux redirect of an unclean path (``//new``, ``/a/../new``), which it
    answers before any handler runs; None when ``path`` is clean."""
    cleaned = go_clean_path(path)
    if cleaned == path:
        return None
    # Go's mux redirects to url.String(): the path escaped, so "\r" is "%0D".
    location = quote(cleaned, safe="/$&+,:;=@", errors="surrogateescape")
    return redirect(location + (f"?{query}" if query else ""), method)
