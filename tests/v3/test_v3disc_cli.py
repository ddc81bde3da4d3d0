"""``etcd-discovery-fake --v3-port``: the command serves the etcd v3 API for v3 discovery."""

from __future__ import annotations

import queue
import re
import sys
from collections.abc import Callable

import pydiscovery
import pytest
import requests
from test_cli import WAIT, Fake, run
from v3disc_util import FAKE, Endpoint, put

__all__ = ["run"]  # the command's fixture, imported for these tests

V3_LINE = re.compile(r"etcd v3: http://(127\.0\.0\.1:\d+)\n")


def test_the_command_serves_v3_discovery(run: Callable[..., Fake]) -> None:
    fake = run("--port", "0", "--v3-port", "0")
    url = fake.url()
    try:
        line = fake.lines.get(timeout=WAIT)
    except queue.Empty:
        pytest.fail("no 'etcd v3:' line in time")
    assert line is not None, fake.stop_output()
    match = V3_LINE.fullmatch(line)
    assert match, line
    endpoint = match[1]
    put(Endpoint(FAKE, endpoint), "/_etcd/registry/tok/_config/size", "2")
    expected = "m0=http://127.0.0.1:12380,m1=http://127.0.0.1:12381"
    assert pydiscovery.bootstrap(endpoint, "tok", 3) == [
        f"m0 ok {expected}",
        f"m1 ok {expected}",
        "m2 error discovery: cluster is full",
    ]
    # The control API lists the token as etcd's discovery reads it.
    listed = requests.get(f"{url}/_fake/v3/tokens", timeout=WAIT).json()
    assert listed["endpoints"] == f"http://{endpoint}"
    [token] = listed["tokens"]
    assert (token["token"], token["size"], token["full"]) == ("tok", 2, True)
    assert [m["name"] for m in token["members"]] == ["m0", "m1"]
    assert token["initial_cluster"] == expected
    assert fake.stop() == 0
    code, stderr = fake.finish()
    assert (code, "Traceback" in stderr) == (0, False)


def test_without_the_flag_the_control_api_has_no_v3_tokens(run: Callable[..., Fake]) -> None:
    url = run("--port", "0").url()
    reply = requests.get(f"{url}/_fake/v3/tokens", timeout=WAIT)
    assert (reply.status_code, reply.json()) == (200, {"endpoints": None, "tokens": []})


def test_a_taken_v3_port_is_one_error_line(run: Callable[..., Fake], busy_port: int) -> None:
    fake = run("--port", "0", "--v3-port", str(busy_port))
    code, stderr = fake.finish()
    assert code == 1
    assert "Traceback" not in stderr
    assert (
        stderr.rstrip("\n")
        .splitlines()[-1]
        .startswith("etcd-discovery-fake: error: the etcd v3 API:")
    )


def test_without_grpc_the_flag_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_etcd_discovery.__main__ import main

    monkeypatch.setitem(sys.modules, "grpc", None)  # as if the etcd-v3 extra were not installed
    assert main(["--port", "0", "--v3-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("etcd-discovery-fake: error: ")
    assert "pip install 'pytest-etcd-discovery[etcd-v3]'" in err
