"""Profile one request kind on one transport: ``python -m bench.profile inprocess get``.

Prints the CPU time per call and cProfile's top functions (by own time and cumulative),
so a hot spot is found before anything is optimized. Transports: ``inprocess`` (the
``responses`` interceptor), ``app`` (the WSGI app called directly, no client), ``live``
(the live server; profiles this process, i.e. the client and the server threads' work is
not included — use ``inprocess``/``app`` for the fake's own cost).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import new_token
from bench.targets import INPROCESS_HOST, Target, make_target
from pytest_etcd_discovery._service.app import DiscoveryApp

KINDS = ("new", "get", "put", "size")


def _app_caller(kind: str) -> Callable[[int], object]:
    app = DiscoveryApp()
    token_url = app.answer_url("GET", f"{INPROCESS_HOST}/new?size=3")[2].decode()
    for i in range(3):
        app.answer_url("PUT", f"{token_url}/m{i}", form={"value": f"m{i}=http://10.0.0.{i}:2380"})

    def call(i: int) -> object:
        if kind == "new":
            return app.answer_url("GET", f"{INPROCESS_HOST}/new?size=3", transport="inprocess")
        if kind == "get":
            return app.answer_url("GET", token_url, transport="inprocess")
        if kind == "size":
            return app.answer_url("GET", f"{token_url}/_config/size", transport="inprocess")
        return app.answer_url(
            "PUT",
            f"{token_url}/{i:x}?prevExist=false",
            form={"value": "v"},
            transport="inprocess",
        )

    return call


def _client_caller(target: Target, kind: str) -> Callable[[int], object]:
    token_url = new_token(target, 3)
    session = target.session()
    for i in range(3):
        session.put(f"{token_url}/m{i}", data={"value": f"m{i}=http://10.0.0.{i}:2380"})

    def call(i: int) -> object:
        if kind == "new":
            return session.get(f"{target.base_url}/new?size=3")
        if kind == "get":
            return session.get(token_url)
        if kind == "size":
            return session.get(f"{token_url}/_config/size")
        return session.put(f"{token_url}/{i:x}?prevExist=false", data={"value": "v"})

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("transport", choices=("inprocess", "app", "live"))
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("-n", type=int, default=2000, help="calls to profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    target: Target | None = None
    if args.transport == "app":
        call = _app_caller(args.kind)
    else:
        target = make_target(args.transport)
        target.start()
        target.activate()
        call = _client_caller(target, args.kind)
    try:
        for i in range(min(200, args.n)):  # warm-up
            call(i)
        start = time.thread_time()
        for i in range(args.n):
            call(i)
        per_call = (time.thread_time() - start) / args.n
        print(f"{args.transport} {args.kind}: {per_call * 1e3:.3f} ms CPU per call")
        profile = cProfile.Profile()
        profile.enable()
        for i in range(args.n):
            call(i)
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    finally:
        if target is not None:
            target.deactivate()
            target.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
