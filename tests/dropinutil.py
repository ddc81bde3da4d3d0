"""HTTP clients the drop-in tests drive the same way: one ``fetch`` per client.

Each client is used as code under test would use it, with its defaults (its own SSL
context, its own resolver), against ``https://discovery.etcd.io``.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from realutil import REQUIRE_REAL_ENV, skip_or_fail

#: (status, headers with lower-case names, body)
Reply = tuple[int, dict[str, str], str]
Fetch = Callable[[str, str, "dict[str, str] | None"], Reply]

_TIMEOUT = 30.0


def require_module(name: str) -> Any:
    """Import ``name``; skip without it (fail under ETCD_DISCOVERY_REQUIRE_REAL=1, as CI
    installs the test extra)."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(f"real binaries missing: python package {name} (pip install '.[test]')")
        raise AssertionError("unreachable") from None


def require_tool(name: str) -> str:
    __tracebackhide__ = True
    path = shutil.which(name)
    if path is None:
        skip_or_fail(
            f"real binaries missing: {name} (apt-get install {name}; "
            f"{REQUIRE_REAL_ENV}=1 makes this a failure)"
        )
        raise AssertionError("unreachable")
    return path


def _body(form: dict[str, str] | None) -> bytes | None:
    return urlencode(form).encode() if form is not None else None


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def fetch_requests(method: str, url: str, form: dict[str, str] | None = None) -> Reply:
    reply = requests.request(method, url, data=form, timeout=_TIMEOUT)
    return reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.text


def fetch_urllib(method: str, url: str, form: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=_body(form), method=method)
    if form is not None:
        request.add_header(*next(iter(_FORM.items())))
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as reply:
            return (
                reply.status,
                {k.lower(): v for k, v in reply.headers.items()},
                reply.read().decode(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return (
                error.code,
                {k.lower(): v for k, v in error.headers.items()},
                error.read().decode(),
            )


def fetch_http_client(method: str, url: str, form: dict[str, str] | None = None) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=_TIMEOUT)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=_body(form), headers=_FORM if form is not None else {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read().decode()
    finally:
        conn.close()


def fetch_httpx(method: str, url: str, form: dict[str, str] | None = None) -> Reply:
    httpx = require_module("httpx")
    with httpx.Client(timeout=_TIMEOUT) as client:
        reply = client.request(method, url, data=form)
        return reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.text


def fetch_httpx_async(method: str, url: str, form: dict[str, str] | None = None) -> Reply:
    httpx = require_module("httpx")

    async def run() -> Reply:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            reply = await client.request(method, url, data=form)
            return reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.text

    return asyncio.run(run())


def fetch_aiohttp(
    method: str, url: str, form: dict[str, str] | None = None, resolver: str | None = None
) -> Reply:
    """aiohttp with its default resolver (``AsyncResolver`` when aiodns is installed,
    else ``ThreadedResolver``), or the one named."""
    aiohttp = require_module("aiohttp")
    if resolver == "AsyncResolver":
        require_module("aiodns")

    async def run() -> Reply:
        timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
        connector = (
            aiohttp.TCPConnector(resolver=getattr(aiohttp, resolver)()) if resolver else None
        )
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.request(method, url, data=form) as reply,
        ):
            text = await reply.text()
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, text

    return asyncio.run(run())


#: Every client the drop-in covers in-process, by name.
CLIENTS: dict[str, Fetch] = {
    "requests": fetch_requests,
    "urllib.request": fetch_urllib,
    "http.client": fetch_http_client,
    "httpx.Client": fetch_httpx,
    "httpx.AsyncClient": fetch_httpx_async,
    "aiohttp": fetch_aiohttp,
    "aiohttp+ThreadedResolver": partial(fetch_aiohttp, resolver="ThreadedResolver"),
    "aiohttp+AsyncResolver (aiodns)": partial(fetch_aiohttp, resolver="AsyncResolver"),
}
