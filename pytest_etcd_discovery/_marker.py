"""The ``etcd_discovery`` and ``etcd_discovery_fault`` markers: read, checked, applied.

A marker argument that cannot be used fails the test at setup with one line naming it,
never later inside the fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .constants import FAULT_MARKER, MARKER, PROFILE_NAMES

if TYPE_CHECKING:
    from .handle import EtcdDiscovery
    from .service.app import DiscoveryApp

__all__ = ["MARKER_KWARGS", "apply_fault_marks", "marker_config", "our_marks", "seed"]

PROFILES = PROFILE_NAMES
MARKER_KWARGS = frozenset(
    {"size", "profile", "members", "state", "frozen", "keys_api", "strict", "intercept"}
)
_MEMBER_KEYS = frozenset({"name", "peer_urls", "style"})
#: How members registered: as etcd 3.4 does (id key, ``name=url``), or etcd 0.4 (name key).
_STYLES = ("v3.4", "v0.4")


def our_marks(item: pytest.Item) -> tuple[list[pytest.Mark], list[pytest.Mark]]:
    """The test's ``etcd_discovery`` and ``etcd_discovery_fault`` markers, nearest first,
    in one walk up the tree rather than one per marker name."""
    config: list[pytest.Mark] = []
    faults: list[pytest.Mark] = []
    for mark in item.iter_markers():
        if mark.name == MARKER:
            config.append(mark)
        elif mark.name == FAULT_MARKER:
            faults.append(mark)
    return config, faults


def marker_config(markers: list[pytest.Mark]) -> dict[str, Any] | None:
    """Merged ``etcd_discovery`` marker kwargs, the closest marker winning (test > class
    > module), checked, or None when the test has no such marker."""
    if not markers:
        return None
    merged: dict[str, Any] = {}
    for mark in reversed(markers):
        if mark.args:
            bad_marker(f"@{MARKER} takes keyword arguments only, got {mark.args!r}")
        unknown = set(mark.kwargs) - MARKER_KWARGS
        if unknown:
            bad_marker(
                f"@{MARKER} got unknown arguments {sorted(unknown)}; known: {sorted(MARKER_KWARGS)}"
            )
        merged.update(mark.kwargs)
    _check_marker(merged)
    return merged


def _check_marker(config: Mapping[str, Any]) -> None:
    size = config.get("size", 3)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        bad_marker(f"@{MARKER}(size={size!r}): size must be a positive integer")
    profile = config.get("profile")
    if profile is not None and profile not in PROFILES:
        bad_marker(f"@{MARKER}(profile={profile!r}): not one of {', '.join(PROFILES)}")
    for flag in ("frozen", "keys_api", "intercept"):
        value = config.get(flag, False)
        if not isinstance(value, bool):
            bad_marker(f"@{MARKER}({flag}={value!r}): {flag} must be True or False")
    strict = config.get("strict")
    if strict is not None and not isinstance(strict, bool):
        bad_marker(f"@{MARKER}(strict={strict!r}): expected True or False")
    state = config.get("state")
    if state is not None and not isinstance(state, str):
        bad_marker(f"@{MARKER}(state={state!r}): state must be a string such as 'started'")
    _member_specs(config.get("members"))


def bad_marker(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def _member_specs(members: Any) -> list[tuple[str, list[str], str]]:
    """Normalize the marker's ``members``: an int N, or names, (name, peer_urls) pairs or
    dicts with ``name``, ``peer_urls`` and optional ``style`` ("v3.4" or "v0.4")."""
    if members is None:
        return []
    if isinstance(members, int) and not isinstance(members, bool):
        if members < 0:
            bad_marker(f"@{MARKER}(members={members}): a count must be >= 0")
        members = [f"member{i}" for i in range(1, members + 1)]
    if isinstance(members, str | bytes | Mapping) or not isinstance(members, Sequence):
        bad_marker(
            f"@{MARKER}(members={members!r}): give a count or a list of names, "
            "(name, peer_urls) pairs or dicts"
        )
    specs: list[tuple[str, list[str], str]] = []
    for number, entry in enumerate(members, 1):
        default_url = f"http://10.0.0.{number}:2380"
        if isinstance(entry, str):
            specs.append((entry, [default_url], "v3.4"))
        elif isinstance(entry, Mapping):
            unknown = set(entry) - _MEMBER_KEYS
            if unknown or not isinstance(entry.get("name"), str):
                bad_marker(
                    f"@{MARKER}(members=...): member {entry!r} needs a 'name' string "
                    f"(keys: {', '.join(sorted(_MEMBER_KEYS))})"
                )
            style = entry.get("style", "v3.4")
            if style not in _STYLES:
                bad_marker(
                    f"@{MARKER}(members=...): member {entry['name']!r} has style {style!r}; "
                    f"one of {', '.join(_STYLES)}"
                )
            specs.append((entry["name"], _peer_urls(entry.get("peer_urls", default_url)), style))
        elif isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[0], str):
            specs.append((entry[0], _peer_urls(entry[1]), "v3.4"))
        else:
            bad_marker(f"@{MARKER}(members=...): cannot read member {entry!r}")
    return specs


def _peer_urls(urls: Any) -> list[str]:
    listed = [urls] if isinstance(urls, str) else urls
    if (
        not isinstance(listed, Sequence)
        or not listed
        or not all(isinstance(u, str) and u for u in listed)
    ):
        bad_marker(f"@{MARKER}(members=...): peer_urls {urls!r} must be a URL or a list of them")
    return list(listed)


def seed(disco: EtcdDiscovery, config: Mapping[str, Any]) -> None:
    """Create the marker's token and put its members and ``_state`` in it."""
    if not ({"size", "members", "state"} & set(config)):
        return
    token_url = disco.new_token(config.get("size", 3))
    disco.seeded_url = token_url
    for name, urls, style in _member_specs(config.get("members")):
        if style == "v0.4":
            disco.register_v04(token_url, name, urls[0], start=False)
        else:
            # Seeding writes what it is told, even past the size (a reused token).
            disco.register(token_url, name, urls, check_full=False)
    if config.get("state") is not None:
        disco.set_state(token_url, str(config["state"]))


def apply_fault_marks(marks: list[pytest.Mark], app: DiscoveryApp) -> bool:
    """Add one fault rule per ``etcd_discovery_fault`` marker (nearest first)."""
    if not marks:
        return False
    from .service.faults import FaultError, FaultPlan, rule_from_marker

    plan = FaultPlan.of(app)
    for mark in marks:
        try:
            plan.add(rule_from_marker(mark.args, mark.kwargs))
        except FaultError as exc:
            bad_marker(str(exc))
    return True
