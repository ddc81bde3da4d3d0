"""Living with a test's own ``responses`` mocks.

A ``responses.RequestsMock`` that a test (or a library under test) starts patches
``requests`` on top of the fake's interception, so a discovery host would get
"Connection refused by Responses" from it.  The fix is ``responses``' own documented
passthru: the discovery hosts are passed through to the real transport, where the
in-process client cover (:mod:`.client_cover`) sends them to the fake over TLS.

- ``responses``' default mock (``@responses.activate``, ``responses.add``) gets the
  passthru automatically while the fake is on;
- a mock of your own needs one call: ``etcd_discovery.add_to(mock)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from .hosts import host_pattern

if TYPE_CHECKING:
    import responses

__all__ = ["DefaultMockPassthru", "add_to", "passthru_patterns"]


def passthru_patterns(hosts: Iterable[str]) -> list[re.Pattern[str]]:
    """One pattern per discovery base URL, anchored on the host and a path boundary
    (so ``https://discovery.etcd.io.example`` does not pass)."""
    return list(_patterns(tuple(hosts)))


@lru_cache(maxsize=64)
def _patterns(hosts: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    # One tuple per set of hosts: the plugin adds and removes them for every test.
    return tuple(host_pattern(h) for h in dict.fromkeys(hosts))


def add_to(mock: responses.RequestsMock, hosts: Iterable[str]) -> None:
    """Let ``mock`` pass the discovery hosts through to the fake (idempotent)."""
    have = {getattr(p, "pattern", p) for p in mock.passthru_prefixes}
    for pattern in _patterns(tuple(hosts)):
        if pattern.pattern not in have:
            mock.add_passthru(pattern)


def remove_from(mock: responses.RequestsMock, hosts: Iterable[str]) -> None:
    """Undo :func:`add_to` (other passthru entries stay)."""
    ours = {p.pattern for p in _patterns(tuple(hosts))}
    mock.passthru_prefixes = tuple(
        p for p in mock.passthru_prefixes if getattr(p, "pattern", None) not in ours
    )


class DefaultMockPassthru:
    """The passthru on ``responses.mock`` (what ``@responses.activate`` starts) while the
    fake is on."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = tuple(hosts)
        self._on = False

    def start(self) -> None:
        import responses

        add_to(responses.mock, self.hosts)
        self._on = True

    def stop(self) -> None:
        if not self._on:
            return
        self._on = False
        import responses

        remove_from(responses.mock, self.hosts)
