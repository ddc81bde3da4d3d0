"""``fake_discovery()`` outside pytest's fixtures: a ``with`` block, a function decorator
(sync and async) and a ``unittest.TestCase`` class decorator, each handing out the
fixture's :class:`EtcdDiscovery`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import unittest
import urllib.request

import pytest
import requests
from dropinutil import require_module, require_tool

from pytest_etcd_discovery import EtcdDiscovery, fake_discovery
from pytest_etcd_discovery._transport import client_cover

PUBLIC = "https://discovery.etcd.io"


def test_with_block_hands_out_the_fixture_object() -> None:
    with fake_discovery(frozen=True) as disco:
        assert isinstance(disco, EtcdDiscovery) and disco.is_fake
        token_url = requests.get(f"{PUBLIC}/new?size=3", timeout=10).text
        with urllib.request.urlopen(f"{token_url}/_config/size", timeout=10) as reply:
            assert b'"value":"3"' in reply.read()
        disco.register(token_url, "m1", "http://10.0.0.1:2380")
        assert disco.token(token_url).names == ["m1"]
        assert [c.path.rsplit("/", 1)[-1] for c in disco.calls] == ["new", "size"]
        assert disco.clock.frozen


def test_the_patches_are_gone_after_the_block() -> None:
    # Outside pytest (a fresh interpreter): no guard, so the block alone patches.
    script = """
import socket
from pytest_etcd_discovery import fake_discovery
from pytest_etcd_discovery._transport import client_cover
original = socket.getaddrinfo
with fake_discovery():
    assert socket.getaddrinfo is not original
    assert "connect" in vars(socket.socket)
assert socket.getaddrinfo is original
assert "connect" not in vars(socket.socket)
assert client_cover.active_cover() is None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_inside_a_run_the_guard_stays_after_the_block() -> None:
    with fake_discovery():
        assert client_cover.active_cover() is not None
    assert client_cover.active_cover() is None
    with pytest.raises(socket.gaierror, match=r"refused to look up 'discovery\.etcd\.io'"):
        socket.getaddrinfo("discovery.etcd.io", 443)
    with pytest.raises(socket.gaierror, match=r"no etcd discovery fake is on here"):
        socket.gethostbyname("discovery.etcd.io")


def test_blocks_nest_and_each_has_its_own_state() -> None:
    with fake_discovery() as outer:
        outer.new_token(3)
        with fake_discovery(profile="discoveryserver") as inner:
            assert inner.profile == "discoveryserver"
            assert inner.tokens() == []
            requests.get(f"{PUBLIC}/new?size=1", timeout=10)
            assert len(inner.calls) == 1
        # The outer fake answers again, with its state.
        requests.get(f"{PUBLIC}/new?size=1", timeout=10)
        assert len(outer.tokens()) == 2


def test_intercept_false_leaves_the_process_alone_but_serves_children() -> None:
    curl = require_tool("curl")
    original = socket.getaddrinfo
    with fake_discovery(intercept=False) as disco:
        assert socket.getaddrinfo is original
        done = subprocess.run(
            [curl, "-sS", "--fail-with-body", f"{PUBLIC}/new?size=3"],
            env=disco.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{PUBLIC}/")


def test_function_decorator_passes_the_handle() -> None:
    seen: list[EtcdDiscovery] = []

    @fake_discovery(frozen=True)
    def provision(size: int, etcd_discovery: EtcdDiscovery) -> str:
        seen.append(etcd_discovery)
        return requests.get(f"{PUBLIC}/new?size={size}", timeout=10).text

    token_url = provision(5)
    assert token_url.startswith(PUBLIC)
    assert seen[0].token(token_url).size == 5  # the store outlives the call for reading

    @fake_discovery()
    def without_the_argument() -> int:
        return requests.get(f"{PUBLIC}/new?size=1", timeout=10).status_code

    assert without_the_argument() == 200


def test_async_function_decorator() -> None:
    httpx = require_module("httpx")

    @fake_discovery()
    async def provision(etcd_discovery: EtcdDiscovery) -> tuple[str, int]:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"{PUBLIC}/new?size=3")
        return reply.text, len(etcd_discovery.calls)

    token_url, calls = asyncio.run(provision())
    assert token_url.startswith(PUBLIC) and calls == 1


