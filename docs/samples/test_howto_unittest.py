"""How-to: unittest (docs/howto/unittest.rst): the fake without pytest fixtures."""

from __future__ import annotations

import unittest

import requests

from pytest_etcd_discovery import ControllableClock, DiscoveryServer, Store


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
        self.server.app.reset(Store(self.clock))

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
