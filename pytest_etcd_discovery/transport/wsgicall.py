"""Calling the fake's WSGI app in-process: a hand-built environ and one call.

Both in-process paths use it: the ``responses`` interceptor for every intercepted
``requests`` call, and the fixture for its own seeding calls. It imports no HTTP client,
so a test that only uses the live server does not load ``requests`` or ``responses``.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote_to_bytes, urlencode, urlsplit

from ..service.app import BODY_KEY, TRANSPORT_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["call_app", "call_environ", "make_environ"]


#: Environ keys by header name ("" for Host, which comes from the URL); the few names
#: clients send, worked out once.
_ENVIRON_KEYS: dict[str, str] = {}


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    if key == "HOST":
        key = ""
    elif key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = f"HTTP_{key}"
    if len(_ENVIRON_KEYS) < 256:  # odd names (a fuzzer) are not kept
        _ENVIRON_KEYS[name] = key
    return key


@lru_cache(maxsize=64)
def _server_of(scheme: str, netloc: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT for a URL's host: parsed once per host, not per call.

    A bad port raises ValueError (and is not cached), as ``urlsplit(url).port`` does.
    """
    parts = SplitResult(scheme, netloc, "", "", "")
    port = parts.port or (443 if scheme == "https" else 80)
    return parts.hostname or "", str(port)


def make_environ(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    transport: str,
) -> dict[str, Any]:
    """A WSGI environ for ``method url`` as if it arrived at the URL's own host.

    Built by hand (PEP 3333) rather than with werkzeug's ``EnvironBuilder``: this runs for
    every intercepted call, and the builder costs more than the app's answer.
    """
    parts = urlsplit(url)
    server_name, server_port = _server_of(parts.scheme, parts.netloc)
    content_length = str(len(body))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        # PATH_INFO is the unescaped path, its bytes as a Latin-1 string.
        "PATH_INFO": unquote_to_bytes(parts.path or "/").decode("latin-1"),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": parts.netloc,
        "CONTENT_LENGTH": content_length,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": parts.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        # The app derives the public URL /new hands out from the host, and tags the
        # journal entry with the transport.
        TRANSPORT_KEY: transport,
    }
    for name, value in headers:
        key = _ENVIRON_KEYS.get(name)
        if key is None:
            key = _environ_key(name)
        if key:
            environ[key] = value
    if environ["CONTENT_LENGTH"] == content_length:
        # The body whole, for the app to take without streaming it (app.BODY_KEY);
        # not when a header claims another length: then werkzeug reads what it says.
        environ[BODY_KEY] = body
    return environ


def call_app(
    app: WSGIApplication,
    method: str,
    url: str,
    *,
    form: dict[str, str] | None = None,
    transport: str = "fixture",
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Call ``app`` in-process for ``method url`` with an urlencoded ``form`` body."""
    headers: list[tuple[str, str]] = []
    body = b""
    if form:
        body = urlencode(form).encode("ascii")
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    return call_environ(app, make_environ(method, url, headers, body, transport))


def call_environ(
    app: WSGIApplication, environ: dict[str, Any]
) -> tuple[int, list[tuple[str, str]], bytes]:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return None

    app_iter = app(environ, start_response)
    try:
        # Consuming the iterator is where a long poll blocks, like a client reading a body.
        body = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    status, headers = started
    return int(status.split(" ", 1)[0]), list(headers), body
