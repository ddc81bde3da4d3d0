"""Helpers of the v3 discovery tests: a discovery store under test and writes to it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import aetcd

REAL = "real"
FAKE = "fake"


@dataclass
class Endpoint:
    """A discovery store: ``host:port`` of an etcd v3 API, and how to make a token."""

    kind: str
    endpoint: str

    @property
    def host(self) -> str:
        return self.endpoint.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.endpoint.rpartition(":")[2])


def put(endpoint: Endpoint, key: str, value: str) -> None:
    async def go() -> None:
        async with aetcd.Client(host=endpoint.host, port=endpoint.port) as client:
            await client.put(key.encode(), value.encode())

    asyncio.run(go())


def read(endpoint: str, key: str) -> bytes | None:
    """``key``'s value at ``endpoint`` (``host:port``) as a client reads it, or None."""
    host, _, port = endpoint.rpartition(":")

    async def go() -> bytes | None:
        async with aetcd.Client(host=host, port=int(port)) as client:
            got = await client.get(key.encode())
            return None if got is None else bytes(got.value)

    return asyncio.run(go())


def token_with_size(endpoint: Endpoint, size: str | None) -> str:
    """A new token; its size key holds ``size`` (as given, so bad sizes too), or is absent."""
    token = uuid.uuid4().hex
    if size is not None:
        put(endpoint, f"/_etcd/registry/{token}/_config/size", size)
    return token
