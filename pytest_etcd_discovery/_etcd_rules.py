"""The etcd rules several layers share, written once.

What a token looks like, how etcd 3.4 derives a member's key and value, which member
specs the marker and the control API accept, and the keywords a journal filter takes.
The fixture's handle, the plugin, the control API, the routes and the expectations all
use these; none of them keeps a copy.

It imports only the standard library and the package's dependency-free modules
(:mod:`._constants`, :mod:`._errors`), so that ``service/`` never needs ``real/`` for a
member id, and loading it costs a pytest run nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict
from urllib.parse import urlsplit

from ._errors import Error

__all__ = [
    "CALL_FILTER_KEYWORDS",
    "MAX_MEMBERS",
    "MEMBER_KEYS",
    "MEMBER_STYLES",
    "STYLE_V04",
    "STYLE_V34",
    "TOKEN_RE",
    "CallCriteria",
    "MemberSpec",
    "MemberSpecError",
    "default_peer_url",
    "etcd_member_id",
    "etcd_member_value",
    "member_specs",
    "peer_url_list",
    "token_of",
]

#: A token as ``/new`` issues it and the token routes take it: 32 lowercase hex digits.
TOKEN_RE = re.compile(r"[a-f0-9]{32}")


def token_of(token: str) -> str:
    """``token`` itself, or the token of a token URL (its last path segment)."""
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"token: expected a token or a token URL, got {token!r}")
    if "/" in token:
        path = urlsplit(token).path if "://" in token else token
        token = path.rstrip("/").rsplit("/", 1)[-1]
        if not token:
            raise ValueError("token: the URL has no token in its path")
    return token


# -- etcd 3.4's member key and value ------------------------------------------------------


def etcd_member_id(peer_urls: Iterable[str], cluster_token: str) -> str:
    """The member id etcd 3.4 derives for a new member, as the hex string it registers.

    ``membership.NewMember(name, peerURLs, clusterName, nil)``: sort the peer URLs
    (Go ``sort.Strings``), concatenate them with no separator, append the cluster token,
    sha1 the bytes and read the first 8 bytes as a big-endian uint64; ``types.ID.String``
    prints it with ``strconv.FormatUint(id, 16)`` (no zero padding). With ``--discovery``
    the token is the discovery URL exactly as given on the command line.

    >>> etcd_member_id(["http://127.0.0.1:23002"],
    ...                "http://127.0.0.1:28087/8d64c987c9ae2a1964a66a7ff775b701")
    '521f2ae9dc80ca0'
    """
    data = "".join(sorted(peer_urls)) + cluster_token
    digest = hashlib.sha1(data.encode("utf-8")).digest()
    return format(int.from_bytes(digest[:8], "big"), "x")


def etcd_member_value(name: str, peer_urls: Sequence[str]) -> str:
    """The value etcd 3.4 registers: sorted ``name=url`` pairs joined by commas
    (``types.URLsMap.String``).  The key is :func:`etcd_member_id`."""
    return ",".join(sorted(f"{name}={u.strip()}" for u in peer_urls))


def member_name(value: str, member_id: str) -> str:
    """The name in a member key's value (``name=url[,...]``), else ``member_id`` (an
    etcd 0.4 value is a bare peer URL; its key's last segment is the name)."""
    first = value.split(",", 1)[0]
    return first.split("=", 1)[0] if "=" in first else member_id


def peer_url_list(peer_urls: str | Sequence[str]) -> list[str]:
    """``peer_urls`` as etcd reads ``--initial-advertise-peer-urls``: a comma-separated
    string or a list, each entry trimmed (``types.NewURLs``); empty entries of a string
    are dropped."""
    if isinstance(peer_urls, str):
        return [u for u in (p.strip() for p in peer_urls.split(",")) if u]
    return [u.strip() for u in peer_urls]


# -- member specs: the marker's and the control API's ``members`` ------------------------

