"""The store's internal tree (files and directories) and its JSON view.

Mirrors etcd v2store's ``node`` / ``NodeExtern`` split: :class:`Node` is what the
store mutates, :meth:`Node.view` is the dict etcd serialises, with etcd's field
order and omit-when-empty rules.
"""

from __future__ import annotations

import time
from typing import Any

from .clock import NS_PER_S

View = dict[str, Any]


def format_expiration(expire_ns: int) -> str:
    """RFC 3339 with nanoseconds in UTC, as Go's ``time.Time`` marshals it.

    Go's RFC3339Nano trims trailing zeros of the fraction and drops it when zero.
    """
    seconds, nanos = divmod(expire_ns, NS_PER_S)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        base += "." + f"{nanos:09d}".rstrip("0")
    return base + "Z"


def ttl_left(expire_ns: int, now_ns: int) -> int:
    """etcd's ``ceil((expire - now) / 1s)``, truncating toward zero like Go."""
    left = expire_ns - now_ns
    whole = abs(left) // NS_PER_S * (1 if left >= 0 else -1)
    if left - whole * NS_PER_S > 0:
        whole += 1
    return whole


def base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


class Node:
    """A file (``children is None``) or a directory in the store."""

    __slots__ = (
        "children",
        "created_index",
        "expire_ns",
        "modified_index",
        "parent",
        "path",
        "reap_ns",
        "value",
    )

    def __init__(
        self,
        path: str,
        created_index: int,
        parent: Node | None,
        *,
        value: str = "",
        is_dir: bool = False,
        expire_ns: int | None = None,
    ) -> None:
        self.path = path
        self.created_index = created_index
        self.modified_index = created_index
        self.parent = parent
        self.value = value
        self.children: dict[str, Node] | None = {} if is_dir else None
        self.expire_ns = expire_ns
        #: set when the expiry instant had passed at the write (ttl=0): the next sweep
        self.reap_ns: int | None = None

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def removal_ns(self) -> int | None:
        """When the store removes this key: its expiry instant, or the sweep after it."""
        return self.expire_ns if self.reap_ns is None else self.reap_ns

    @property
    def is_permanent(self) -> bool:
        return self.expire_ns is None

    @property
    def name(self) -> str:
        return base_name(self.path)

    @property
    def is_hidden(self) -> bool:
        # etcd hides names starting with "_" from directory listings only.
        return self.name.startswith("_")

    def expiration_and_ttl(self, now_ns: int) -> tuple[str | None, int]:
        if self.expire_ns is None:
            return None, 0
        return format_expiration(self.expire_ns), ttl_left(self.expire_ns, now_ns)

    def view(self, now_ns: int, *, recursive: bool = False, sorted_: bool = False) -> View:
        """This node as etcd's JSON (``Repr``): children of a directory only if recursive."""
        return self._view(now_ns, recursive, sorted_, list_children=recursive)

    def view_listing(self, now_ns: int, *, recursive: bool, sorted_: bool) -> View:
        """What a GET returns (``loadInternalNode``): a directory always lists one level."""
        return self._view(now_ns, recursive, sorted_, list_children=True)

    def _view(self, now_ns: int, recursive: bool, sorted_: bool, *, list_children: bool) -> View:
        # The hottest function of a GET: attributes read once, no property calls per child.
        # etcd's root is "/1", which its replies trim to nothing: the root shows no key.
        out: View = {"key": self.path} if self.parent is not None else {}
        children = self.children
        if children is None:
            out["value"] = self.value
        else:
            out["dir"] = True
        expire_ns = self.expire_ns
        if expire_ns is not None:
            out["expiration"] = format_expiration(expire_ns)
            ttl = ttl_left(expire_ns, now_ns)
            if ttl:
                out["ttl"] = ttl
        if children is not None and list_children:
            kids = [c for c in children.values() if not c.is_hidden]
            if sorted_:
                kids.sort(key=lambda c: c.path)
            nodes = [c._view(now_ns, recursive, sorted_, list_children=recursive) for c in kids]
            if nodes:
                out["nodes"] = nodes
        if self.modified_index:
            out["modifiedIndex"] = self.modified_index
        if self.created_index:
            out["createdIndex"] = self.created_index
        return out

    def walk(self) -> list[Node]:
        """This node and every node below it, parents first."""
        out = [self]
        if self.children:
            for child in self.children.values():
                out.extend(child.walk())
        return out

    def __repr__(self) -> str:
        kind = "dir" if self.is_dir else "file"
        return f"<Node {kind} {self.path} c={self.created_index} m={self.modified_index}>"
