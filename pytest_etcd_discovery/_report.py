"""The "etcd discovery" section a failing test's report gets.

It answers "why did this bootstrap test fail?" without a debugger: every token with its
size, ``_state``, members (oldest first) and TTLs left, each under the URL it was handed
out at (the one the code under test used), then the last requests the service answered,
from both transports.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._etcd_discovery import EtcdDiscovery
    from ._model import TokenView
    from ._service.journal import Call
    from ._v3face import V3Discovery

__all__ = ["SECTION_TITLE", "render", "render_call", "render_token", "token_urls"]

SECTION_TITLE = "etcd discovery"

#: How many journal entries the section shows (the newest).
LAST_CALLS = 20


def _fmt_time(seconds: float) -> str:
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_token(view: TokenView) -> list[str]:
    """A token's lines: size, ``_state``, index, then each member, oldest first."""
    size = "?" if view.size is None else str(view.size)
    state = view.state if view.state is not None else "-"
    lines = [
        f"  {view.url}  size={size}  members={len(view.members)}/{size}  "
        f"_state={state}  index={view.index}"
    ]
    for number, member in enumerate(view.members, 1):
        ttl = "no ttl" if member.ttl is None else f"ttl {member.ttl}s left"
        lines.append(
            f"    {number}. {member.name:<12} id={member.id}  createdIndex={member.created_index}"
            f"  {ttl}  {','.join(member.peer_urls)}"
        )
    if not view.members:
        lines.append("    (no members registered)")
    return lines


def render_call(call: Call) -> str:
    """One journal entry as a report line (indented by two spaces)."""
    target = f"{call.path}?{call.query}" if call.query else call.path
    status = "pending" if call.status is None else call.status
    if call.status is not None and call.streaming:
        status = f"{status} (still streaming)"  # a long poll whose body has not ended
    line = f"  {call.transport:<9} {call.method:<6} {target} -> {status}"
    # An injected fault explains an odd status at a glance.
    return f"{line}  [fault: {call.fault}]" if call.fault else line


def token_urls(disco: EtcdDiscovery) -> list[str]:
    """The tokens to show, each as the URL that ``/new`` handed out for it: through
    interception ``https://discovery.etcd.io/<token>``, on the live server its URL, from
    :meth:`~EtcdDiscovery.new_token` what it returned.  Against a real service, the
    tokens the handle made (it cannot list the others)."""
    from ._etcd_rules import token_of

    if not disco.is_fake:
        return list(disco.created_tokens)
    handed = {token_of(url): url for url in disco.created_tokens}
    for call in disco.calls:
        if call.created_url is not None:
            handed.setdefault(token_of(call.created_url), call.created_url)
    # A token made another way (the control API, a restored snapshot, an earlier phase
    # of a shared fake) shows on the live server.
    return [handed.get(token) or disco.token_url(token) for token in disco.tokens()]


def render(disco: EtcdDiscovery) -> str:
    """Describe ``disco``'s state for a failure report; never raises."""
    lines = [f"mode: {disco.mode}  profile: {disco.profile}  live url: {disco.url}"]
    try:
        lines.extend(_render_body(disco))
    except Exception as exc:  # a report must never hide the test's own failure
        lines.append(f"(could not read the discovery state: {type(exc).__name__}: {exc})")
    return "\n".join(lines)


def _render_body(disco: EtcdDiscovery) -> list[str]:
    lines: list[str] = []
    if disco.is_fake:
        clock = disco.clock
        pace = "frozen" if clock.frozen else "running"
        lines.append(f"clock: {_fmt_time(clock.now())} ({pace})")
        hosts = ", ".join(disco.hosts)
        lines.append(f"interception: {'on' if disco.intercepting else 'off'} ({hosts})")
    urls = token_urls(disco)
    lines.append(f"tokens ({len(urls)}):")
    for url in urls:
        try:
            lines.extend(render_token(disco.token(url)))
        except Exception as exc:
            lines.append(f"  {url}: unreadable ({exc})")
    if not urls:
        lines.append("  (none)")
    if disco.is_fake:
        calls = disco.calls
        shown = calls[-LAST_CALLS:]
        lines.append(f"last requests ({len(shown)} of {len(calls)}):")
        lines.extend(render_call(c) for c in shown)
        if not calls:
            lines.append("  (none)")
    if disco._v3 is not None:  # only when the test started the v3 endpoint
        lines.extend(_render_v3(disco._v3))
    return lines


def _render_v3(v3: V3Discovery) -> list[str]:
    """The v3 endpoint: the tokens the helpers made, by create revision, and its last
    calls."""
    lines = [f"etcd v3 endpoint: {v3.endpoints}  tokens ({len(v3.created_tokens)}):"]
    for token in v3.created_tokens:
        view = v3.token(token)
        size = "?" if view.size is None else str(view.size)
        lines.append(f"  {token}  size={size}  members={len(view.members)}/{size}")
        for number, member in enumerate(view.members, 1):
            lines.append(
                f"    {number}. {member.name:<12} id={member.id}  "
                f"create_revision={member.create_revision}  {','.join(member.peer_urls)}"
            )
    calls = v3.calls
    shown = calls[-LAST_CALLS:]
    lines.append(f"last v3 calls ({len(shown)} of {len(calls)}):")
    for call in shown:
        status = "OK" if call.error is None else f"{call.error[0]}: {call.error[1]}"
        line = f"  {call.service}/{call.method} -> {status}"
        lines.append(f"{line}  [fault: {call.fault}]" if call.fault else line)
    if not calls:
        lines.append("  (none)")
    return lines
