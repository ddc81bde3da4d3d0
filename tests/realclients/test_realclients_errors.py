"""Broken discovery URLs: a real etcd 3.4 member fails with the same words on fake and real.

etcd turns the service's answer into its error text (v2discovery.checkCluster): an etcd
JSON error passes through raw (``100: Key not found (<cause>) [<index>]``, because the
check for ErrSizeNotFound compares against the wrong type), a non-JSON error body becomes
``discovery: bad discovery endpoint``, a non-integer size ``discovery: size key is bad``.
All exit with code 1 after ``failed to bootstrap; discovery token was already used``.
"""

from __future__ import annotations

import re
import secrets

import pytest
import requests
from realstack import EXIT_TIMEOUT, FAKE, FAKE_DS, REAL, ClusterFactory, Stack, new_custom_id

# The zap line etcdmain prints for every discovery error other than a duplicate id/name.
_BOOTSTRAP_FAILED = re.compile(
    r'"msg":"failed to bootstrap; discovery token was already used".*?"error":"(?P<error>[^"]*)"'
)


def bootstrap_error(stack: Stack, make_cluster: ClusterFactory, discovery_url: str) -> str:
    """Start one member on ``discovery_url``; return its error, ids and indexes normalised."""
    cluster = make_cluster(discovery_url, 1)
    cluster.start()
    member = cluster.members[0]
    code = member.wait_exit(EXIT_TIMEOUT)
    assert code == 1, member.describe()
    found = _BOOTSTRAP_FAILED.search(member.output)
    assert found is not None, member.describe()
    token = discovery_url.rsplit("/", 1)[1]
    return re.sub(r"\[\d+\]\)$", "[N])", found["error"].replace(token, "T"))


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_never_issued_token_fails_with_key_not_found(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    url = f"{stack.url}/{secrets.token_hex(16)}"
    error = bootstrap_error(stack, make_cluster, url)
    assert error == "failed to join discovery cluster (100: Key not found (/_etcd/registry/T) [N])"


@pytest.mark.parametrize("stack", [FAKE_DS], indirect=True)
def test_never_issued_token_on_discoveryserver_is_a_bad_endpoint(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    """Its 400 ``unable to GET token`` is text/plain: etcd's client cannot parse it."""
    url = f"{stack.url}/{secrets.token_hex(16)}"
    error = bootstrap_error(stack, make_cluster, url)
    assert error == "failed to join discovery cluster (discovery: bad discovery endpoint)"


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_custom_url_without_size_key_fails_with_key_not_found(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    assert stack.keys_url is not None
    custom_id = new_custom_id()
    base = f"{stack.keys_url}/discovery/{custom_id}"
    # The directory exists, its _config does not: the cause names the first missing part.
    assert requests.put(base, params={"dir": "true"}, timeout=5).status_code == 201
    error = bootstrap_error(stack, make_cluster, base)
    assert (
        error == "failed to join discovery cluster (100: Key not found (/discovery/T/_config) [N])"
    )


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_custom_url_with_non_integer_size_fails(stack: Stack, make_cluster: ClusterFactory) -> None:
    assert stack.keys_url is not None
    base = f"{stack.keys_url}/discovery/{new_custom_id()}"
    put = requests.put(f"{base}/_config/size", data={"value": "three"}, timeout=5)
    assert put.status_code == 201, put.text
    error = bootstrap_error(stack, make_cluster, base)
    assert error == "failed to join discovery cluster (discovery: size key is bad)"


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_negative_size_token_fails_with_bad_size_key(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    """``/new?size=-1`` is accepted by the service; etcd's ParseUint rejects the value."""
    error = bootstrap_error(stack, make_cluster, stack.new_token_url(-1))
    assert error == "failed to join discovery cluster (discovery: size key is bad)"


@pytest.mark.parametrize("stack", [FAKE, REAL], indirect=True)
def test_size_zero_token_crashes_etcd_after_registering(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    """Size 0 is never "full" (size-1 wraps around), so the member registers, then
    discovery returns an empty cluster and etcd 3.4 dies on a nil pointer (exit 2)."""
    url = stack.new_token_url(0)
    cluster = make_cluster(url, 1)
    cluster.start()
    member = cluster.members[0]
    assert member.wait_exit(EXIT_TIMEOUT) == 2, member.describe()
    assert "invalid memory address or nil pointer dereference" in member.output
    assert stack.registered(url) == {member.member_id: f"{member.name}={member.peer_url}"}
