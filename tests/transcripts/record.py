"""Record what a running discovery service answers to the scenarios of ``ds_scenarios``.

Usage (the service must already run, bound to loopback; this script builds nothing)::

    python3 tests/transcripts/record.py --url http://127.0.0.1:8087 \\
        --watchers-url http://127.0.0.1:2379/metrics \\
        --source "etcd-io/discoveryserver <commit> in front of etcd <version>"

``--watchers-url`` is the metrics page of the etcd behind the service: its
``etcd_debugging_mvcc_watcher_total`` gauge tells when a long poll is registered (the
service watches through etcd v3). Each scenario's normalised transcript is written to
``<out>/<scenario>.json``; ``test_transcripts.py`` replays them against the fake.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
# The harness imports the tests' shared helpers (unitutil) from tests/.
sys.path[:0] = [str(HERE), str(HERE.parent / "conformance"), str(HERE.parent)]

from conformance_harness import Side, count_requests, run_scenario  # noqa: E402
from ds_scenarios import SCENARIOS  # noqa: E402

#: Where the transcripts of today's public service live.
DEFAULT_OUT = HERE / "discoveryserver"
_WATCHERS = re.compile(r"^etcd_debugging_mvcc_watcher_total (\S+)$", re.MULTILINE)


def v3_watchers(metrics_url: str) -> int:
    """The number of etcd v3 watchers, from etcd's metrics page."""
    text = requests.get(metrics_url, timeout=5).text
    found = _WATCHERS.search(text)
    if found is None:
        raise SystemExit(f"{metrics_url} exports no etcd_debugging_mvcc_watcher_total")
    return int(float(found[1]))


def transcript_document(name: str, source: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scenario": name, "recorded_from": source, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL of the running service")
    parser.add_argument("--watchers-url", required=True, help="metrics URL of its etcd")
    parser.add_argument("--source", required=True, help="what was recorded (build, versions)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("scenarios", nargs="*", help="only these (default: all)")
    args = parser.parse_args(argv)
    host = args.url.split("//", 1)[-1].split(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        raise SystemExit("record from a service on loopback only")
    side = Side(
        "recorded", args.url.rstrip("/"), lambda: v3_watchers(args.watchers_url), etcd_replies=False
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios or list(SCENARIOS):
        steps = run_scenario(side, SCENARIOS[name])
        path = args.out / f"{name}.json"
        document = transcript_document(name, args.source, steps)
        path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"{name}: {count_requests(steps)} requests -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
