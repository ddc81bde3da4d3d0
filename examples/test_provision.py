"""The provisioning workflow in ``provision.py``, tested against the fake.

Run with ``pytest examples/`` (or ``pytest --etcd-discovery-fake examples/``, which also
serves code outside the tests): ``provision.py`` talks to ``https://discovery.etcd.io``
with plain ``requests``, and every test that asks for ``etcd_discovery`` has those calls
served in-process, so nothing leaves the machine.
"""

from __future__ import annotations

import threading

import provision
import pytest

from pytest_etcd_discovery import EtcdDiscovery

PUBLIC = provision.DISCOVERY_URL
WEEK = 7 * 86400


def test_new_token_is_a_public_url_sized_for_the_cluster(etcd_discovery: EtcdDiscovery) -> None:
    token_url = provision.new_token(5)

    assert token_url.startswith("https://discovery.etcd.io/")
    assert len(token_url.rsplit("/", 1)[-1]) == 32
    view = etcd_discovery.token(token_url)
    assert view.size == 5
    assert view.members == ()
    etcd_discovery.assert_requested(1, method="GET", route="new", status=200)
    etcd_discovery.assert_requested(1)  # and nothing else


def test_cloud_config_carries_the_token(etcd_discovery: EtcdDiscovery) -> None:
    token_url = provision.new_token(3)

    config = provision.render_cloud_config(token_url, name="core-1")

    assert config.startswith("#cloud-config\n")
    assert f"    discovery: {token_url}\n" in config
    assert "    name: core-1\n" in config
    with pytest.raises(ValueError):
        provision.render_cloud_config(token_url + "\nevil: true")


def test_wait_returns_once_every_member_registered(etcd_discovery: EtcdDiscovery) -> None:
    token_url = provision.new_token(3)
    etcd_discovery.register(token_url, "infra0", "http://10.0.0.1:2380")
    etcd_discovery.register(token_url, "infra1", "http://10.0.0.2:2380")
    result: list[list[provision.Registration]] = []
    waiter = threading.Thread(
        target=lambda: result.append(provision.wait_for_members(token_url, 3, timeout=10)),
        daemon=True,
    )
    waiter.start()

    etcd_discovery.register(token_url, "infra2", "http://10.0.0.3:2380")
    waiter.join(timeout=10)

    assert not waiter.is_alive()
    assert [m.name for m in result[0]] == ["infra0", "infra1", "infra2"]
    etcd_discovery.assert_registered(token_url, ["infra0", "infra1", "infra2"])
    # It read the token, never wrote to it.
    etcd_discovery.assert_requested(method="GET", token=token_url)
    etcd_discovery.assert_not_requested(method=["PUT", "DELETE"])


@pytest.mark.etcd_discovery(profile="etcd-v2")  # a long poll is journaled at once
def test_wait_gives_up_after_its_timeout(etcd_discovery: EtcdDiscovery) -> None:
    token_url = provision.new_token(3)
    etcd_discovery.register(token_url, "infra0", "http://10.0.0.1:2380")

    with pytest.raises(TimeoutError, match=r"1 of 3 members registered"):
        provision.wait_for_members(token_url, 3, timeout=1.0, poll_timeout=0.2)
    # It long-polled instead of hammering the service.
    etcd_discovery.assert_requested(route="watch", token=token_url)


@pytest.mark.etcd_discovery(profile="etcd-v2")  # today's service ignores ttl
def test_etcd04_registrations_expire_after_a_week(etcd_discovery: EtcdDiscovery) -> None:
    token_url = provision.new_token(3)
    for number in range(3):
        etcd_discovery.register_v04(token_url, f"core-{number}", f"http://10.0.0.{number}:7001")
    members, _ = provision.registrations(token_url)
    assert [m.ttl for m in members] == [WEEK] * 3

    etcd_discovery.clock.advance(WEEK)

    assert provision.registrations(token_url)[0] == []
    assert etcd_discovery.token(token_url).state == "started"  # _state never expires


def public(etcd_discovery: EtcdDiscovery, token_url: str) -> str:
    """The same token as code under test sees it, on https://discovery.etcd.io."""
    return etcd_discovery.token_url(token_url.rsplit("/", 1)[-1], PUBLIC)


@pytest.mark.etcd_discovery(
    profile="etcd-v2", size=3, members=["infra0", "infra1", "infra2"], state="started"
)
def test_reset_deletes_state_and_stale_members(
    etcd_discovery: EtcdDiscovery, etcd_discovery_url: str
) -> None:
    token_url = public(etcd_discovery, etcd_discovery_url)

    deleted = provision.reset_token(token_url, live=["infra0"])

    assert len(deleted) == 3 and deleted[0] == "_state"
    etcd_discovery.assert_requested(3, method="DELETE", token=token_url, status=200)
    etcd_discovery.assert_registered(token_url, ["infra0"])
    assert etcd_discovery.token(token_url).state is None


@pytest.mark.etcd_discovery(profile="discoveryserver", size=3, members=2, state="started")
def test_reset_is_refused_by_todays_public_service(
    etcd_discovery: EtcdDiscovery, etcd_discovery_url: str
) -> None:
    # discovery.etcd.io today (etcd-io/discoveryserver) cannot delete single keys.
    token_url = public(etcd_discovery, etcd_discovery_url)

    with pytest.raises(provision.ProvisioningError, match="DELETE _state: 400"):
        provision.reset_token(token_url)
    # It stopped at the first refusal.
    etcd_discovery.assert_requested(1, method="DELETE", path="/*/_state", status=400)
    etcd_discovery.assert_registered(token_url, ["member1", "member2"], state="started")
