"""Fault injection (pytest_etcd_discovery._service.faults): matching, counting, the real bodies,
delays, dropped connections on both transports, plan files, the CLI option, the marker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from unitutil import wait_until

from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.faults import (
    FaultError,
    FaultPlan,
    FaultRule,
    load_plan,
    rule_from_marker,
)
from pytest_etcd_discovery._transport.intercept import intercept
from pytest_etcd_discovery._transport.server import DiscoveryServer

REPO = Path(__file__).resolve().parent.parent
PUBLIC = "https://discovery.etcd.io"


@pytest.fixture
def server() -> Iterator[DiscoveryServer]:
    with DiscoveryServer() as srv:
        yield srv


@pytest.fixture
def plan(server: DiscoveryServer) -> FaultPlan:
    return FaultPlan.of(server.app)


@pytest.fixture
def token(server: DiscoveryServer) -> str:
    return server.app.new_token(3)


def get(url: str, timeout: float = 10) -> requests.Response:
    return requests.get(url, timeout=timeout)


# -- the bodies the real services send ---------------------------------------------------


def test_503_is_go_http_error_text(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    plan.fail(503)
    reply = get(f"{server.url}/{token}")
    assert reply.status_code == 503
    assert reply.text == "Service Unavailable\n"
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_500_on_the_keys_api_is_etcd_raft_internal_error(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.fail(500, method="PUT")
    reply = requests.put(f"{server.url}/{token}/m1", data={"value": "x"}, timeout=10)
    assert reply.status_code == 500
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["X-Etcd-Index"] == "0"
    # v2http.writeKeyError: NewError(EcodeRaftInternal, err.Error(), 0).
    assert reply.json() == {
        "errorCode": 300,
        "message": "Raft Internal Error",
        "cause": "etcdserver: request timed out",
        "index": 0,
    }
    assert reply.text.endswith("}\n")


def test_404_names_the_key_and_412_depends_on_prev_exist(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.fail(404, route="size", times=1)
    plan.fail(412, method="PUT", times=2)
    reply = get(f"{server.url}/{token}/_config/size")
    assert reply.status_code == 404
    assert reply.json()["errorCode"] == 100
    assert reply.json()["cause"] == f"/_etcd/registry/{token}/_config/size"
    created = requests.put(
        f"{server.url}/{token}/m1", data={"value": "x", "prevExist": "f"}, timeout=10
    )
    assert (created.status_code, created.json()["errorCode"]) == (412, 105)
    swapped = requests.put(f"{server.url}/{token}/m1?prevValue=a", data={"value": "x"}, timeout=10)
    assert (swapped.status_code, swapped.json()["errorCode"]) == (412, 101)


def test_discoveryserver_profile_400s_are_its_plain_texts() -> None:
    with DiscoveryServer(profile="discoveryserver") as srv:
        token = srv.app.new_token()
        FaultPlan.of(srv.app).fail(400)
        assert get(f"{srv.url}/{token}").text == "unable to GET token\n"
        put = requests.put(f"{srv.url}/{token}/m", data={"value": "x"}, timeout=10)
        assert (put.status_code, put.text) == (400, "unable to PUT token\n")
        delete = requests.delete(f"{srv.url}/{token}/m", timeout=10)
        assert (delete.status_code, delete.text) == (400, "unable to DELETE token\n")
        new = get(f"{srv.url}/new")
        assert (new.status_code, new.text) == (400, "unable to generate token\n")


def test_explicit_body_and_error_code(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    plan.fail(502, body="<html>bad gateway</html>", times=1)
    plan.fail(500, error_code=301, times=1)
    first = get(f"{server.url}/{token}")
    assert (first.status_code, first.text) == (502, "<html>bad gateway</html>\n")
    second = get(f"{server.url}/{token}")
    assert second.status_code == 500
    assert second.json()["message"] == "During Leader Election"


def test_empty_watch_reply(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    plan.empty_watch(times=1)
    reply = get(f"{server.url}/{token}?wait=true&recursive=true")
    assert reply.status_code == 200
    assert reply.content == b""
    assert "Content-Type" not in reply.headers
    # Not a watch: untouched.
    assert get(f"{server.url}/{token}").json()["action"] == "get"


# -- which requests ----------------------------------------------------------------------


def test_nth_hits_only_that_request(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    rule = plan.fail(503, route="token", nth=3)
    statuses = [get(f"{server.url}/{token}").status_code for _ in range(5)]
    assert statuses == [200, 200, 503, 200, 200]
    assert (rule.seen, rule.fired, rule.exhausted) == (5, 1, True)


def test_nth_with_times_hits_a_run(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    plan.fail(503, nth=2, times=2)
    statuses = [get(f"{server.url}/{token}").status_code for _ in range(5)]
    assert statuses == [200, 503, 503, 200, 200]


def test_times_then_recovery_and_unlimited(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.fail(503, method="GET", times=2)
    assert [get(f"{server.url}/{token}").status_code for _ in range(3)] == [503, 503, 200]
    plan.clear()
    plan.fail(500, route="machine")
    for _ in range(4):
        assert get(f"{server.url}/{token}/x").status_code == 500
    assert get(f"{server.url}/{token}").status_code == 200


def test_route_path_and_method_matching(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.fail(503, path="/*/_config/size", method="GET")
    plan.fail(504, path_regex=r"/m\d$")
    assert get(f"{server.url}/{token}/_config/size").status_code == 503
    assert get(f"{server.url}/{token}/m1").status_code == 504
    assert get(f"{server.url}/{token}/mx").status_code == 404
    assert get(f"{server.url}/new").status_code == 200
    plan.clear()
    plan.fail(503, route="new")
    assert get(f"{server.url}/new").status_code == 503
    assert get(f"{server.url}/health").status_code == 200


@pytest.mark.parametrize("transport", ["live", "inprocess"])
def test_an_unclean_path_is_redirected_before_faults(
    server: DiscoveryServer, plan: FaultPlan, transport: str
) -> None:
    """Go cleans paths before any handler runs: ``//new`` gets the mux's 301 to
    ``/new`` even with a fault on the ``new`` route, and the fault hits ``/new`` itself.
    (tests/conformance compares the redirect with the real service.)"""
    rule = plan.fail(503, route="new")
    base = server.url if transport == "live" else PUBLIC
    with intercept(server.app):
        unclean = requests.get(f"{base}//new", allow_redirects=False, timeout=10)
        clean = requests.get(f"{base}/new", allow_redirects=False, timeout=10)
    assert (unclean.status_code, unclean.headers["Location"]) == (301, "/new")
    assert rule.fired == 1
    assert clean.status_code == 503
    assert [(c.path, c.status, c.fault) for c in server.app.calls] == [
        ("//new", 301, None),
        ("/new", 503, "503 new"),
    ]


def test_first_matching_rule_with_hits_left_wins(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.fail(502, times=1)
    plan.fail(503, times=1)
    assert [get(f"{server.url}/{token}").status_code for _ in range(3)] == [502, 503, 200]


def test_nth_counts_every_matching_request_also_those_an_earlier_rule_answered(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    # Issue #12: nth used to count only the requests that reached its rule, so the 500
    # came third.
    first = plan.fail(503, times=1)
    second = plan.fail(500, nth=2)
    statuses = [get(f"{server.url}/{token}").status_code for _ in range(3)]
    assert statuses == [503, 500, 200]
    assert (first.seen, first.fired, second.seen, second.fired) == (3, 1, 3, 1)


def test_an_nth_taken_by_an_earlier_rule_moves_to_the_next_free_request(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.fail(502, nth=2)
    plan.fail(503, nth=2)
    statuses = [get(f"{server.url}/{token}").status_code for _ in range(4)]
    assert statuses == [200, 502, 503, 200]


def test_counters_are_exact_under_concurrency(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    rule = plan.fail(503, times=50)

    def one(_: int) -> int:
        with requests.Session() as session:
            return session.get(f"{server.url}/{token}", timeout=10).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses.count(503) == 50
    assert statuses.count(200) == 150
    assert (rule.seen, rule.fired) == (200, 50)


def test_fixture_seeding_is_never_faulted(server: DiscoveryServer, plan: FaultPlan) -> None:
    plan.fail(503)
    status, _, body = server.app.answer_url("GET", f"{server.url}/new", transport="fixture")
    assert status == 200, body
    assert get(f"{server.url}/new").status_code == 503


# -- delays and drops --------------------------------------------------------------------


def test_delay_then_normal_answer(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    plan.delay(0.3, times=1)
    start = time.monotonic()
    reply = get(f"{server.url}/{token}")
    assert reply.status_code == 200
    assert time.monotonic() - start >= 0.3
    assert server.app.calls[-1].fault == "delay 0.3s"


def test_delay_past_a_client_timeout_is_a_read_timeout(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.delay(30)
    with pytest.raises(requests.ReadTimeout):
        get(f"{server.url}/{token}", timeout=0.3)
    with intercept(server.app), pytest.raises(requests.ReadTimeout):
        requests.get(f"{PUBLIC}/{token}", timeout=0.3)
    plan.clear()  # releases both waiting requests at once


def test_clear_releases_a_waiting_delay(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.delay(60)
    done = threading.Event()
    result: list[int] = []

    def slow() -> None:
        result.append(get(f"{server.url}/{token}").status_code)
        done.set()

    worker = threading.Thread(target=slow, daemon=True)
    worker.start()
    wait_until(lambda: plan.log, "the request reaches the delay")
    start = time.monotonic()
    plan.clear()
    assert done.wait(5)
    assert time.monotonic() - start < 2
    assert result == [200]


def test_drop_on_the_live_server_closes_the_socket(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.drop(method="PUT", times=1)
    with pytest.raises(requests.ConnectionError):
        requests.put(f"{server.url}/{token}/m1", data={"value": "x"}, timeout=10)
    # The server keeps serving, and the dropped PUT changed nothing.
    assert get(f"{server.url}/{token}/m1").status_code == 404
    call = next(c for c in server.app.calls if c.method == "PUT")
    assert (call.status, call.fault, call.transport) == (0, "drop PUT", "live")


def test_drop_in_process_raises_what_requests_raises(
    server: DiscoveryServer, plan: FaultPlan, token: str
) -> None:
    plan.drop(times=2)
    with requests.Session() as session, pytest.raises(requests.ConnectionError) as live:
        session.get(f"{server.url}/{token}", timeout=10)
    with intercept(server.app), pytest.raises(requests.ConnectionError) as inproc:
        requests.get(f"{PUBLIC}/{token}")
    # Same exception type and the same wording as the real socket drop.
    assert type(inproc.value) is type(live.value)
    assert "Remote end closed connection without response" in str(inproc.value)
    assert "Remote end closed connection without response" in str(live.value)
    assert [c.transport for c in server.app.calls if c.fault] == ["live", "inprocess"]


def test_call_rule_runs_its_callback(server: DiscoveryServer, plan: FaultPlan, token: str) -> None:
    seen: list[str] = []
    plan.add(action="callback", route="size", on_match=lambda request: seen.append(request.path))
    assert get(f"{server.url}/{token}/_config/size").status_code == 200
    assert seen == [f"/{token}/_config/size"]


# -- rules and plan files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "explode"}, "unknown fault action"),
        ({"status": 42}, "must be 100-599"),
        ({"status": 999}, "must be 100-599"),
        ({"status": True}, "must be an integer"),
        ({"path_regex": "(unclosed"}, "bad regex"),
        ({"path": "_config/size"}, "must start with '/'"),
        ({"path": 3}, "glob string or a regex"),
        ({"method": "FETCH"}, "unknown fault method 'FETCH'"),
        ({"method": ["GET", 1]}, "unknown fault method 1"),
        ({"method": []}, "a method name or a list"),
        ({"delay": float("inf")}, "delay must be a number of seconds from 0 to 86400"),
        ({"delay": float("nan")}, "delay must be"),
        ({"delay": 1e308}, "delay must be"),
        ({"delay": "6"}, "delay must be"),
        ({"body": 503}, "body must be a string"),
        ({"name": ["x"]}, "name must be a string"),
        ({"nth": True}, "positive integer"),
        ({"error_code": "100"}, "error_code must be a positive integer"),
        ({"action": "drop", "status": 503}, "takes no status"),
        ({"route": "tokens"}, "unknown route"),
        ({"nth": 0}, "positive integer"),
        ({"times": -1}, "positive integer"),
        ({"delay": -1.0}, "delay must be"),
        ({"action": "call"}, "needs on_match"),
        ({"path": "/x", "path_regex": "x"}, "not both"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FaultError, match=message):
        FaultRule(**kwargs)  # type: ignore[arg-type]


def test_describe() -> None:
    assert FaultRule(status=503, method="GET", route="size").describe() == "503 GET size"
    assert FaultRule(action="drop", path="/*/x").describe() == "drop /*/x"
    assert FaultRule(status=500, delay=6).describe() == "500 after 6s"
    assert FaultRule(action="empty", name="gc").describe() == "gc"


def test_json_and_toml_plans(tmp_path: Path) -> None:
    json_file = tmp_path / "plan.json"
    json_file.write_text(
        json.dumps({"faults": [{"status": 503, "route": "size", "times": 2}, {"action": "drop"}]})
    )
    toml_file = tmp_path / "plan.toml"
    toml_file.write_text(
        '[[faults]]\nstatus = 500\nmethod = ["PUT"]\nnth = 1\n\n'
        '[[faults]]\naction = "delay"\ndelay = 6\npath = "/*/_config/size"\n'
    )
    from_json = load_plan(json_file)
    assert [r.describe() for r in from_json.rules] == ["503 size", "drop"]
    from_toml = load_plan(toml_file)
    assert [r.describe() for r in from_toml.rules] == ["500 PUT", "delay 6s /*/_config/size"]
    assert from_toml.rules[0].times == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.json", "{not json", "cannot parse"),
        ("a.toml", "[[faults]\n", "cannot parse"),
        ("a.json", '{"rules": []}', "unknown top-level"),
        ("a.json", '{"faults": [{"colour": "red"}]}', "unknown fault fields"),
        ("a.json", '{"faults": "503"}', "a list"),
        ("a.json", '{"faults": [{"status": 503}, {"path_regex": "["}]}', "fault 2: .*bad regex"),
        ("a.json", '{"faults": [{"delay": 1e999}]}', "fault 1: fault delay must be"),
        ("a.json", '{"faults": [{"body": {"x": 1}}]}', "body must be a string"),
        ("a.json", '{"faults": [{"status": 999}]}', "must be 100-599"),
        ("a.json", '{"faults": [{"method": "GETT"}]}', "unknown fault method"),
        ("a.json", '{"faults": [{"path": "new"}]}', "must start with '/'"),
        ("a.toml", "[[faults]]\ndelay = nan\n", "delay must be"),
        pytest.param(
            "a.json",
            json.dumps({"faults": [{"status": 503}] * 1001}),
            "at most 1000 rules",
            id="1001-rules",
        ),
    ],
)
def test_bad_plan_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FaultError, match=message):
        load_plan(path)


def test_plan_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(b'{"faults": [{"name": "caf\xe9"}]}')
    with pytest.raises(FaultError, match=r"not UTF-8 \(byte 25\)"):
        load_plan(path)


def test_a_plan_holds_at_most_max_rules() -> None:
    plan = FaultPlan()
    for _ in range(1000):
        plan.fail(503)
    with pytest.raises(FaultError, match="at most 1000 rules"):
        plan.fail(503)
    assert len(plan) == 1000


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="cannot read"):
        load_plan(tmp_path / "nope.json")


def test_marker_arguments() -> None:
    assert rule_from_marker((503,), {"route": "size"}).describe() == "503 size"
    assert rule_from_marker((), {"action": "drop"}).describe() == "drop"
    with pytest.raises(FaultError, match="at most one"):
        rule_from_marker((503, 500), {})
    with pytest.raises(FaultError, match="twice"):
        rule_from_marker((503,), {"status": 500})


def test_plan_of_installs_once() -> None:
    app = DiscoveryApp()
    plan = FaultPlan.of(app)
    assert FaultPlan.of(app) is plan
    assert app.faults is plan
    plan.uninstall(app)
    assert FaultPlan.of(app) is not plan


# -- the standalone command --------------------------------------------------------------


def test_cli_faults_option(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[[faults]]\nstatus = 503\nroute = "new"\ntimes = 1\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_etcd_discovery", "--port", "0", "--faults", str(plan_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        first = get(f"{url}/new")
        assert (first.status_code, first.text) == (503, "Service Unavailable\n")
        assert get(f"{url}/new").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"faults": [{"status": "x"}]}', "fault status must be an integer"),
        (b'{"faults": [{"path_regex": "("}]}', "bad regex"),
        (b'{"faults": [{"delay": 1e308}]}', "delay must be"),
        (b'{"faults": [{"status": 999}]}', "must be 100-599"),
        (b'{"faults": [{"body": 1}]}', "body must be a string"),
        (b'{"faults": [{"method": "GETT"}]}', "unknown fault method"),
        (b'{"faults": [{"path": "x"}]}', "must start with '/'"),
        (b'{"faults": [{"name": "\xff"}]}', "not UTF-8"),
    ],
)
def test_cli_refuses_a_bad_plan_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_etcd_discovery", "--port", "0", "--faults", str(plan_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("etcd-discovery-fake: error: ")
    assert message in line


# -- the plugin: fixture API and marker --------------------------------------------------

PLUGIN_TESTS = """
import pytest
import requests

