"""Setup for replaying recorded transcripts of the real services against the fake: the
conformance harness on ``sys.path`` (the fake itself is ``fake_ds_service`` of
``tests/conftest.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

# The conformance harness (recorder, normalisation, diff) is shared with tests/conformance.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "conformance"))
