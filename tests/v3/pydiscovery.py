"""etcd 3.6's v3 discovery steps in Python, over aetcd (an etcd v3 API client from PyPI).

The same steps as the Go client in ``tests/realclients/v3discovery`` (see its doc): read
the size key, read the ``members/`` prefix, refuse when ``size`` others come first, put
our own key, read again, watch from the read's revision + 1 until ``size`` members are
in; members sort by create revision and the first ``size`` win.  Members join one after
another (member ``i`` once member ``i - 1`` has put its key), so the result lines are the
same on every run and comparable across servers.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field

import aetcd

REGISTRY = "/_etcd/registry"


class DiscoveryError(Exception):
    """One of etcd's ``discovery: ...`` errors."""


SIZE_NOT_FOUND = "discovery: size key not found"
SIZE_BAD = "discovery: size key is bad"
FULL = "discovery: cluster is full"


def member_id(peer_urls: list[str], cluster_token: str) -> int:
    """etcd's id of a new member: SHA-1 of its sorted peer URLs and the cluster token
    (etcd 3.6 with v3 discovery: the discovery token)."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + cluster_token).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass
class _Cluster:
    prefix: str
    members: list[tuple[int, str, str]] = field(default_factory=list)  # (rev, key, value)

    def add(self, key: str, value: str, create_revision: int) -> None:
        # etcd ignores foreign keys, values without "=" (deletes) and duplicates.
        key, value = key.strip(), value.strip()
        if not key.startswith(self.prefix) or "=" not in value:
            return
        if any(k == key for _, k, _ in self.members):
            return
        self.members.append((create_revision, key, value))
        self.members.sort(key=lambda m: m[0])

    def initial_cluster(self, size: int) -> str:
        return ",".join(value for _, _, value in self.members[:size])


class Discovery:
    """One member's (or, with ``member_id=0``, a proxy's) discovery run."""

    def __init__(self, client: aetcd.Client, token: str, member: int) -> None:
        self.client = client
        self.token = token
        self.prefix = f"{REGISTRY}/{token}/members"
        self.key = f"{self.prefix}/{member:x}"

    async def _check(self) -> tuple[_Cluster, int, int, bool]:
        got = await self.client.get(f"{REGISTRY}/{self.token}/_config/size".encode())
        if got is None:
            raise DiscoveryError(SIZE_NOT_FOUND)
        # Go's strconv.ParseInt(s, 10, 0): an optional sign and ASCII digits, nothing
        # else (Python's int() would also take spaces, underscores and other digits).
        text = got.value.decode(errors="replace")
        if re.fullmatch(r"[+-]?[0-9]+", text) is None or int(text) <= 0:
            raise DiscoveryError(SIZE_BAD)
        size = int(text)
        found = await self.client.get_prefix(self.prefix.encode())
        cluster = _Cluster(self.prefix)
        for kv in found:
            cluster.add(kv.key.decode(), kv.value.decode(), kv.create_revision)
        # Full when `size` members other than us come first.
        keys = [k for _, k, _ in cluster.members]
        ahead = keys.index(self.key) if self.key in keys else len(keys)
        return cluster, size, found.header.revision, ahead >= size

    async def _wait(self, cluster: _Cluster, size: int, revision: int) -> None:
        while len(cluster.members) < size:
            watch = await self.client.watch_prefix(
                self.prefix.encode(), start_revision=revision + 1
            )
            try:
                async for event in watch:
                    cluster.add(
                        event.kv.key.decode(), event.kv.value.decode(), event.kv.create_revision
                    )
                    if len(cluster.members) >= size:
                        break
            finally:
                await watch.cancel()

    async def join(self, value: str, registered: asyncio.Event) -> str:
        try:
            _, _, _, full = await self._check()
            if full:
                raise DiscoveryError(FULL)
            await self.client.put(self.key.encode(), value.encode())
        finally:
            registered.set()
        cluster, size, revision, full = await self._check()
        if full:
            raise DiscoveryError(FULL)
        await self._wait(cluster, size, revision)
        return cluster.initial_cluster(size)

    async def get(self) -> str:
        cluster, size, revision, full = await self._check()
        if not full:
            await self._wait(cluster, size, revision)
        return cluster.initial_cluster(size)


async def _bootstrap(
    host: str, port: int, token: str, members: int, peer_port: int, proxy: bool
) -> list[str]:
    previous = asyncio.Event()
    previous.set()
    tasks = []

    async def one(name: str, peer: str, after: asyncio.Event, registered: asyncio.Event) -> str:
        await after.wait()
        async with aetcd.Client(host=host, port=port) as client:
            try:
                cs = await Discovery(client, token, member_id([peer], token)).join(
                    f"{name}={peer}", registered
                )
            except DiscoveryError as err:
                return f"{name} error {err}"
            return f"{name} ok {cs}"

    for i in range(members):
        registered = asyncio.Event()
        peer = f"http://127.0.0.1:{peer_port + i}"
        tasks.append(asyncio.create_task(one(f"m{i}", peer, previous, registered)))
        previous = registered
    proxy_line = ""
    if proxy:
        # The read-only member starts once the last member has put its key.
        await previous.wait()
        async with aetcd.Client(host=host, port=port) as client:
            try:
                proxy_line = f"proxy ok {await Discovery(client, token, 0).get()}"
            except DiscoveryError as err:
                proxy_line = f"proxy error {err}"
    lines = list(await asyncio.gather(*tasks))
    return [*lines, proxy_line] if proxy else lines


def bootstrap(
    endpoint: str,
    token: str,
    members: int,
    *,
    peer_port: int = 12380,
    proxy: bool = False,
    timeout: float = 60,
) -> list[str]:
    """Run ``members`` simulated members (and a proxy); one result line each, in order.

    The lines read as the Go client's: ``m0 ok m0=http://...,...`` or
    ``m3 error discovery: cluster is full``.
    """
    host, _, port = endpoint.rpartition(":")
    return asyncio.run(
        asyncio.wait_for(_bootstrap(host, int(port), token, members, peer_port, proxy), timeout)
    )
