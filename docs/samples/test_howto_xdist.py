"""How-to: pytest-xdist (docs/howto/xdist.rst): every test sees only its own state."""

# [head]
from __future__ import annotations

import pytest
import requests

from pytest_etcd_discovery import EtcdDiscovery

# [head end]


# [isolated]
@pytest.mark.etcd_discovery
@pytest.mark.parametrize("n", range(4))
def test_each_test_starts_empty(etcd_discovery: EtcdDiscovery, n: int) -> None:
    assert etcd_discovery.tokens() == []  # whatever ran before, on any worker

    token_url = requests.get("https://discovery.etcd.io/new?size=2", timeout=5).text
    etcd_discovery.register(token_url, f"m{n}", "http://10.0.0.1:2380")

    assert etcd_discovery.token(token_url).names == [f"m{n}"]
    # [isolated end]
