"""The one discoveryserver-profile request etcd 3.4 cannot bootstrap without.

After ``PUT /T/<id>`` answers with ``createdIndex`` C, etcd's ``createSelf`` waits with
``GET /T/<id>?wait=true&waitIndex=C`` (``AfterIndex: C-1``). The real service hands that
to etcd's v2v3 store as ``Watch(path, recursive, false, waitIndex+1)``, which becomes
``clientv3.WithRev(waitIndex+1)``; v2v3 numbers v2 indexes as v3 revision - 1, so the watch
starts *at* v2 index ``waitIndex`` and returns the event at C at once. No binaries needed.
"""

from __future__ import annotations

import requests

from pytest_etcd_discovery._transport.server import DiscoveryServer


def test_discoveryserver_watch_includes_wait_index(fake_ds_service: DiscoveryServer) -> None:
    url = requests.get(f"{fake_ds_service.url}/new", params={"size": 1}, timeout=5).text
    put = requests.put(f"{url}/abc", data={"value": "m1=http://127.0.0.1:2380"}, timeout=5)
    created = put.json()["node"]["createdIndex"]

    try:
        got = requests.get(
            f"{url}/abc",
            params={"recursive": "false", "wait": "true", "waitIndex": created},
            timeout=3,
        )
    except requests.Timeout:
        raise AssertionError(
            f"GET /T/abc?wait=true&waitIndex={created} blocked: the event at index {created} "
            "must be returned at once (see /work/notes/realclients.md)"
        ) from None
    assert got.status_code == 200
    assert got.json()["node"]["createdIndex"] == created
    assert got.json()["node"]["value"] == "m1=http://127.0.0.1:2380"