PUBLIC = "https://discovery.etcd.io"

def test_api(etcd_discovery):
    url = etcd_discovery.new_token(3)
    etcd_discovery.faults.fail(503, route="size", times=1)
    assert requests.get(url + "/_config/size", timeout=5).status_code == 503
    assert requests.get(url + "/_config/size", timeout=5).status_code == 200
    faulted = [c for c in etcd_discovery.calls if c.fault]
    assert [(c.status, c.fault) for c in faulted] == [(503, "503 size")]

def test_cleared_between_tests(etcd_discovery):
    url = etcd_discovery.new_token(3)
    assert requests.get(url + "/_config/size", timeout=5).status_code == 200
    assert len(etcd_discovery.faults) == 0

@pytest.mark.etcd_discovery_fault(503, method="GET", times=1)
@pytest.mark.etcd_discovery_fault(action="drop", method="PUT")
def test_marker(etcd_discovery):
    token = etcd_discovery.new_token(1, base_url=PUBLIC)
    assert requests.get(token, timeout=5).status_code == 503
    assert requests.get(token, timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.put(token + "/m", data={"value": "x"}, timeout=5)
    assert [c.fault for c in etcd_discovery.calls] == ["503 GET", None, "drop PUT"]

@pytest.mark.etcd_discovery_fault(503, colour="red")
def test_bad_marker(etcd_discovery):
    pass
"""


def test_plugin_fixture_and_marker(pytester: pytest.Pytester) -> None:
    from test_plugin import PLUGIN_ARGS

    pytester.makepyfile(PLUGIN_TESTS)
    result = pytester.runpytest(*PLUGIN_ARGS, "-p", "no:randomly", "--strict-markers")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*unknown fault fields*colour*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    from test_plugin import PLUGIN_ARGS

    result = pytester.runpytest(*PLUGIN_ARGS, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.etcd_discovery_fault(status=503*"])
