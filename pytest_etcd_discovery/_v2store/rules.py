"""What differs between etcd's own v2 store and the v2 API etcd 3.4 emulates over v3.

etcd-io/discoveryserver (today's public service) does not use etcd's v2 store: it
keeps its keys in etcd v3 through etcd's ``v2v3`` package, which answers in v2 shapes
but numbers and reports writes the v3 way (read in etcd 3.4's
``etcdserver/api/v2v3/store.go`` and ``watcher.go``; checked against a build of the
service, see ``tests/transcripts``). A :class:`Store` follows one of these rule sets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreRules:
    """How a store numbers, keeps and reports its writes."""

    name: str
    #: An overwrite keeps the key's ``createdIndex``: v3 reports a key's create
    #: revision, which a put over a live key does not change.
    keeps_created_index: bool
    #: Events a watch can replay; ``None``: all of them (v3 keeps every revision until
    #: compaction, which etcd 3.4 does not do unless asked).
    history_size: int | None
    #: A directory GET echoes the path asked for (``"/<token>/"``), as v2v3's ``Get``
    #: puts ``nodePath`` itself into the reply.
    echoes_dir_path: bool
    #: A recursive delete is one v3 transaction: its reply carries only the directory
    #: as ``prevNode`` (no ``node``), and its watch event names the deepest key removed
    #: (v2v3 builds events from the longest key of a revision) as a tombstone.
    v3_deletes: bool


#: etcd 3.4's own v2 store (``etcd --enable-v2``), behind the original service.
ETCD_V2 = StoreRules(
    name="etcd-v2",
    keeps_created_index=False,
    history_size=1000,
    echoes_dir_path=False,
    v3_deletes=False,
)

#: etcd 3.4's v2 API over v3 (``v2v3``), behind etcd-io/discoveryserver.
V2_OVER_V3 = StoreRules(
    name="v2v3",
    keeps_created_index=True,
    history_size=None,
    echoes_dir_path=True,
    v3_deletes=True,
)
