"""A real ``node`` reaches the fake at https://discovery.etcd.io with ``etcd_discovery.env()``.

Node ignores ``HTTPS_PROXY``; ``env()`` preloads ``node_preload.cjs`` through
``NODE_OPTIONS``, which sends Node's connections to the discovery hosts (``https.get``,
``fetch``, ``http.get``) to the front and leaves every other host alone.  Each script also
records every name Node asks its resolver (``dns.lookup``) for: a discovery host's must
never be among them.

The ``node`` on ``PATH`` runs, or the one ``ETCD_DISCOVERY_TEST_NODE`` names (another Node
version, e.g. a wrapper around Debian's own build).  Without one the tests skip (a failure
under ``ETCD_DISCOVERY_REQUIRE_REAL=1``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from realutil import REQUIRE_REAL_ENV, skip_or_fail

from pytest_etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery.__main__ import write_env_file
from pytest_etcd_discovery._transport.proxy import DiscoveryFront
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._transport.subprocess_env import (
    NODE_PRELOAD,
    child_env,
    env_additions,
    node_options,
)

PUBLIC = "https://discovery.etcd.io"
TOKEN = r"[a-f0-9]{32}"
NODE_ENV = "ETCD_DISCOVERY_TEST_NODE"
pytestmark = pytest.mark.etcd_discovery

#: Runs each request of argv[2] (a JSON list of [how, url]) in turn and prints one JSON
#: object: what each returned (or its error) and the names dns.lookup was asked for.
CLIENT = r"""
const dns = require('node:dns');
const http = require('node:http');
const https = require('node:https');
const lookups = [];
const lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  lookups.push(host);
  return lookup.call(this, host, ...rest);
};

