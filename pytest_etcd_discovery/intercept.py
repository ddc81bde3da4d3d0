"""Serve ``requests`` calls to discovery hosts in-process, through the fake's WSGI app.

Code under test usually hard-codes ``https://discovery.etcd.io``.  Under interception a
:class:`responses.RequestsMock` routes every method on that host (and on any extra host)
to the same :class:`~pytest_etcd_discovery.app.DiscoveryApp` the live server runs, so
both transports share one state and one journal.  Every other URL passes through
untouched, including the fake's own live server.
"""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

import requests
import responses

from .app import TRANSPORT_KEY
from .names import DEFAULT_HOSTS, normalize_host

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from requests import PreparedRequest

__all__ = [
    "DEFAULT_HOSTS",
    "TRANSPORT_KEY",
    "Interceptor",
    "call_app",
    "intercept",
    "normalize_host",
]


#: Every method ``responses`` can match; the real service answers each one (often 405).
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

_Callback = Callable[["PreparedRequest"], Any]


def _read_timeout(timeout: object) -> float | None:
    """The read part of a ``requests`` timeout (a number or a (connect, read) pair)."""
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) > 1 else timeout[0]
    if isinstance(timeout, int | float):
        return float(timeout)
    return None


class Interceptor:
    """One :class:`responses.RequestsMock` that feeds matching requests to a WSGI app.

    :param app: the WSGI application to call (the fake's :class:`DiscoveryApp`).
    :param hosts: base URLs to intercept, e.g. ``https://discovery.etcd.io``.

    Use it as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, app: WSGIApplication, hosts: Iterable[str] = DEFAULT_HOSTS) -> None:
        self.app = app
        self.hosts: tuple[str, ...] = tuple(dict.fromkeys(normalize_host(h) for h in hosts))
        self._mock: responses.RequestsMock | None = None

    @property
    def active(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._mock is not None

    def start(self) -> None:
        """Patch ``requests`` so calls to :attr:`hosts` reach the app in-process."""
        if self._mock is not None:
            return
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        # responses' stubs say headers are a Mapping; it also takes a list of pairs at
        # run time, which keeps repeated headers intact.
        callback = cast(Any, self._callback)
        for host in self.hosts:
            # Anchored on the host and a path boundary, so "https://discovery.etcd.io.evil"
            # or another port on the same name is not captured.
            pattern = re.compile(re.escape(host) + r"(?:[/?#].*)?\Z", re.DOTALL)
            for method in _METHODS:
                mock.add_callback(method, pattern, callback=callback, content_type=None)
        # Anything not matched above goes out for real (other services, the live fake).
        mock.add_passthru(re.compile(r".*", re.DOTALL))
        mock.start()
        self._mock = mock

    def stop(self) -> None:
        """Undo the patch; requests to the hosts go to the network again."""
        mock, self._mock = self._mock, None
        if mock is not None:
            mock.stop(allow_assert=False)
            mock.reset()

    def __enter__(self) -> Interceptor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _callback(self, request: PreparedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        environ = _build_environ(request)
        timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
        if timeout is None:
            return _call_app(self.app, environ)
        # A real long poll with ``timeout=`` raises ReadTimeout when nothing happens in
        # time; emulate that instead of blocking the caller forever.  The abandoned call
        # finishes (or is released by the app's close/reset) in its own daemon thread.
        box: list[tuple[int, list[tuple[str, str]], bytes] | BaseException] = []

        def run() -> None:
            try:
                box.append(_call_app(self.app, environ))
            except BaseException as exc:  # handed over to the caller below
                box.append(exc)

        worker = threading.Thread(target=run, name="etcd-discovery-inprocess", daemon=True)
        worker.start()
        worker.join(timeout)
        if not box:
            raise requests.exceptions.ReadTimeout(
                f"in-process etcd discovery fake: read timed out (read timeout={timeout})",
                request=request,
            )
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        return result


def _build_environ(request: PreparedRequest) -> dict[str, Any]:
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
    return make_environ(str(request.method), str(request.url), headers, body or b"", "inprocess")


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
    port = parts.port or (443 if parts.scheme == "https" else 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        # PATH_INFO is the unescaped path, its bytes as a Latin-1 string.
        "PATH_INFO": unquote_to_bytes(parts.path or "/").decode("latin-1"),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": parts.hostname or "",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": parts.netloc,
        "CONTENT_LENGTH": str(len(body)),
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
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        elif key != "HOST":
            environ[f"HTTP_{key}"] = value
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
    return _call_app(app, make_environ(method, url, headers, body, transport))


def _call_app(
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


@contextmanager
def intercept(app: WSGIApplication, hosts: Sequence[str] = DEFAULT_HOSTS) -> Iterator[Interceptor]:
    """Serve ``requests`` calls to ``hosts`` from ``app`` for the ``with`` block."""
    with Interceptor(app, hosts) as interceptor:
        yield interceptor