#: etcd 3.4 registers under its member id, ``name=url`` pairs as the value.
STYLE_V34 = "v3.4"
#: etcd 0.4 registered under its name, its peer URL as the value, with a 7-day TTL.
STYLE_V04 = "v0.4"
MEMBER_STYLES: tuple[str, ...] = (STYLE_V34, STYLE_V04)
#: The keys a member given as a mapping may have.
MEMBER_KEYS: tuple[str, ...] = ("name", "peer_urls", "style")
#: Seeding writes each member: keep one marker's or request's work bounded.
MAX_MEMBERS = 1000
_PEER_SCHEMES = ("http", "https")


class MemberSpecError(Error, ValueError):
    """A ``members`` value that no etcd member could have registered; the message says
    which member and why."""


class MemberSpec(NamedTuple):
    """One member to seed: its name, its (trimmed) peer URLs and its style."""

    name: str
    peer_urls: tuple[str, ...]
    style: str


def default_peer_url(number: int) -> str:
    """The peer URL of the ``number``-th member given without one: ``http://10.0.0.N:2380``
    (the next octets carry on past 255)."""
    return f"http://10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}:2380"


def member_specs(value: Any, *, what: str) -> list[MemberSpec]:
    """Read ``members`` as the marker and the control API take it, checked against what
    a real member could register.

    ``value`` is None (no members), a count N (``member1`` .. ``memberN``), or a list whose
    entries are a name, a ``(name, peer_urls)`` pair or a mapping with ``name``,
    ``peer_urls`` and ``style`` (``"v3.4"``, the default, or ``"v0.4"``).  A member without
    peer URLs gets :func:`default_peer_url` of its position.  The rules:

    - a name is a non-empty string without ``/``; an etcd 3.4 name holds no ``,`` or
      ``=`` either (its value is ``name=url`` pairs, which etcd splits on them), and an
      etcd 0.4 name, which is the member's key, is not ``.``, ``..`` or ``_``-prefixed
      (hidden keys, and the token's own ``_state`` and ``_config``);
    - ``peer_urls`` is one URL or a non-empty list; each, trimmed as etcd trims it, is
      ``http(s)://host:port`` with nothing after the port (``types.NewURLs`` refuses a
      path; a query, fragment or user info has no place in a peer URL either);
    - an etcd 0.4 member has exactly one peer URL;
    - no two members register the same key (same name for 0.4, same peer URLs for 3.4:
      etcd answers the second 412 "Key already exists");
    - at most :data:`MAX_MEMBERS` members.

    :param what: names the value in messages, e.g. ``"members"``.
    :raises MemberSpecError: naming the member and the rule it breaks.
    """
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise MemberSpecError(f"{what}: a count must be >= 0, got {value}")
        _check_count(value, what)
        value = [f"member{i}" for i in range(1, value + 1)]
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise MemberSpecError(
            f"{what}: give a count or a list of names, (name, peer_urls) pairs or "
            f"{{name, peer_urls, style}} mappings, got {value!r}"
        )
    _check_count(len(value), what)
    specs: list[MemberSpec] = []
    for number, entry in enumerate(value, 1):
        spec = _member_spec(entry, number, f"{what}: member {number}")
        twin = _same_key(spec, specs)
        if twin is not None:
            raise MemberSpecError(
                f"{what}: member {number} ({spec.name!r}) would register the same key as "
                f"member {twin + 1} ({specs[twin].name!r}); etcd answers the second 412"
            )
        specs.append(spec)
    return specs


def _check_count(count: int, what: str) -> None:
    if count > MAX_MEMBERS:
        raise MemberSpecError(f"{what}: at most {MAX_MEMBERS} members per token, got {count}")


