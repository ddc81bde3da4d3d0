"""Constants the unit tests share (the fixtures built on them live in conftest.py)."""

from __future__ import annotations

#: Where frozen test clocks start: 2023-11-14T22:13:20Z, exactly representable in ns.
START = 1_700_000_000

#: A generous bound for anything that should happen at once.
WAIT = 10.0
