"""The two behaviour profiles: what differs between the real services we imitate.

``etcd-v2``
    coreos/discovery.etcd.io, the original service: a thin proxy in front of an
    etcd v2 keys API. Full v2 semantics, etcd's JSON errors, keys shown as
    ``/_etcd/registry/<token>/...``. The default, and what the seed article shows.
``discoveryserver``
    etcd-io/discoveryserver, today's public service: an in-memory v2 store over
    etcd v3 whose PUT is always a plain set, whose errors are plain-text 400s and
    whose watches give up after a minute with an empty 200. Its store is etcd's
    v2 API over v3 (``v2v3``): overwrites keep ``createdIndex``, watches replay the
    whole history, a directory GET echoes the path asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..v2store.rules import ETCD_V2 as ETCD_V2_STORE
from ..v2store.rules import V2_OVER_V3, StoreRules

ETCD_V2 = "etcd-v2"
DISCOVERYSERVER = "discoveryserver"


@dataclass(frozen=True)
class Profile:
    name: str
    #: where tokens live in the store (and so the ``key`` prefix clients see)
    key_prefix: str
    #: where ``/`` redirects
    home_url: str
    #: how long a long poll waits before answering with an empty 200 (None: for ever)
    watch_timeout: float | None
    #: the generic etcd v2 keys API at ``/v2/keys`` (a "custom etcd discovery" URL)
    serves_keys_api: bool
    #: ``/new`` and ``/health`` spend an extra index on a garbage-collection record
    gc_records: bool
    #: the body of a 400 when the store refuses to create a token
    new_error: str
    #: the store behind the service: etcd's v2 store, or its v2 API over v3
    store_rules: StoreRules


PROFILES: dict[str, Profile] = {
    ETCD_V2: Profile(
        name=ETCD_V2,
        key_prefix="/_etcd/registry",
        home_url="https://coreos.com/docs/cluster-management/setup/cluster-discovery/",
        watch_timeout=None,  # etcd's defaultWatchTimeout is MaxInt64; the proxy sets none
        serves_keys_api=True,
        gc_records=False,
        new_error="Unable to generate token",
        store_rules=ETCD_V2_STORE,
    ),
    DISCOVERYSERVER: Profile(
        name=DISCOVERYSERVER,
        key_prefix="",
        home_url="https://etcd.io/docs/v3.5/dev-internal/discovery_protocol",
        watch_timeout=60.0,
        serves_keys_api=False,
        gc_records=True,
        new_error="unable to generate token",
        store_rules=V2_OVER_V3,
    ),
}


def get_profile(profile: str | Profile) -> Profile:
    """The profile called ``profile``; a clear error names the valid ones."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        names = ", ".join(PROFILES)
        raise ValueError(f"unknown profile {profile!r} (choose one of: {names})") from None