def _member_spec(entry: Any, number: int, where: str) -> MemberSpec:
    urls: Any = default_peer_url(number)
    style: Any = STYLE_V34
    if isinstance(entry, str):
        name: Any = entry
    elif isinstance(entry, Mapping):
        unknown = sorted(set(entry) - set(MEMBER_KEYS), key=str)
        if unknown:
            raise MemberSpecError(
                f"{where}: unknown keys {unknown}; known: {', '.join(MEMBER_KEYS)}"
            )
        if "name" not in entry:
            raise MemberSpecError(f"{where} has no name")
        name = entry["name"]
        urls = entry.get("peer_urls", urls)
        style = entry.get("style", style)
    elif isinstance(entry, Sequence) and not isinstance(entry, bytes) and len(entry) == 2:
        name, urls = entry
    else:
        raise MemberSpecError(
            f"{where}: cannot read {entry!r}; give a name, a (name, peer_urls) pair or "
            "a {name, peer_urls, style} mapping"
        )
    if not isinstance(name, str):
        raise MemberSpecError(f"{where}: the name must be a string, got {name!r}")
    if not name or "/" in name:
        raise MemberSpecError(f"{where}: the name must be non-empty without '/', got {name!r}")
    where = f"{where} ({name!r})"
    if style not in MEMBER_STYLES:
        raise MemberSpecError(
            f"{where}: style must be {' or '.join(map(repr, MEMBER_STYLES))}, got {style!r}"
        )
    _check_name(name, style, where)
    peer_urls = _peer_urls(urls, where)
    if style == STYLE_V04 and len(peer_urls) != 1:
        raise MemberSpecError(
            f"{where}: an etcd 0.4 member has exactly one peer URL, got {len(peer_urls)}"
        )
    return MemberSpec(name, peer_urls, style)


def _check_name(name: str, style: str, where: str) -> None:
    if style == STYLE_V34 and ("," in name or "=" in name):
        raise MemberSpecError(
            f"{where}: an etcd 3.4 name holds no ',' or '=' (its value is name=url pairs, "
            "which etcd splits on them)"
        )
    if style == STYLE_V04 and (name in (".", "..") or name.startswith("_")):
        raise MemberSpecError(
            f"{where}: an etcd 0.4 name is the member's key, which cannot be '.', '..' or "
            "start with '_' (hidden keys, and the token's own _state and _config)"
        )


def _peer_urls(urls: Any, where: str) -> tuple[str, ...]:
    listed = [urls] if isinstance(urls, str) else urls
    if (
        isinstance(listed, bytes | Mapping)
        or not isinstance(listed, Sequence)
        or not listed
        or not all(isinstance(u, str) for u in listed)
    ):
        raise MemberSpecError(f"{where}: peer_urls must be a URL or a list of URLs, got {urls!r}")
    trimmed = tuple(u.strip() for u in listed)  # etcd trims each one (types.NewURLs)
    for url in trimmed:
        if not _is_peer_url(url):
            raise MemberSpecError(
                f"{where}: peer URL {url!r} is not http(s)://host:port (what etcd's "
                "--initial-advertise-peer-urls takes)"
            )
    return trimmed


def _is_peer_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number or out of range, a bad IPv6 literal
        return False
    return (
        parts.scheme in _PEER_SCHEMES
        and bool(parts.hostname)
        and port is not None
        and "@" not in parts.netloc
        and not (parts.path or parts.query or parts.fragment)
        and "?" not in url
        and "#" not in url
        and url.isascii()
        and not any(c.isspace() for c in url)
    )


def _same_key(spec: MemberSpec, earlier: Sequence[MemberSpec]) -> int | None:
    """The position of an earlier member registering the same key, or None."""
    for position, other in enumerate(earlier):
        if other.style != spec.style:
            continue
        if spec.style == STYLE_V04:
            same = other.name == spec.name
        else:  # the key is the member id: the sorted peer URLs (and the same token)
            same = sorted(other.peer_urls) == sorted(spec.peer_urls)
        if same:
            return position
    return None


# -- the journal's filter keywords --------------------------------------------------------


class CallCriteria(TypedDict, total=False):
    """The criteria a journal filter takes (``calls.filter(...)``, ``assert_requested``,
    ``assert_not_requested``), each optional; see
    :class:`~pytest_etcd_discovery._expectations.CallFilter` for what each means."""

    method: str | Iterable[str] | None
    route: str | None
    path: str | re.Pattern[str] | None
    token: str | None
    status: int | Collection[int] | None
    transport: str | Iterable[str] | None


#: The filter keywords, in the order the docs and messages list them.
CALL_FILTER_KEYWORDS: tuple[str, ...] = tuple(CallCriteria.__annotations__)
