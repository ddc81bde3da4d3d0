"""How-to: unittest (docs/howto/unittest.rst): the fake without pytest fixtures."""

# [head]
from __future__ import annotations

import unittest

import requests

from pytest_etcd_discovery import (
    ControllableClock,
    DiscoveryServer,
    EtcdDiscovery,
    fake_discovery,
)

# [head end]


# [decorated]
def new_cluster_token(size: int) -> str:
    """Code under test, with the public URL written into it."""
    reply = requests.get(f"https://discovery.etcd.io/new?size={size}", timeout=5)
    reply.raise_for_status()
    return reply.text


@fake_discovery(frozen=True)
class ProvisioningTest(unittest.TestCase):
    etcd_discovery: EtcdDiscovery  # the class's fake; each test gets its own copy
    shared_token: str

    @classmethod
    def setUpClass(cls) -> None:
        # The fake is on already: provision once for every test of the class.
        cls.shared_token = new_cluster_token(5)

    def test_the_class_token_is_there(self) -> None:
        self.assertEqual(self.etcd_discovery.token(self.shared_token).size, 5)
        self.assertEqual(len(self.etcd_discovery.tokens()), 1)  # nothing from other tests

    def test_token(self) -> None:
        token_url = new_cluster_token(3)

        self.assertTrue(token_url.startswith("https://discovery.etcd.io/"))
        self.assertEqual(self.etcd_discovery.token(token_url).size, 3)

    def test_registration_expires(self) -> None:
        token_url = new_cluster_token(3)
        self.etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.1:7001")

        self.etcd_discovery.clock.advance(7 * 24 * 3600)

        self.assertEqual(self.etcd_discovery.token(token_url).names, [])
        # [decorated end]


# [block]
def test_in_a_with_block() -> None:
    with fake_discovery() as disco:
        token_url = new_cluster_token(5)
        assert disco.token(token_url).size == 5
    # [block end]


# [case]
class BootstrapTest(unittest.TestCase):
    server: DiscoveryServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = DiscoveryServer()  # 127.0.0.1, a free port
        cls.server.start()
        cls.addClassCleanup(cls.server.stop)

    def setUp(self) -> None:
        # A clean slate and a clock of this test's own.
        self.clock = ControllableClock(frozen=True)
        self.server.app.reset(self.server.app.new_store(self.clock))

    def test_token_and_size(self) -> None:
        token_url = requests.get(f"{self.server.url}/new?size=3", timeout=5).text

        reply = requests.get(f"{token_url}/_config/size", timeout=5)

        self.assertEqual(reply.json()["node"]["value"], "3")

    def test_registration_expires(self) -> None:
        token_url = requests.get(f"{self.server.url}/new?size=3", timeout=5).text
        requests.put(f"{token_url}/core-1", data={"value": "x", "ttl": 60}, timeout=5)

        self.clock.advance(60)

        self.assertEqual(requests.get(f"{token_url}/core-1", timeout=5).status_code, 404)
        # [case end]


if __name__ == "__main__":
    unittest.main()
