"""Provisioning for etcd 3.6 and later: v3 discovery through an etcd v3 API.

An operator makes a discovery token by writing its size key into any etcd cluster (the
"discovery store"), then starts each member with ``--discovery-endpoints`` and
``--discovery-token`` (or the ``ETCD_DISCOVERY_*`` variables).  This module does both
halves' bookkeeping with ``etcdctl`` (``ETCDCTL_API=3``), as an operator's script would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

REGISTRY = "/_etcd/registry"


class ProvisionError(Exception):
    """etcdctl failed: the discovery store refused or could not be reached."""


def etcdctl(endpoints: str, *args: str) -> str:
    """Run ``etcdctl`` against the discovery store; its standard output."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    done = subprocess.run(
        ["etcdctl", "--endpoints", endpoints, "--command-timeout=5s", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise ProvisionError(done.stderr.strip())
    return done.stdout


def new_cluster(endpoints: str, size: int) -> str:
    """A new discovery token for a cluster of ``size`` members."""
    token = uuid.uuid4().hex
    etcdctl(endpoints, "put", f"{REGISTRY}/{token}/_config/size", str(size))
    return token


def member_env(endpoints: str, token: str, name: str, peer_url: str) -> dict[str, str]:
    """The environment an etcd 3.6 member starts with to join the cluster."""
    return {
        "ETCD_NAME": name,
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": peer_url,
        "ETCD_DISCOVERY_ENDPOINTS": endpoints,
        "ETCD_DISCOVERY_TOKEN": token,
    }


def registered(endpoints: str, token: str) -> list[str]:
    """The names of the members that registered, in the order etcd ranks them (the
    create revision of their key): the first ``size`` make the cluster."""
    out = etcdctl(endpoints, "get", "--prefix", f"{REGISTRY}/{token}/members/", "-w", "json")
    kvs = json.loads(out).get("kvs", [])
    kvs.sort(key=lambda kv: int(kv["create_revision"]))
    values = [base64.b64decode(kv["value"]).decode() for kv in kvs]
    return [value.split("=", 1)[0] for value in values if "=" in value]
