"""``etcd-discovery-fake`` / ``python -m pytest_etcd_discovery``: the standalone fake.

Prints its base URL as one line on stdout once it accepts connections, so a
script or a test in another language can read it and go; SIGINT or SIGTERM stop it.
With ``--env-file PATH`` it also starts the TLS + proxy front and, once that accepts
connections too, writes the environment a child process needs to reach the fake at
``https://discovery.etcd.io`` (``KEY=VALUE`` lines: ``set -a; . PATH; set +a``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .service.app import DiscoveryApp
from .service.faults import FaultError, load_plan
from .service.profiles import PROFILES
from .transport.server import DiscoveryServer, ServerError


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {port}")
    return port


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1]) == 0:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etcd-discovery-fake",
        description="Run the fake etcd discovery service (discovery.etcd.io) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8087, help="port to bind; 0 picks a free one (default 8087)"
    )
    parser.add_argument(
        "--public-url",
        type=_url,
        default=None,
        help="prefix /new hands out (default: the server's own URL)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="etcd-v2",
        help="behave like the original service (etcd-v2, default) or today's (discoveryserver)",
    )
    parser.add_argument(
        "--faults",
        metavar="FILE",
        default=None,
        help="a fault plan to apply, JSON or TOML ([[faults]] tables: status, route, path, "
        "method, nth, times, delay, action)",
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        default=None,
        help="also answer https://discovery.etcd.io through a TLS + proxy front, and write "
        "the environment that points child processes at it to PATH (KEY=VALUE lines: "
        "HTTPS_PROXY, SSL_CERT_FILE, ...) once it accepts connections",
    )
    parser.add_argument(
        "--host-url",
        dest="hosts",
        metavar="URL",
        action="append",
        type=_url,
        default=[],
        help="with --env-file: another discovery base URL to answer besides "
        "https://discovery.etcd.io (repeatable)",
    )
    return parser


def write_env_file(path: str, values: dict[str, str]) -> None:
    """Write ``KEY=VALUE`` lines (shell-quoted where needed) atomically: a reader that
    polls for the file never sees half of it."""
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A long-running server keeps a bounded journal: nobody resets it between tests.
    app = DiscoveryApp(profile=args.profile, public_url=args.public_url, max_calls=10_000)
    server = DiscoveryServer(args.host, args.port, app=app)
    if args.faults is not None:
        try:
            load_plan(args.faults).install(server.app)
        except FaultError as exc:
            print(f"etcd-discovery-fake: error: {exc}", file=sys.stderr)
            return 2
    try:
        server.start()
    except ServerError as exc:
        print(f"etcd-discovery-fake: error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    front = None
    try:
        if args.env_file is not None:
            from .constants import DEFAULT_HOSTS
            from .transport.childenv import env_additions
            from .transport.proxy import DiscoveryFront
            from .transport.tls import session_ca

            front = DiscoveryFront(server, [*DEFAULT_HOSTS, *args.hosts], session_ca(), args.host)
            front.start()
            write_env_file(args.env_file, env_additions(front))
        print(server.url, flush=True)
        stop.wait()
    finally:
        if front is not None:
            front.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
