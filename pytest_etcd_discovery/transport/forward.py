"""Interception against a real service: discovery hosts are sent to the configured one.

With ``--etcd-discovery-url`` there is no fake to answer, yet code under test may still
call ``https://discovery.etcd.io`` (a suite whose ini turns interception on, a test with
the ``etcd_discovery`` marker).  Such calls must never reach the public service:
:class:`ForwardApp` is what the :class:`~.intercept.Interceptor` then calls instead of the
service (the same ``route``/``may_block``/``handle`` calls), and it replays each request
on the configured service over HTTP, unchanged but for the host.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from urllib.parse import quote, urlsplit

from ..service.forms import Form
from ..service.http import Reply, ServiceRequest
from ..service.routes import Route

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


def _request_headers(request: ServiceRequest) -> dict[str, str]:
    return {name: value for name, value in request.headers if name.lower() not in _NOT_FORWARDED}


class ForwardApp:
    """Answers each request with what ``base_url`` answers to it.

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

    def route(self, request: ServiceRequest) -> Route:
        """No routing here: the configured service routes (the interceptor asks)."""
        return Route("forward", request.path, Form())

    def may_block(self, route: Route) -> bool:
        """Any forwarded request may wait on the network (a long poll, a slow service)."""
        return True

    def handle(self, request: ServiceRequest, route: Route | None = None) -> Reply:
        """What the configured service answers to ``request``."""
        path = quote(request.path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)
        target = self._prefix + path + (f"?{request.query}" if request.query else "")
        connection = self._connect()
        with self._lock:
            self._open.add(connection)
        try:
            connection.request(
                request.method, target, body=request.body, headers=_request_headers(request)
            )
            reply = connection.getresponse()
            body = reply.read()
            headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in _NOT_FORWARDED]
        except (OSError, http.client.HTTPException) as exc:
            import requests  # interception loaded it already

            raise requests.exceptions.ConnectionError(
                f"etcd discovery: forwarding to {self.base_url} failed: {exc!r}"
            ) from exc
        finally:
            with self._lock:
                self._open.discard(connection)
            connection.close()
        headers.append(("Content-Length", str(len(body))))
        return Reply(reply.status, headers, body)

    def close(self) -> None:
        """Cut every request still waiting on the service (their callers get an error)."""
        with self._lock:
            waiting, self._open = list(self._open), set()
        for connection in waiting:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
