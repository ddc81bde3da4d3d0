"""What a pytest run asked of the plugin: its options and ini values, read and checked once.

Also the checks that turn a misspelled ini key or marker of ours into an error instead
of a warning (a misspelling would otherwise leave tests without the fake).  Standard
library and pytest only: this loads in every run that has the plugin installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from ._constants import FAULT_MARKER, MARKER, PROFILE_NAMES, forwarded_hosts
from ._urls import URLError, discovery_hosts, listen_address, service_url

__all__ = [
    "INI_ALLOW_REAL",
    "INI_NAMES",
    "MARKER_NAMES",
    "Settings",
    "misspelled",
]

#: Opt-out of failing closed: code outside the fake may reach the real discovery hosts.
INI_ALLOW_REAL = "etcd_discovery_allow_real_service"
#: Every ini value the plugin reads (a near miss of one of these is an error).
INI_NAMES = (
    "etcd_discovery_fake",
    "etcd_discovery_profile",
    "etcd_discovery_url",
    "etcd_discovery_keys_api",
    "etcd_discovery_strict",
    "etcd_discovery_hosts",
    "etcd_discovery_listen_host",
    INI_ALLOW_REAL,
)
MARKER_NAMES = (MARKER, FAULT_MARKER)


def misspelled(name: str, ours: Iterable[str]) -> str | None:
    """The name of ours that ``name`` looks like a misspelling of, if any."""
    ours = tuple(ours)
    if name in ours:
        return None
    import difflib  # only for a name that is not ours, which few runs have

    close = difflib.get_close_matches(name, ours, n=1, cutoff=0.8)
    if close:
        return close[0]
    if name.startswith("etcd_discovery"):
        return difflib.get_close_matches(name, ours, n=1, cutoff=0.0)[0]
    return None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool) or not value:
        # Unset: None, or on older pytest an empty list or string.
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise pytest.UsageError(f"{name}: {value!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class Settings:
    """The plugin's settings for one run (each pytest-xdist worker reads its own)."""

    #: ``--etcd-discovery-fake`` or the ini value: the discovery hosts are served for the
    #: whole run (by the fake, or in real mode forwarded to the configured service).
    intercept_all: bool
    #: ``--etcd-discovery-url`` (or the ini value): a real service to run against.
    real_url: str | None
    profile: str
    #: The discovery base URLs served (in real mode: those forwarded to the service).
    hosts: tuple[str, ...]
    listen_host: str
    keys_api: bool
    strict: bool
    #: Fail closed: refuse the discovery hosts whenever no fake serves them.
    guard: bool

    @property
    def mode(self) -> str:
        return "real" if self.real_url else "fake"

    @classmethod
    def read(cls, getoption: Callable[[str], Any], getini: Callable[[str], Any]) -> Settings:
        """Read the settings; ``getoption`` gives a command-line value or None."""

        def ini(name: str) -> Any:
            try:
                return getini(name)
            except (ValueError, pytest.UsageError) as exc:  # pytest 9.2 raises the latter
                raise pytest.UsageError(f"{name}: {exc} (use true or false)") from None

        def either(name: str) -> Any:
            # The command line beats the ini file, as in pytest's own logging plugin.
            value = getoption(name)
            return ini(name) if value is None else value

        try:
            return cls._read(getoption, ini, either)
        except URLError as exc:
            raise pytest.UsageError(str(exc)) from None

    @classmethod
    def _read(
        cls,
        getoption: Callable[[str], Any],
        getini: Callable[[str], Any],
        either: Callable[[str], Any],
    ) -> Settings:
        cli_fake = _bool(getoption("etcd_discovery_fake"), "--etcd-discovery-fake")
        cli_url = getoption("etcd_discovery_url") or None
        if cli_fake and cli_url:
            raise pytest.UsageError(
                "--etcd-discovery-fake and --etcd-discovery-url exclude each other: "
                "interception serves the fake, the URL selects a real service"
            )
        if cli_url:
            cli_url = service_url(cli_url, "--etcd-discovery-url")
        ini_fake = _bool(getini("etcd_discovery_fake"), "etcd_discovery_fake")
        ini_url = getini("etcd_discovery_url") or None
        if not (cli_fake or cli_url) and ini_fake and ini_url:
            raise pytest.UsageError(
                "ini values etcd_discovery_fake and etcd_discovery_url exclude each other"
            )
        if ini_url and not (cli_fake or cli_url):
            ini_url = service_url(ini_url, "etcd_discovery_url (ini)")
        # A nightly job can add --etcd-discovery-url to a project whose ini turns the
        # fake on: the command line wins.
        real_url = None if cli_fake else (cli_url or ini_url)
        profile = str(either("etcd_discovery_profile") or PROFILE_NAMES[0])
        if profile not in PROFILE_NAMES:
            raise pytest.UsageError(
                f"etcd_discovery_profile: {profile!r} is not one of {', '.join(PROFILE_NAMES)}"
            )
        hosts = discovery_hosts(getini("etcd_discovery_hosts") or (), "etcd_discovery_hosts")
        if real_url:
            # Served by forwarding to the configured service: never its own host name.
            hosts = forwarded_hosts(hosts, real_url)
        return cls(
            intercept_all=cli_fake or ini_fake,
            real_url=real_url,
            profile=profile,
            hosts=hosts,
            listen_host=listen_address(
                str(getini("etcd_discovery_listen_host") or "127.0.0.1"),
                "etcd_discovery_listen_host",
            ),
            keys_api=_bool(either("etcd_discovery_keys_api"), "etcd_discovery_keys_api"),
            strict=_bool(either("etcd_discovery_strict"), "etcd_discovery_strict"),
            guard=not _bool(getini(INI_ALLOW_REAL), INI_ALLOW_REAL),
        )
