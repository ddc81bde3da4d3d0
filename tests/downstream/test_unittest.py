"""unittest classes: one plain, one under ``@fake_discovery`` (which covers setUpClass)."""

from __future__ import annotations

import unittest

from record import attempt, fetch_http_client, fetch_urllib

from pytest_etcd_discovery import fake_discovery


class PlainProvisioning(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.token_url = attempt("plain setUpClass", fetch_urllib)

    def test_runs(self) -> None:
        pass


@fake_discovery
class FakedProvisioning(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.token_url = attempt("@fake_discovery setUpClass", fetch_http_client)

    def test_sees_the_class_token(self) -> None:
        # What setUpClass made is there in every test.
        if self.token_url is not None:
            self.assertEqual(self.etcd_discovery.token(self.token_url).size, 3)

    @classmethod
    def tearDownClass(cls) -> None:
        attempt("@fake_discovery tearDownClass", fetch_urllib)
