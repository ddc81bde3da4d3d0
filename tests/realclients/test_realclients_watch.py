"""What a waiting member learns from the service's recursive watch, fake vs real.

etcd 3.4's waitNodes counts *every* event its ``GET /T?recursive=true&wait=true`` returns
as one more peer, so what the watch reports matters. A watch blocked in the store is not
notified of hidden keys below it (``_state``, ``_config``: etcd v2store watcherHub skips
them; the discoveryserver's v2v3 store drops keys with ``/_`` below the token). A watch
answered from history is different in the etcd-v2 stack: v2store's history scan has no
hidden check, so a ``_state`` write landing between etcd's listing and its watch request
*is* counted as a peer (seen once while writing this test, on fake and in the source).
The tests therefore wait until the member's watch is blocked before writing.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from realstack import EXIT_TIMEOUT, FAKE, FAKE_DS, REAL, ClusterFactory, Stack, token_of

# Logged by waitNodes right before it blocks in the watch (zap wording).
WAITING = re.compile(r"found peers from discovery server; waiting for more")
FOUND_ALL = re.compile(r"found all needed peers from discovery server")


def found_peers(output: str) -> list[str]:
    """The ``peer`` field of every "found peer from discovery server" line, in order."""
    peers = []
    for line in output.splitlines():
        if '"msg":"found peer from discovery server"' in line:
            peers.append(json.loads(line)["peer"])
    return peers


@pytest.mark.parametrize("stack", [FAKE, FAKE_DS, REAL], indirect=True)
def test_waiting_member_counts_visible_keys_not_hidden_ones(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    url = stack.new_token_url(2)
    cluster = make_cluster(url, 2)
    member = cluster.members[0]
    watching = stack.watchers()
    member.start()  # alone: it registers, then waits for one more
    member.wait_for_log(WAITING, EXIT_TIMEOUT)
    # Its recursive watch must be blocked in the store before we write: a write that
    # lands first is replayed from history, and a history replay *does* include hidden
    # keys (etcd v2store scan has no hidden check; only live notification skips them).
    stack.wait_for_watchers(watching + 1)

    # A hidden key first: if it woke the watch, "_state" would be taken as the 2nd peer.
    hidden = requests.put(f"{url}/_state", data={"value": "started"}, timeout=5)
    assert hidden.ok, hidden.text
    stray = requests.put(f"{url}/stray", data={"value": "stray=http://127.0.0.1:9"}, timeout=5)
    assert stray.ok, stray.text
    member.wait_for_log(FOUND_ALL, EXIT_TIMEOUT)

    assert found_peers(member.output) == ["stray"], stack.describe(token_of(url))
    assert member.running  # it goes on to start a 2-member raft group with the stray "peer"


@pytest.mark.parametrize("stack", [FAKE, FAKE_DS, REAL], indirect=True)
def test_waiting_member_exits_on_a_peer_value_that_is_not_a_url_map(
    stack: Stack, make_cluster: ClusterFactory
) -> None:
    url = stack.new_token_url(2)
    cluster = make_cluster(url, 2)
    member = cluster.members[0]
    member.start()
    member.wait_for_log(WAITING, EXIT_TIMEOUT)

    stray = requests.put(f"{url}/stray", data={"value": "not a member"}, timeout=5)
    assert stray.ok, stray.text

    assert member.wait_exit(EXIT_TIMEOUT) == 1, member.describe()
    assert "failed to join discovery cluster (discovery: invalid URL)" in member.output
