"""Constants and helpers the tests share (the fixtures built on them live in conftest.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

#: Where frozen test clocks start: 2023-11-14T22:13:20Z, exactly representable in ns.
START = 1_700_000_000

#: A generous bound for anything that should happen at once.
WAIT = 10.0

#: A token as the public service issues it: 32 lowercase hex digits. The tests' own
#: copy, on purpose: what the fake hands out is checked against the service's format,
#: not against the package's constant.
TOKEN_RE = re.compile(r"[a-f0-9]{32}")

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    what: str | Callable[[], str],
    *,
    timeout: float = WAIT,
    interval: float = 0.01,
) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    For states nothing signals (a thread count, a log line, a socket, another process);
    where an event or ``wait_for_watchers`` exists, wait on that instead. After
    ``timeout`` seconds it raises ``AssertionError`` saying what never happened: ``what``
    (called then, when it is a function, so the message can show the last state).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting until {said}")
        time.sleep(interval)


class Control:
    """``/_fake/`` of one fake: JSON in, (status, JSON) out."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def call(
        self, method: str, path: str, body: Any = None, *, raw: str | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        reply = self.session.request(method, f"{self.url}/_fake/{path}", data=data, timeout=WAIT)
        assert reply.headers["Content-Type"] == "application/json", reply.text
        return reply.status_code, reply.json()

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.call(method, path, body)
        assert status in (200, 201), data
        return data
