"""How the downstream suite asks for a token, and records what happened.

Each call is one of: ``served`` (a token URL on https://discovery.etcd.io came back),
``refused`` (the plugin's documented error, naming the host and how to turn the fake on),
or ``other: ...`` (anything else, which the runner reports as a failure).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import ssl
import urllib.request
from collections.abc import Callable

PUBLIC = "https://discovery.etcd.io"
NEW = f"{PUBLIC}/new?size=3"
#: The plugin's refusal names the host and the way to turn the fake on.
REFUSAL = ("refused to look up 'discovery.etcd.io'", "--etcd-discovery-fake")
TIMEOUT = 10


def _chain(exc: BaseException) -> str:
    """The text of an exception and every exception behind it."""
    texts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                texts.append(_chain(arg))
        current = current.__cause__ or current.__context__
    return " <- ".join(texts)


def attempt(label: str, fetch: Callable[[], str]) -> str | None:
    """Ask for a token with ``fetch``; record and return the token URL (None if refused)."""
    token_url: str | None = None
    try:
        body = fetch()
    except Exception as exc:  # what the client raised is the finding
        text = _chain(exc)
        outcome = "refused" if all(part in text for part in REFUSAL) else f"other: {text}"
    else:
        if body.startswith(f"{PUBLIC}/"):
            outcome, token_url = "served", body
        else:
            outcome = f"other: unexpected body {body[:200]!r}"
    path = os.environ.get("DOWNSTREAM_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"label": label, "outcome": outcome}) + "\n")
    return token_url


def fetch_requests() -> str:
    import requests

    return requests.get(NEW, timeout=TIMEOUT).text


def fetch_urllib() -> str:
    with urllib.request.urlopen(NEW, timeout=TIMEOUT) as reply:
        return str(reply.read().decode())


def fetch_http_client() -> str:
    conn = http.client.HTTPSConnection(
        "discovery.etcd.io", timeout=TIMEOUT, context=ssl.create_default_context()
    )
    try:
        conn.request("GET", "/new?size=3")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def fetch_httpx() -> str:
    import httpx

    return httpx.get(NEW, timeout=TIMEOUT).text


def fetch_httpx_async() -> str:
    import httpx

    async def run() -> str:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            return (await client.get(NEW)).text

    return asyncio.run(run())


def fetch_aiohttp() -> str:
    import aiohttp

    async def run() -> str:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(NEW) as reply:
            return await reply.text()

    return asyncio.run(run())


CLIENTS: dict[str, Callable[[], str]] = {
    "requests": fetch_requests,
    "urllib": fetch_urllib,
    "http.client": fetch_http_client,
    "httpx": fetch_httpx,
    "httpx async": fetch_httpx_async,
    "aiohttp": fetch_aiohttp,
}
