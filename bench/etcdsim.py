"""A simulated etcd 3.4 member: the discovery requests ``v2discovery.joinCluster`` sends.

Read from etcd 3.4's ``etcdserver/api/v2discovery/discovery.go``: checkCluster (size GET,
token GET, full check), createSelf (create, then a watch on its own key from its
createdIndex, answered from history), checkCluster again, then waitNodes: a recursive
watch from the token GET's ``X-Etcd-Index + 1``, each next one from the event's
``modifiedIndex + 1``, every event counting as one more peer until ``size`` are known.
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any

import requests

from .targets import Target

_GET_QUERY = "quorum=false&recursive=false&sorted=false"


class BootstrapError(RuntimeError):
    """A simulated member got an answer etcd would have failed on."""


def member_id(peer_url: str, discovery_url: str) -> str:
    """etcd's member id for one peer URL on ``discovery_url``, in lowercase hex."""
    digest = hashlib.sha1((peer_url + discovery_url).encode("utf-8")).digest()
    return format(int.from_bytes(digest[:8], "big"), "x")


def peer_url(number: int) -> str:
    return f"http://10.0.{number // 250}.{number % 250 + 1}:2380"


class SimulatedMember:
    def __init__(self, target: Target, token_url: str, number: int) -> None:
        self.target = target
        self.token_url = token_url
        self.name = f"m{number}"
        self.peer = peer_url(number)
        self.id = member_id(self.peer, token_url)
        self.session = target.session()
        self.requests = 0

    def _get(self, url: str, *, watch: bool = False) -> requests.Response:
        self.requests += 1
        resp = self.session.get(url, timeout=self.target.timeout(watch))
        if resp.status_code != 200:
            raise BootstrapError(f"{self.name}: GET {url} -> {resp.status_code} {resp.text}")
        return resp

    def _check_cluster(self) -> tuple[list[dict[str, Any]], int, int]:
        size_resp = self._get(f"{self.token_url}/_config/size?{_GET_QUERY}")
        size = int(size_resp.json()["node"]["value"])
        resp = self._get(f"{self.token_url}?{_GET_QUERY}")
        index = int(resp.headers["X-Etcd-Index"])
        nodes = [
            n
            for n in resp.json()["node"].get("nodes", [])
            if posixpath.basename(n["key"]) != "_config"
        ]
        nodes.sort(key=lambda n: int(n["createdIndex"]))
        for i, node in enumerate(nodes):
            if posixpath.basename(node["key"]) == self.id:
                break
            if i >= size - 1:
                raise BootstrapError(f"{self.name}: discovery cluster is full")
        return nodes, size, index

    def join(self) -> list[str]:
        """Run the whole join; return the member ids this member ended up with."""
        self._check_cluster()
        self.requests += 1
        resp = self.session.put(
            f"{self.token_url}/{self.id}?prevExist=false",
            data={"value": f"{self.name}={self.peer}"},
            timeout=self.target.timeout(),
        )
        if resp.status_code != 201:
            raise BootstrapError(f"{self.name}: PUT -> {resp.status_code} {resp.text}")
        created = int(resp.json()["node"]["createdIndex"])
        self._get(
            f"{self.token_url}/{self.id}?recursive=false&wait=true&waitIndex={created}",
            watch=True,
        )
        nodes, size, index = self._check_cluster()
        found = [posixpath.basename(n["key"]) for n in nodes[:size]]
        wait_index = index + 1
        while len(found) < size:  # bounded: one event per other member's registration
            resp = self._get(
                f"{self.token_url}?recursive=true&wait=true&waitIndex={wait_index}", watch=True
            )
            node = resp.json()["node"]
            found.append(posixpath.basename(node["key"]))
            wait_index = int(node["modifiedIndex"]) + 1
        self.session.close()
        return found
