"""``etcd-discovery-fake`` / ``python -m pytest_etcd_discovery``: the standalone fake.

Prints its base URL as one line on stdout once it accepts connections, so a
script or a test in another language can read it and go; SIGINT, SIGTERM or SIGHUP stop
it cleanly (the state is saved, the test CA's folder removed).
The control API (:mod:`._service.control`) answers under ``/_fake/`` unless ``--no-control``
(``--control-token`` makes it ask for a bearer token; a non-loopback ``--host`` warns).
With ``--env-file PATH`` it also starts the TLS + proxy front and, once that accepts
connections too, writes the environment a child process needs to reach the fake at
``https://discovery.etcd.io`` (``KEY=VALUE`` lines: ``set -a; . PATH; set +a``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ._service.app import DiscoveryApp
from ._service.control import ControlError, check_state, check_token
from ._service.faults import FaultError, load_plan
from ._service.profiles import PROFILES
from ._stack import FakeStack
from ._transport.hosts import is_loopback
from ._transport.server import ServerError
from ._urls import URLError


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


def _token(text: str) -> str:
    try:
        return check_token(text)
    except ControlError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


#: The control API in brief (docs/reference/control-api.rst has it all).
CONTROL_EPILOG = """\
control API (JSON under /_fake/, unless --no-control; with --control-token every request
needs 'Authorization: Bearer TOKEN'; other Hosts and cross-origin changes answer 403):
  GET  /_fake/health                 up: version, profile, store index, calls, faults
  GET  /_fake/openapi.json           the OpenAPI 3.1 description of all of /_fake/
  GET|PUT /_fake/state               the whole state, and restore it
  POST /_fake/reset                  empty store, real clock, no faults, empty journal
                                     (and the v3 endpoint's keys, faults, journal)
  GET|POST /_fake/tokens             list tokens; seed one {"size", "members", "state"}
  GET  /_fake/clock                  the clock: now, time, frozen
  POST /_fake/clock/advance          {"seconds": N}: keys that became due expire
  POST /_fake/clock/freeze           stop the clock
  POST /_fake/clock/unfreeze         let it run on from where it stands
  GET|POST|DELETE /_fake/faults      list rules (id, seen, fired); add one; remove all
  GET|DELETE /_fake/faults/<id>      one rule by its id (404 for an unknown id)
  GET  /_fake/calls                  the journal (headers, bodies): since=N&limit=M pages;
                                     method=, route=, path=, path_regex=, token=,
                                     status= (200,500-599), transport= filter
  POST /_fake/calls/count            {filter, "since", "times"}: the count and the closest
                                     calls that did not match, with why
  GET  /_fake/changes                what changed since=CURSOR (the dashboard's poll)
  GET|POST /_fake/v3/tokens          etcd 3.6 v3 discovery tokens of --v3-port's endpoint;
                                     make one {"size", "token"}
  GET|DELETE /_fake/v3/tokens/<token>  one v3 token (size, members, full); delete its keys
  POST /_fake/v3/tokens/<token>/members  register {"name", "peer_urls", "member_id"}
  GET  /_fake/v3/calls               the v3 journal (gRPC calls): since=N&limit=M pages
  GET|POST|DELETE /_fake/v3/faults   v3 rules {"action": fail|delay|drop, "code",
                                     "seconds", "service", "method", "key_prefix", "times"}
  GET|DELETE /_fake/v3/faults/<id>   one v3 rule by its id
  GET  /_fake/                       the dashboard: a control panel over all of this
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etcd-discovery-fake",
        description="Run the fake etcd discovery service (discovery.etcd.io) on loopback.",
        epilog=CONTROL_EPILOG,
        # The epilog's columns as written.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1); anything but loopback lets every client "
        "that reaches it use the control API (reset the store, overwrite the state, inject "
        "faults): a warning says so; see --control-token and --no-control",
    )
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
        "--keys-api",
        action="store_true",
        help="also serve the generic etcd v2 keys API at /v2/keys (for custom discovery URLs); "
        "the real service answers 404 there, and the keys API lets any client read and "
        "delete every token",
    )
    parser.add_argument(
        "--faults",
        metavar="FILE",
        default=None,
        help="a fault plan to apply, JSON or TOML ([[faults]] tables: status, route, path, "
        "method, nth, times, delay, action)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="hand out the same tokens in the same order on every run (not secret)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        default=None,
        help="load the state from FILE at start (if it exists and is not empty) and write it "
        "there at a clean stop (SIGINT/SIGTERM); the same JSON as GET /_fake/state",
    )
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="no control API: /_fake/ answers 404 like the real services",
    )
    parser.add_argument(
        "--control-token",
        metavar="TOKEN",
        type=_token,
        default=None,
        help="every control API request needs 'Authorization: Bearer TOKEN' (else 401); open "
        "the dashboard once as /_fake/?token=TOKEN. For a fake exposed on purpose (--host); "
        "the token travels in clear text over HTTP and shows in the process list",
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
    parser.add_argument(
        "--v3-port",
        metavar="PORT",
        type=_port,
        default=None,
        help="also serve an etcd v3 API (gRPC) on --host at PORT (0: a free one) for etcd "
        "3.6+ v3 discovery (--discovery-endpoints, --discovery-token); prints "
        "'etcd v3: http://HOST:PORT' after the URL. Needs the etcd-v3 extra: "
        "pip install 'pytest-etcd-discovery[etcd-v3]'",
    )
    return parser


def _load_state(app: DiscoveryApp, path: Path) -> None:
    """Restore ``app`` from a state file; a missing or empty file (what ``mktemp`` makes)
    is a first run (empty state)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except UnicodeDecodeError as exc:
        raise ControlError(
            f"cannot parse state {path}: not UTF-8 text (byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ControlError(f"cannot read state {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ControlError(f"cannot parse state {path}: {exc}") from None
    try:
        app.store.restore(check_state(data))
    except ControlError as exc:
        raise ControlError(f"state {path}: {exc.message}") from None


def _state_tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _env_tmp(path: str) -> str:
    return f"{path}.tmp{os.getpid()}"


def _save_state(app: DiscoveryApp, path: Path) -> None:
    # Write a sibling file and rename it: a crash mid-write leaves the old state whole.
    tmp = _state_tmp(path)
    tmp.write_text(json.dumps({"store": app.store.snapshot()}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_env_file(path: str, values: dict[str, str]) -> None:
    """Write ``KEY=VALUE`` lines (shell-quoted where needed) atomically: a reader that
    polls for the file never sees half of it."""
    text = "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())
    tmp = _env_tmp(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _check_writable(path: str, what: str, temporary: str) -> str | None:
    """Why ``path`` cannot be written the way it will be (a sibling ``temporary`` file
    renamed over it), or None.  Checked at start by writing that file and removing it:
    a missing folder or one that refuses writes is a usage error now, not a lost state or
    a traceback later (permission bits alone say nothing for root)."""
    if os.path.isdir(path):
        return f"{what} {path}: is a directory"
    try:
        with open(temporary, "x", encoding="utf-8"):
            pass
    except FileExistsError:
        return None  # a leftover of an earlier run: the folder takes files
    except OSError as exc:
        return f"{what} {path}: cannot write there: {exc.strerror or exc}"
    with contextlib.suppress(OSError):
        os.unlink(temporary)
    return None


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What makes the arguments unusable before anything starts, or None."""
    if args.hosts and args.env_file is None:
        return "--host-url needs --env-file (only the TLS + proxy front answers other hosts)"
    if args.env_file is not None:
        problem = _check_writable(args.env_file, "--env-file", _env_tmp(args.env_file))
        if problem:
            return problem
    if args.state is not None:
        return _check_writable(args.state, "--state", str(_state_tmp(Path(args.state))))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _usage_problem(args)
    if problem is not None:
        print(f"etcd-discovery-fake: error: {problem}", file=sys.stderr)
        return 2
    if args.keys_api and not is_loopback(args.host):
        print(
            f"etcd-discovery-fake: warning: --keys-api on {args.host}: any client that can "
            "reach it can list and delete every token through /v2/keys",
            file=sys.stderr,
        )
    if not args.no_control and not is_loopback(args.host):
        guard = (
            "it asks for --control-token, which travels in clear text"
            if args.control_token is not None
            else "give --control-token TOKEN to require a token, or --no-control"
        )
        print(
            f"etcd-discovery-fake: warning: listening on {args.host}: any client that can "
            "reach it can use the control API at /_fake/ to reset the store, overwrite the "
            f"state and inject faults ({guard})",
            file=sys.stderr,
        )
    try:
        stack = FakeStack(
            profile=args.profile,
            hosts=args.hosts,
            listen_host=args.host,
            port=args.port,
            keys_api=args.keys_api,
            control=not args.no_control,
            public_url=args.public_url,
            # A long-running server keeps a bounded journal: nobody resets it between tests.
            max_calls=10_000,
            seed=args.seed,
            hosts_what="--host-url",
            control_token=args.control_token,
        )
    except URLError as exc:
        print(f"etcd-discovery-fake: error: {exc}", file=sys.stderr)
        return 2
    app, server = stack.app, stack.server
    state = Path(args.state) if args.state is not None else None
    if state is not None:
        try:
            _load_state(app, state)
        except ControlError as exc:
            print(f"etcd-discovery-fake: error: {exc.message}", file=sys.stderr)
            return 2
    if args.faults is not None:
        try:
            load_plan(args.faults).install(server.app)
        except FaultError as exc:
            print(f"etcd-discovery-fake: error: {exc}", file=sys.stderr)
            return 2
    if args.v3_port is not None:
        from ._v3face import load_v3

        try:
            load_v3()
        except ImportError as exc:
            print(f"etcd-discovery-fake: error: {exc}", file=sys.stderr)
            return 2
    try:
        server.start()
    except ServerError as exc:
        print(f"etcd-discovery-fake: error: {exc}", file=sys.stderr)
        return 1
    v3 = None
    if args.v3_port is not None:
        from ._v3face import V3Discovery

        try:
            # On the shared clock of the stack (the control API's clock moves it too).
            v3 = V3Discovery(stack.clock, host=args.host, port=args.v3_port)
        except (OSError, RuntimeError) as exc:  # e.g. the port is taken
            stack.close()
            print(f"etcd-discovery-fake: error: the etcd v3 API: {exc}", file=sys.stderr)
            return 1
        stack.control.v3 = v3  # GET /_fake/v3/tokens
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the front makes its test CA, so the CA's own cleanup on signals
    # stays out of the way: a clean stop removes its folder through atexit.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        if args.env_file is not None:
            from ._transport.subprocess_env import env_additions

            write_env_file(args.env_file, env_additions(stack.front()))
        print(server.url, flush=True)
        if v3 is not None:
            print(f"etcd v3: {v3.endpoints}", flush=True)
        stop.wait()
    finally:
        if v3 is not None:
            v3.close()
        stack.close()
    if state is not None:
        try:
            _save_state(app, state)
        except OSError as exc:
            print(f"etcd-discovery-fake: error: cannot write state {state}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
