"""Subprocesses reach the fake at https://discovery.etcd.io with ``etcd_discovery.env()``.

``curl`` and ``wget`` run the seed article's flow as a provisioning script would: a token
from ``/new?size=3``, a member registered, ``_state`` set, the token listed, ``_state``
deleted.  Every request is in ``calls``; none left the machine (the proxy is the front).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from dropinutil import require_tool

from pytest_etcd_discovery import EtcdDiscovery

PUBLIC = "https://discovery.etcd.io"
pytestmark = pytest.mark.etcd_discovery

#: A tool's call: (method, url, form body or None) -> stdout.
Run = Callable[[str, str, "str | None"], str]


def _curl(env: dict[str, str]) -> Run:
    curl = require_tool("curl")

    def run(method: str, url: str, body: str | None) -> str:
        argv = [curl, "-sS", "--fail-with-body", "-X", method, url]
        if body is not None:
            argv += ["--data", body]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    return run


def _wget(env: dict[str, str]) -> Run:
    wget = require_tool("wget")

    def run(method: str, url: str, body: str | None) -> str:
        argv = [wget, "-q", "-O-", f"--method={method}", url]
        if body is not None:
            argv.append(f"--body-data={body}")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    return run


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_seed_article_flow(tool: str, etcd_discovery: EtcdDiscovery) -> None:
    env = etcd_discovery.env()
    run = {"curl": _curl, "wget": _wget}[tool](env)

    token_url = run("GET", f"{PUBLIC}/new?size=3", None).strip()
    assert re.fullmatch(re.escape(PUBLIC) + r"/[a-f0-9]{32}", token_url), token_url
    registered = json.loads(run("PUT", f"{token_url}/m1", "value=http://10.0.0.1:7001"))
    assert registered["action"] == "set"
    state = json.loads(run("PUT", f"{token_url}/_state?prevExist=false", "value=started"))
    assert state["node"]["value"] == "started"
    listed = json.loads(run("GET", token_url, None))
    assert [n["value"] for n in listed["node"]["nodes"]] == ["http://10.0.0.1:7001"]
    deleted = json.loads(run("DELETE", f"{token_url}/_state", None))
    assert deleted["action"] == "delete"
    assert etcd_discovery.token(token_url).state is None

    token = token_url.rsplit("/", 1)[1]
    assert [(c.method, c.path.replace(token, "T"), c.status) for c in etcd_discovery.calls] == [
        ("GET", "/new", 200),
        ("PUT", "/T/m1", 201),
        ("PUT", "/T/_state", 201),
        ("GET", "/T", 200),
        ("DELETE", "/T/_state", 200),
    ]


def test_env_points_children_at_the_front(etcd_discovery: EtcdDiscovery) -> None:
    env = etcd_discovery.env({"PATH": "/usr/bin", "NO_PROXY": "*.etcd.io,internal.example"})
    front = etcd_discovery.front
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ETCD_DISCOVERY_PROXY"):
        assert env[key] == front.proxy_url
    for key in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        assert env[key] == etcd_discovery.ca_file
    bundle = Path(etcd_discovery.ca_file).read_text(encoding="utf-8")
    assert front.ca.ca_pem in bundle
    # The system roots are in the bundle too, so other hosts still verify.
    assert bundle.count("BEGIN CERTIFICATE") > 1
    assert Path(env["NODE_EXTRA_CA_CERTS"]).read_text(encoding="utf-8") == front.ca.ca_pem
    # Loopback is never proxied; an entry that would exempt the discovery host is dropped
    # (its lookup would leave the machine), the rest of the caller's are kept.
    assert env["NO_PROXY"] == env["no_proxy"]
    entries = env["NO_PROXY"].split(",")
    assert {"localhost", "127.0.0.1", "::1", "internal.example"} <= set(entries)
    assert "*.etcd.io" not in entries
    assert env["PATH"] == "/usr/bin"
    assert f"ca_certificate = {etcd_discovery.ca_file}" in Path(env["WGETRC"]).read_text()
    # The default base is this process's environment.
    assert etcd_discovery.env()["PATH"] == os.environ["PATH"]


def test_another_host_through_the_proxy_is_tunnelled(etcd_discovery: EtcdDiscovery) -> None:
    # curl, told to proxy even loopback, reaches the fake's own plain live URL through a
    # CONNECT-less absolute-form request: the front forwards it untouched.
    curl = require_tool("curl")
    env = etcd_discovery.env()
    env["NO_PROXY"] = env["no_proxy"] = ""
    done = subprocess.run(
        [curl, "-sS", "--fail-with-body", f"{etcd_discovery.url}/new?size=2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(etcd_discovery.url + "/")