function get(module, url) {
  return new Promise((resolve, reject) => {
    module.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

const how = {
  'https.get': (url) => get(https, url),
  'http.get': (url) => get(http, url),
  fetch: async (url) => {
    const res = await fetch(url);
    return { status: res.status, body: await res.text() };
  },
};

(async () => {
  const results = [];
  for (const [name, url] of JSON.parse(process.argv[2])) {
    try {
      results.push(await how[name](url));
    } catch (error) {
      const cause = error.cause || error;
      results.push({ error: String(cause.message), code: cause.code || null });
    }
  }
  process.stdout.write(JSON.stringify({ results, lookups }));
})();
"""


@pytest.fixture(scope="module")
def node() -> str:
    path = os.environ.get(NODE_ENV) or shutil.which("node")
    if path is None:
        skip_or_fail(
            f"real binaries missing: node (apt-get install nodejs; {REQUIRE_REAL_ENV}=1 "
            "makes this a failure)"
        )
        raise AssertionError("unreachable")
    return path


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("node") / "client.cjs"
    path.write_text(CLIENT, encoding="utf-8")
    return path


def run_node(
    node: str, client: Path, env: dict[str, str], requests: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[str]]:
    done = subprocess.run(
        [node, str(client), json.dumps(requests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    return out["results"], out["lookups"]


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host")))
        body = b"another host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_host() -> Iterator[tuple[int, list[tuple[str, str | None]]]]:
    """A loopback HTTP server standing for any other host: (port, the requests it saw)."""
    seen: list[tuple[str, str | None]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1], seen
        finally:
            server.shutdown()
            thread.join()


def test_https_get_and_fetch_reach_the_fake(
    node: str, client: Path, etcd_discovery: EtcdDiscovery
) -> None:
    results, lookups = run_node(
        node,
        client,
        etcd_discovery.env(),
        [("https.get", f"{PUBLIC}/new?size=3"), ("fetch", f"{PUBLIC}/new?size=5")],
    )
    for result in results:
        assert result.get("status") == 200, result
        assert re.fullmatch(rf"{re.escape(PUBLIC)}/{TOKEN}", result["body"]), result
    # Both tokens came from the fake, with the sizes asked for, and nothing else was asked.
    assert [etcd_discovery.token(r["body"]).size for r in results] == [3, 5]
    assert [(c.method, c.path, c.status) for c in etcd_discovery.calls] == [
        ("GET", "/new", 200),
        ("GET", "/new", 200),
    ]
    assert not [h for h in lookups if "etcd.io" in h.lower()], lookups


def test_other_hosts_are_not_redirected(
    node: str,
    client: Path,
    etcd_discovery: EtcdDiscovery,
    other_host: tuple[int, list[tuple[str, str | None]]],
) -> None:
    port, seen = other_host
    results, lookups = run_node(
        node,
        client,
        etcd_discovery.env(),
        [
            ("fetch", f"http://127.0.0.1:{port}/by-address"),
            ("fetch", f"http://localhost:{port}/by-name"),
            ("http.get", f"http://localhost:{port}/by-http-get"),
        ],
    )
    assert [r.get("body") for r in results] == ["another host"] * 3, results
    assert seen == [
        ("/by-address", f"127.0.0.1:{port}"),
        ("/by-name", f"localhost:{port}"),
        ("/by-http-get", f"localhost:{port}"),
    ]
    # The names went to the resolver as usual (which also shows the recording works).
    assert "localhost" in lookups
    assert etcd_discovery.calls == []


def test_a_discovery_host_on_a_port_not_served_fails_here(
    node: str, client: Path, etcd_discovery: EtcdDiscovery
) -> None:
    results, lookups = run_node(
        node,
        client,
        etcd_discovery.env(),
        [("fetch", "https://discovery.etcd.io:8443/new"), ("https.get", f"{PUBLIC}:8443/new")],
    )
    for result in results:
        assert result["code"] == "ECONNREFUSED", result
        assert "discovery.etcd.io:8443 is a discovery host" in result["error"], result
        assert "etcd_discovery_hosts" in result["error"]
    assert lookups == []
    assert etcd_discovery.calls == []


# -- the front alone: an http:// discovery host, a proxy tunnel, NODE_OPTIONS ---------------

HOSTS = ("https://discovery.etcd.io", "http://discovery.internal:8087")


@pytest.fixture(scope="module")
def front() -> Iterator[DiscoveryFront]:
    with DiscoveryServer() as server, DiscoveryFront(server, HOSTS) as front:
        yield front


def test_an_http_discovery_host_is_served(node: str, client: Path, front: DiscoveryFront) -> None:
    url = "http://discovery.internal:8087/new?size=2"
    results, lookups = run_node(node, client, child_env(front), [("http.get", url), ("fetch", url)])
    for result in results:
        assert result.get("status") == 200, result
        # The Host header went through unchanged: /new hands out the URL asked for.
        assert re.fullmatch(rf"http://discovery\.internal:8087/{TOKEN}", result["body"]), result
    assert lookups == []


#: A CONNECT tunnel through HTTPS_PROXY, then TLS over it (what a proxy-aware Node client
#: does, e.g. NODE_USE_ENV_PROXY=1 where Node has it): the preload must leave the tunnel's
#: connection (to loopback) and the TLS over the existing socket alone.
TUNNEL = r"""
const http = require('node:http');
const https = require('node:https');
const tls = require('node:tls');
const proxy = new URL(process.env.HTTPS_PROXY);
http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT',
               path: 'discovery.etcd.io:443' })
  .on('connect', (res, socket) => {
    https.get('https://discovery.etcd.io/new?size=4', {
      defaultPort: 443, // no agent: the Host header would otherwise name port 80
      createConnection: () => tls.connect({ socket, servername: 'discovery.etcd.io' }),
    }, (reply) => {
      let body = '';
      reply.on('data', (chunk) => { body += chunk; });
      reply.on('end', () => { process.stdout.write(body); socket.destroy(); });
    });
  })
  .end();
"""


def test_a_proxy_tunnel_is_left_to_the_front(node: str, front: DiscoveryFront) -> None:
    done = subprocess.run(
        [node, "-e", TUNNEL], env=child_env(front), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"{re.escape(PUBLIC)}/{TOKEN}", done.stdout), done.stdout


def test_node_options_keeps_the_callers_and_quotes_the_path(
    node: str, client: Path, front: DiscoveryFront, tmp_path: Path
) -> None:
    # A preload at a path with a space, a double quote and a backslash, after the
    # caller's own --require: both load.
    odd = tmp_path / 'a "dir" with\\ space'
    odd.mkdir()
    preload = odd / NODE_PRELOAD.name
    shutil.copyfile(NODE_PRELOAD, preload)
    own = tmp_path / "own.cjs"
    own.write_text("globalThis.ownPreloadRan = true;\n")
    callers = f'--require "{own}"'
    options = node_options(callers, preload)
    assert options.startswith(callers + " --require ")
    assert node_options(options, preload) == options  # appended once
    env = {**child_env(front), "NODE_OPTIONS": options}
    script = (
        "const net = require('node:net');"
        "const mark = Symbol.for('pytest-etcd-discovery.node-preload');"
        "process.stdout.write(JSON.stringify([globalThis.ownPreloadRan === true,"
        " net.Socket.prototype[mark] === true]));"
    )
    done = subprocess.run([node, "-e", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, True]
    results, _ = run_node(node, client, env, [("fetch", f"{PUBLIC}/new?size=3")])
    assert results[0].get("status") == 200, results


def test_the_preload_does_nothing_without_its_variables(node: str, front: DiscoveryFront) -> None:
    env = {k: v for k, v in child_env(front).items() if not k.startswith("PYTEST_ETCD_DISCOVERY_")}
    script = (
        "const net = require('node:net');"
        "process.stdout.write(String(net.Socket.prototype[Symbol.for("
        "'pytest-etcd-discovery.node-preload')] === true));"
    )
    done = subprocess.run([node, "-e", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "false"


def test_esm_imports_are_covered(node: str, etcd_discovery: EtcdDiscovery) -> None:
    # An ES module's named imports of node:https and the global fetch.
    script = (
        "import { get } from 'node:https';"
        "const viaGet = await new Promise((ok, fail) => get("
        f"'{PUBLIC}/new?size=3', (r) => {{ let b = ''; r.on('data', (c) => b += c);"
        " r.on('end', () => ok(b)); }).on('error', fail));"
        f"const viaFetch = await (await fetch('{PUBLIC}/new?size=3')).text();"
        "process.stdout.write(JSON.stringify([viaGet, viaFetch]));"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        env=etcd_discovery.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for body in json.loads(done.stdout):
        assert re.fullmatch(rf"{re.escape(PUBLIC)}/{TOKEN}", body), body
    assert len(etcd_discovery.calls) == 2


def test_the_env_file_serves_node(
    node: str, client: Path, front: DiscoveryFront, tmp_path: Path
) -> None:
    # What `etcd-discovery-fake --env-file` writes, sourced by a shell suite.
    env_file = tmp_path / "fake.env"
    write_env_file(str(env_file), env_additions(front, {"NODE_OPTIONS": "--no-warnings"}))
    requests = json.dumps([("fetch", f"{PUBLIC}/new?size=3")])
    script = 'set -a; . "$1"; set +a; exec "$2" "$3" "$4"'
    done = subprocess.run(
        ["bash", "-c", script, "-", str(env_file), node, str(client), requests],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert re.fullmatch(rf"{re.escape(PUBLIC)}/{TOKEN}", result.get("body", "")), result


def test_worker_threads_are_covered(node: str, etcd_discovery: EtcdDiscovery) -> None:
    # A worker has its own modules: the preload must patch them there too.
    worker = (
        "const { parentPort } = require('node:worker_threads');"
        f"fetch('{PUBLIC}/new?size=3').then((r) => r.text()).then("
        "(t) => parentPort.postMessage(t), (e) => parentPort.postMessage(String(e.cause || e)));"
    )
    script = (
        "const { Worker } = require('node:worker_threads');"
        f"const w = new Worker({json.dumps(worker)}, {{ eval: true }});"
        "w.on('message', (m) => { process.stdout.write(m); w.terminate(); });"
    )
    done = subprocess.run(
        [node, "-e", script], env=etcd_discovery.env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"{re.escape(PUBLIC)}/{TOKEN}", done.stdout), done.stdout
    assert [(c.method, c.path) for c in etcd_discovery.calls] == [("GET", "/new")]
