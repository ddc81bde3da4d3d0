"""The etcd-v2-like store, split as etcd's own v2store: one module per concept.

:mod:`.store` (the public operations), :mod:`.node` (the tree), :mod:`.events` (actions
and the bounded event history), :mod:`.watchers` (registration and notification),
:mod:`.ttl_heap` (expiry order), :mod:`.errors` (etcd's error table) and :mod:`.clock`
(the injected, controllable clock).  Nothing here knows about HTTP.
"""
