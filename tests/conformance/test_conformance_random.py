"""Random request sequences sent to the fake and the real service in lockstep
(fakeredis style): after every request the two normalised replies must be equal.

Hypothesis draws keys (plain, hidden, the token directory itself, ``_config``) and every
option of section 3 with valid and invalid spellings; indexes are drawn relative to the
token's anchor so they mean the same on both sides. TTLs are a week long: nothing expires
during a run, so both indexes move only with our writes.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests
from conformance_harness import COMPARED, Recorder, Side, count_requests, diff, side_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

KEYS = ["m1", "m2", "_h", "", "_config", "_config/size"]
BOOLS = [None, "true", "false", "maybe", ""]
#: Examples per run; raise it for a longer hunt (e.g. ETCD_DISCOVERY_CONFORMANCE_EXAMPLES=500).
EXAMPLES = int(os.environ.get("ETCD_DISCOVERY_CONFORMANCE_EXAMPLES", "10"))
#: A history watch with no matching event blocks: both sides must block; this bounds it.
BLOCK_TIMEOUT = 0.2
POLL_TIMEOUT = 1.0

maybe = st.none().__or__
index_offset = st.integers(min_value=-1, max_value=30)  # -1: a literal 0 ("no index")

put_op = st.fixed_dictionaries(
    {
        "op": st.just("put"),
        "key": st.sampled_from(KEYS),
        "value": maybe(st.sampled_from(["a", "b", ""])),
        "prevExist": st.sampled_from(BOOLS),
        "prevValue": maybe(st.sampled_from(["a", "b", ""])),
        "prevIndex": maybe(index_offset),
        "ttl": maybe(st.sampled_from(["604800", "", "x"])),
        "dir": st.sampled_from([None, "true", "false"]),
        "refresh": st.sampled_from([None, None, "true"]),
        "in_body": st.booleans(),
    }
)
delete_op = st.fixed_dictionaries(
    {
        "op": st.just("delete"),
        "key": st.sampled_from(KEYS),
        "prevValue": maybe(st.sampled_from(["a", "b", ""])),
        "prevIndex": maybe(index_offset),
        "dir": st.sampled_from([None, "true"]),
        "recursive": st.sampled_from([None, "true", "maybe"]),
    }
)
get_op = st.fixed_dictionaries(
    {
        "op": st.just("get"),
        "key": st.sampled_from(KEYS),
        "recursive": st.sampled_from([None, "true", "false"]),
        "sorted": st.sampled_from([None, "true"]),
    }
)
watch_op = st.fixed_dictionaries(
    {
        "op": st.just("watch"),
        "key": st.sampled_from(KEYS),
        # How far back from the current index (so most watches answer from history).
        "back": st.integers(min_value=0, max_value=8),
        "recursive": st.sampled_from([None, "true"]),
    }
)
watched_op = st.fixed_dictionaries(
    {
        "op": st.just("watched"),
        # A poll for the next index, started before the write: notification rules
        # (hidden keys, recursive or not, directories, refresh) decide if it fires.
        "key": st.sampled_from(KEYS),
        "recursive": st.sampled_from([None, "true"]),
        "write": st.one_of(put_op, delete_op),
    }
)
operations = st.lists(
    st.one_of(put_op, put_op, delete_op, get_op, watch_op, watched_op), max_size=20
)


def _params(d: Recorder, op: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in names:
        value = op.get(name)
        if value is None:
            continue
        if name in ("prevIndex", "waitIndex"):
            value = 0 if value < 0 else d.idx(value)
        params[name] = value
    return params


def current_offset(d: Recorder) -> int:
    """The newest X-Etcd-Index seen, as an offset from the anchor."""
    seen = [0]
    for step in d.steps:
        value = step.get("headers", {}).get("X-Etcd-Index")
        if isinstance(value, str) and value.startswith("I"):
            seen.append(int(value[1:]))
    return max(seen)


def apply(d: Recorder, token: str, op: dict[str, Any]) -> None:
    """Send one drawn operation through ``d`` (recorded like any scenario step)."""
    path = f"/{token}/{op['key']}" if op["key"] else f"/{token}"
    if op["op"] == "put":
        params = _params(d, op, ("prevExist", "prevValue", "prevIndex", "ttl", "dir", "refresh"))
        if op["value"] is not None:
            params["value"] = op["value"]
        if op["in_body"]:
            d.put(path, data=params)
        else:
            d.put(path, params=params)
    elif op["op"] == "delete":
        d.delete(path, params=_params(d, op, ("prevValue", "prevIndex", "dir", "recursive")))
    elif op["op"] == "get":
        d.get(path, params=_params(d, op, ("recursive", "sorted")))
    elif op["op"] == "watched":
        params = {"waitIndex": d.idx(current_offset(d) + 1), **_params(d, op, ("recursive",))}
        # The poll's own timeout is generous (a slow commit on the real side must not turn
        # an event into a timeout); whether it fired is decided within BLOCK_TIMEOUT.
        watch = d.watch(path, params, timeout=POLL_TIMEOUT, registered=True)
        apply(d, token, op["write"])
        if watch.answered(BLOCK_TIMEOUT) and watch.error is None:
            watch.result(expect=None)
        else:
            d.note(f"GET {d.norm_path(path)} {params.get('recursive', '')} next", "blocked")
    else:
        back = max(current_offset(d) - op["back"], 0)
        params = {"wait": "true", "waitIndex": d.idx(back), **_params(d, op, ("recursive",))}
        try:
            d.get(path, params=params, timeout=BLOCK_TIMEOUT)
        except requests.exceptions.ReadTimeout:
            d.note(f"GET {d.norm_path(path)} {params.get('recursive', '')} wait", "blocked")


@pytest.mark.real
@pytest.mark.fake
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # No "explain" phase: it replays the failing example dozens of times against real etcd.
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_sequences_agree(request: pytest.FixtureRequest, ops: list[dict[str, Any]]) -> None:
    sides: list[Side] = [side_for(request, "real"), side_for(request, "fake")]
    real, fake = (Recorder(side) for side in sides)
    try:
        tokens = [rec.new_token(3) for rec in (real, fake)]
        for op in ops:
            for rec, token in zip((real, fake), tokens, strict=True):
                apply(rec, token, op)
            if real.steps[-1] != fake.steps[-1]:
                transcripts = diff("real", real.steps, "fake", fake.steps)
                pytest.fail(f"fake and real differ after {op}:\n{transcripts}", pytrace=False)
        assert not real.failures, real.failures
        assert not fake.failures, fake.failures
        compared, _ = COMPARED.get(__name__ + ".random", (0, False))
        COMPARED[__name__ + ".random"] = (compared + count_requests(real.steps), False)
    finally:
        real.close()
        fake.close()
