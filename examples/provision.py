"""A small cluster-provisioning module, the kind of code the plugin is meant to test.

It follows the classic CoreOS workflow: ask ``https://discovery.etcd.io/new`` for a token
sized for the cluster, render a cloud-config carrying it, wait until every machine has
registered, and, when a cluster has to be rebuilt on the same token, reset the token by
deleting ``_state`` and the registrations of machines that are gone.

Nothing here knows about the fake: it talks to the real public URL with ``requests``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import requests

DISCOVERY_URL = "https://discovery.etcd.io"

#: Bound for one request that is not a long poll (etcd itself gives up after 5 s).
REQUEST_TIMEOUT = 5.0


class ProvisioningError(RuntimeError):
    """The discovery service answered something the workflow cannot use."""


@dataclass(frozen=True)
class Registration:
    """One machine registered under a token."""

    key: str
    value: str
    created_index: int
    ttl: int | None

    @property
    def name(self) -> str:
        # etcd 3.x registers "name=peer_url[,...]" under its member id; etcd 0.4 used the
        # name as the key and the peer URL as the value.
        first = self.value.split(",", 1)[0]
        return first.split("=", 1)[0] if "=" in first else self.key


def new_token(size: int, *, discovery_url: str = DISCOVERY_URL) -> str:
    """Get a discovery token URL for a cluster of ``size`` members."""
    reply = requests.get(f"{discovery_url}/new", params={"size": size}, timeout=REQUEST_TIMEOUT)
    if reply.status_code != 200:
        raise ProvisioningError(f"/new?size={size}: {reply.status_code} {reply.text.strip()}")
    token_url = reply.text.strip()
    if not token_url.startswith(discovery_url + "/"):
        raise ProvisioningError(f"/new handed out a foreign URL: {token_url!r}")
    return token_url


CLOUD_CONFIG = """\
#cloud-config
coreos:
  etcd:
    name: {name}
    discovery: {token_url}
    addr: $private_ipv4:4001
    peer-addr: $private_ipv4:7001
  units:
    - name: etcd.service
      command: start
"""


def render_cloud_config(token_url: str, name: str = "$hostname") -> str:
    """The cloud-config every machine of the cluster boots with."""
    if "\n" in token_url or not token_url.startswith(("http://", "https://")):
        raise ValueError(f"not a discovery URL: {token_url!r}")
    return CLOUD_CONFIG.format(name=name, token_url=token_url)


def registrations(token_url: str) -> tuple[list[Registration], int]:
    """Machines registered under the token, oldest first, and the store index."""
    reply = requests.get(token_url, timeout=REQUEST_TIMEOUT)
    if reply.status_code != 200:
        raise ProvisioningError(f"GET {token_url}: {reply.status_code} {reply.text.strip()}")
    nodes = reply.json().get("node", {}).get("nodes", []) or []
    found = [
        Registration(
            key=n["key"].rsplit("/", 1)[-1],
            value=n.get("value", ""),
            created_index=int(n["createdIndex"]),
            ttl=n.get("ttl"),
        )
        for n in nodes
        if not n.get("dir")
    ]
    found.sort(key=lambda r: r.created_index)
    return found, int(reply.headers.get("X-Etcd-Index", "0"))


def wait_for_members(
    token_url: str,
    size: int,
    *,
    timeout: float = 60.0,
    poll_timeout: float = 10.0,
) -> list[Registration]:
    """Block until ``size`` machines registered under the token, and return them.

    Uses the service's long poll (``?wait=true&recursive=true&waitIndex=N``) rather than
    polling in a loop; each poll is bounded by ``poll_timeout`` and the whole wait by
    ``timeout`` (a :class:`TimeoutError` says how many machines showed up).
    """
    deadline = time.monotonic() + timeout
    members, index = registrations(token_url)
    while len(members) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"{len(members)} of {size} members registered at {token_url} "
                f"after {timeout:g} s: {[m.name for m in members]}"
            )
        try:
            reply = requests.get(
                token_url,
                params={"wait": "true", "recursive": "true", "waitIndex": index + 1},
                timeout=min(poll_timeout, left),
            )
        except requests.exceptions.ReadTimeout:
            pass  # nothing happened within this poll; look again below
        else:
            if reply.status_code >= 500:
                raise ProvisioningError(f"watch {token_url}: {reply.status_code}")
        # Re-read the full list rather than trusting single events: expiries and deletes
        # also arrive as events, and the index moves on from the listing.
        members, index = registrations(token_url)
    return members[:size]


def reset_token(token_url: str, live: Iterable[str] = ()) -> list[str]:
    """Make a token reusable after its cluster went away: delete ``_state`` and every
    registration whose name is not in ``live``.  Returns the keys deleted.

    Without this, a machine booting on the old token finds "an initialized cluster but no
    reachable peers" (etcd 0.4) or a full cluster (etcd 3.x).
    """
    keep = set(live)
    deleted: list[str] = []
    reply = requests.delete(f"{token_url}/_state", timeout=REQUEST_TIMEOUT)
    if reply.status_code == 200:
        deleted.append("_state")
    elif reply.status_code != 404:
        raise ProvisioningError(f"DELETE _state: {reply.status_code} {reply.text.strip()}")
    members, _ = registrations(token_url)
    for member in members:
        if member.name in keep:
            continue
        reply = requests.delete(f"{token_url}/{member.key}", timeout=REQUEST_TIMEOUT)
        if reply.status_code not in (200, 404):  # 404: it expired meanwhile
            raise ProvisioningError(f"DELETE {member.key}: {reply.status_code}")
        if reply.status_code == 200:
            deleted.append(member.key)
    return deleted