def test_testcase_decorator_gives_every_test_its_own_fake() -> None:
    seen: list[EtcdDiscovery] = []

    @fake_discovery()
    class Provisioning(unittest.TestCase):
        def setUp(self) -> None:
            # The fake is already on in setUp.
            self.token_url = requests.get(f"{PUBLIC}/new?size=3", timeout=10).text

        def test_one(self) -> None:
            disco: EtcdDiscovery = self.etcd_discovery  # type: ignore[attr-defined]
            seen.append(disco)
            self.assertEqual(disco.token(self.token_url).size, 3)
            disco.clock.advance(10)

        def test_two(self) -> None:
            disco: EtcdDiscovery = self.etcd_discovery  # type: ignore[attr-defined]
            seen.append(disco)
            self.assertEqual(len(disco.tokens()), 1)

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(Provisioning).run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 2
    assert len({id(d) for d in seen}) == 2
    assert client_cover.active_cover() is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="profile"):
        fake_discovery(profile="nope")
    with pytest.raises(TypeError):
        fake_discovery()(42)  # type: ignore[arg-type]


def test_a_proxy_in_this_process_is_bypassed_for_discovery_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy on loopback's discard port: a request sent to it would fail at once.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.delenv("no_proxy", raising=False)
    with fake_discovery():
        assert os.environ["NO_PROXY"].split(",") == ["internal.example", "discovery.etcd.io"]
        with urllib.request.urlopen(f"{PUBLIC}/new?size=3", timeout=10) as reply:
            assert reply.read().decode().startswith(PUBLIC)
    assert os.environ["NO_PROXY"] == "internal.example"
    assert "no_proxy" not in os.environ


def test_extra_hosts_are_served_over_their_scheme() -> None:
    with fake_discovery(hosts=["http://discovery.internal:8087"]) as disco:
        with urllib.request.urlopen("http://discovery.internal:8087/new?size=2", timeout=10) as r:
            assert r.read().decode().startswith("http://discovery.internal:8087/")
        assert disco.hosts == ("https://discovery.etcd.io", "http://discovery.internal:8087")


def test_a_discovery_host_given_as_an_ip_address() -> None:
    # A self-hosted service named by address: clients that skip the resolver for IP
    # literals (asyncio) are routed to the fake by the connect.
    aiohttp = require_module("aiohttp")

    async def get(url: str) -> str:
        async with aiohttp.ClientSession() as session, session.get(url) as reply:
            return await reply.text()

    # A loopback address nothing listens on: a miss is refused here, never sent out.
    with fake_discovery(hosts=["http://127.0.0.99:8087"]) as disco:
        body = asyncio.run(get("http://127.0.0.99:8087/new?size=3"))
        assert body.startswith("http://127.0.0.99:8087/")
        with urllib.request.urlopen("http://127.0.0.99:8087/health", timeout=10) as reply:
            assert reply.status == 200
        assert [c.path for c in disco.calls] == ["/new", "/health"]


def test_aiohttp_imported_while_the_fake_is_on() -> None:
    # aiohttp's resolver is covered when aiohttp is first imported inside the block (a
    # fresh interpreter, so nothing imported it before).
    require_module("aiohttp")
    script = """
import asyncio, sys
from pytest_etcd_discovery import fake_discovery
with fake_discovery():
    import aiohttp
    async def main():
        async with aiohttp.ClientSession() as s, s.get("https://discovery.etcd.io/new?size=3") as r:
            print(type(s.connector._resolver).__name__, await r.text())
    asyncio.run(main())
print("aiohttp.resolver" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    resolver, url = first.split()
    assert resolver in ("AsyncResolver", "ThreadedResolver")
    assert url.startswith(f"{PUBLIC}/")
    assert second == "True"
