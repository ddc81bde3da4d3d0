"""Interception against a real service: discovery hosts are sent to the configured one.

With ``--etcd-discovery-url`` there is no fake to answer, yet code under test may still
call ``https://discovery.etcd.io`` (a suite whose ini turns interception on, a test with
the ``etcd_discovery`` marker).  Such calls must never reach the public service:
:class:`ForwardApp` is the WSGI app the :class:`~.intercept.Interceptor` then calls, and
it replays each request on the configured service over HTTP, unchanged but for the host.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ForwardApp"]

#: Headers that belong to one connection, not to the request or reply (RFC 9110 7.6.1),
#: plus Host (the configured service's) and the length (worked out again).
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
#: Characters a path keeps unescaped (RFC 3986 pchar and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key == "CONTENT_TYPE" and value:
            name = "Content-Type"
        else:
            continue
        if name.lower() not in _NOT_FORWARDED:
            headers[name] = value
    return headers


def _request_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


class ForwardApp:
    """A WSGI app that answers each request with what ``base_url`` answers to it.

    :param base_url: the configured service (``http(s)://host[:port][/prefix]``).

    Long polls are held open like any reply; :meth:`close` cuts the ones still waiting
    (the test ended), so no thread outlives its test.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._netloc, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._netloc)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = quote(environ.get("PATH_INFO", "/").encode("latin-1"), safe=_PATH_SAFE)
        query = environ.get("QUERY_STRING", "")
        target = self._prefix + path + (f"?{query}" if query else "")
        connection = self._connect()
        with self._lock:
            self._open.add(connection)
        try:
            connection.request(
                environ["REQUEST_METHOD"],
                target,
                body=_request_body(environ),
                headers=_request_headers(environ),
            )
            reply = connection.getresponse()
            body = reply.read()
            headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in _NOT_FORWARDED]
        except (OSError, http.client.HTTPException) as exc:
            import requests  # interception loaded it already

            # What the caller's requests would have raised talking to the service itself.
            raise requests.exceptions.ConnectionError(
                f"etcd discovery: forwarding to {self.base_url} failed: {exc!r}"
            ) from exc
        finally:
            with self._lock:
                self._open.discard(connection)
            connection.close()
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{reply.status} {reply.reason}", headers)
        return [body]

    def close(self) -> None:
        """Cut every request still waiting on the service (their callers get an error)."""
        with self._lock:
            waiting, self._open = list(self._open), set()
        for connection in waiting:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
