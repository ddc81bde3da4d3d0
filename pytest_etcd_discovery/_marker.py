"""The ``etcd_discovery`` and ``etcd_discovery_fault`` markers: read, checked, applied.

A marker argument that cannot be used fails the test at setup with one line naming it,
never later inside the fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from ._constants import FAULT_MARKER, MARKER, PROFILE_NAMES

if TYPE_CHECKING:
    from ._etcd_discovery import EtcdDiscovery
    from ._etcd_rules import MemberSpec
    from ._service.app import DiscoveryApp

__all__ = ["MARKER_KWARGS", "apply_fault_marks", "marker_config", "our_marks", "seed"]

MARKER_KWARGS = frozenset(
    {"size", "profile", "members", "state", "frozen", "keys_api", "strict", "intercept"}
)


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
    if profile is not None and profile not in PROFILE_NAMES:
        bad_marker(f"@{MARKER}(profile={profile!r}): not one of {', '.join(PROFILE_NAMES)}")
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


def _member_specs(members: Any) -> list[MemberSpec]:
    """The marker's ``members``, read by the rules the control API uses too."""
    # Loaded here: a run whose markers seed no members never needs the etcd rules.
    from ._etcd_rules import MemberSpecError, member_specs

    try:
        return member_specs(members, what=f"@{MARKER}(members=...)")
    except MemberSpecError as exc:
        problem = str(exc)
    bad_marker(problem)  # outside the except: the failure shows one line, no chain


def seed(disco: EtcdDiscovery, config: Mapping[str, Any]) -> None:
    """Create the marker's token and put its members and ``_state`` in it."""
    if not ({"size", "members", "state"} & set(config)):
        return
    from ._etcd_rules import STYLE_V04

    token_url = disco.new_token(config.get("size", 3))
    disco.seeded_url = token_url
    for name, urls, style in _member_specs(config.get("members")):
        if style == STYLE_V04:
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
    from ._service.faults import FaultError, FaultPlan, rule_from_marker

    plan = FaultPlan.of(app)
    for mark in marks:
        try:
            plan.add(rule_from_marker(mark.args, mark.kwargs))
        except FaultError as exc:
            bad_marker(str(exc))
    return True
