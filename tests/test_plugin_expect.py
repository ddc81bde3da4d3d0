"""The expectation helpers and strict mode, from the outside with ``pytester``: each
helper's passing case and its exact failure text, traceback hiding, the report section."""

from __future__ import annotations

import re

import pytest
from test_plugin import PLUGIN_ARGS


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN_ARGS, "-p", "no:randomly", *args)


def hides_its_frames(result: pytest.RunResult) -> None:
    # __tracebackhide__: the failure points at the test's line, not into the plugin.
    result.stdout.no_fnmatch_line("*pytest_etcd_discovery/_etcd_discovery.py*")
    result.stdout.no_fnmatch_line("*pytest_etcd_discovery/_service/faults.py*")


REQUESTED = """
import pytest
import requests

PUBLIC = "https://discovery.etcd.io"


@pytest.mark.etcd_discovery
def test_passes(etcd_discovery):
    token_url = requests.get(PUBLIC + "/new?size=3", timeout=5).text
    requests.get(token_url + "/_config/size", timeout=5)
    calls = etcd_discovery.assert_requested(route="new")
    assert [c.query for c in calls] == ["size=3"]
    etcd_discovery.assert_requested(1, method="get", token=token_url, status=200)
    etcd_discovery.assert_requested(0, method="PUT")
    etcd_discovery.assert_not_requested(method="PUT")
    etcd_discovery.assert_not_requested(route="size", status=range(400, 600))


@pytest.mark.etcd_discovery
def test_times(etcd_discovery):
    token_url = requests.get(PUBLIC + "/new?size=3", timeout=5).text
    requests.get(token_url + "/_config/size", timeout=5)
    requests.put(PUBLIC + "/new", timeout=5)
    requests.get(PUBLIC + "/health", timeout=5)
    etcd_discovery.assert_requested(2, method="GET", route="new")


@pytest.mark.etcd_discovery
def test_none_matched(etcd_discovery):
    requests.get(PUBLIC + "/robots.txt", timeout=5)
    etcd_discovery.assert_requested(route="new", status=200)


@pytest.mark.etcd_discovery(intercept=False)
def test_empty_journal(etcd_discovery):
    etcd_discovery.assert_requested(path="/new")


@pytest.mark.etcd_discovery
def test_not_requested(etcd_discovery):
    requests.get(PUBLIC + "/new?size=3", timeout=5)
    requests.get(PUBLIC + "/new?size=5", timeout=5)
    requests.get(PUBLIC + "/health", timeout=5)
    etcd_discovery.assert_not_requested(route="new")
"""


def test_assert_requested_and_not_requested(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(REQUESTED)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_times _*",
            '>       etcd_discovery.assert_requested(2, method="GET", route="new")',
            "E       AssertionError: etcd discovery: expected exactly 2 requests matching "
            "GET route=new, got 1",
            "E         matched (1):",
            "E           inprocess GET    /new?size=3 -> 200",
            "E         closest requests that did not match (3 of 3):",
            # As different (one criterion each): in journal order.
            "E           inprocess GET    /*/_config/size -> 200  <- route size, not new",
            "E           inprocess PUT    /new -> 200  <- method PUT, not GET",
            "E           inprocess GET    /health -> 200  <- route health, not new",
            "",
            "test_assert_requested_and_not_requested.py:*: AssertionError",
            "*_ test_none_matched _*",
            "*",
            "E       AssertionError: etcd discovery: expected at least 1 request matching "
            "route=new status=200, got 0",
            "E         closest requests that did not match (1 of 1):",
            "E           inprocess GET    /robots.txt -> 200  <- route robots, not new",
            "",
            "*_ test_empty_journal _*",
            "*",
            "E       AssertionError: etcd discovery: expected at least 1 request matching "
            "path=/new, got 0",
            "E         the journal is empty: no request reached the fake in this test",
            "E         (interception is off: requests to https://discovery.etcd.io do not "
            "reach the fake)",
            "",
            "*_ test_not_requested _*",
            "*",
            '>       etcd_discovery.assert_not_requested(route="new")',
            "E       AssertionError: etcd discovery: expected no request matching route=new, "
            "got 2:",
            "E           inprocess GET    /new?size=3 -> 200",
            "E           inprocess GET    /new?size=5 -> 200",
            "",
        ],
        consecutive=False,
    )
    hides_its_frames(result)
    # The failure comes with the usual "etcd discovery" section.
    result.stdout.fnmatch_lines(["*- etcd discovery -*", "last requests (3 of 3):"])


def test_closest_requests_are_the_least_different(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.mark.etcd_discovery
        def test_closest(etcd_discovery):
            for path in ("/robots.txt", "/metrics", "/health", "/new", "/nope"):
                requests.put("https://discovery.etcd.io" + path, timeout=5)
            for _ in range(3):
                requests.get("https://discovery.etcd.io/robots.txt", timeout=5)
            etcd_discovery.assert_requested(method="PUT", path="/news", status=200)
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: etcd discovery: expected at least 1 request matching "
            "PUT path=/news status=200, got 0",
            "E         closest requests that did not match (5 of 8):",
            "E           inprocess PUT    /new -> 200  <- path is not /news",
            "E           inprocess PUT    /metrics -> 200  <- path is not /news",
            "E           inprocess PUT    /health -> 200  <- path is not /news",
            "E           inprocess PUT    /robots.txt -> 200  <- path is not /news",
            "E           inprocess PUT    /nope -> 404  <- path is not /news; status 404, not 200",
            "",
        ]
    )


REGISTERED = """
import pytest

MEMBERS = ["infra0", "infra1", "infra2"]


@pytest.mark.etcd_discovery(members=MEMBERS, state="started")
def test_passes(etcd_discovery, etcd_discovery_url):
    view = etcd_discovery.assert_registered(etcd_discovery_url, MEMBERS, state="started")
    assert view.full
    etcd_discovery.assert_registered(etcd_discovery_url, MEMBERS)


@pytest.mark.etcd_discovery(members=MEMBERS)
def test_order(etcd_discovery, etcd_discovery_url):
    etcd_discovery.assert_registered(etcd_discovery_url, ["infra1", "infra0", "infra2"])


@pytest.mark.etcd_discovery(size=3, members=["infra0", "infra2"])
def test_missing_extra_and_state(etcd_discovery, etcd_discovery_url):
    etcd_discovery.assert_registered(etcd_discovery_url, ["infra0", "infra1"], state="started")


def test_no_such_token(etcd_discovery):
    etcd_discovery.assert_registered(
        etcd_discovery.url + "/0123456789abcdef0123456789abcdef", ["infra0"]
    )
"""


def test_assert_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(REGISTERED)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*_ test_order _*",
            "*",
            "E       AssertionError: etcd discovery: token http://127.0.0.1:*/* holds members "
            "infra0, infra1, infra2; expected infra1, infra0, infra2 (in registration order)",
            "E         the same names, registered in another order",
            "E         the token now:",
            "E           http://127.0.0.1:*/*  size=3  members=3/3  _state=-  index=4",
            "E             1. infra0       id=*  createdIndex=2  no ttl  http://10.0.0.1:2380",
            "E             2. infra1       id=*  createdIndex=3  no ttl  http://10.0.0.2:2380",
            "E             3. infra2       id=*  createdIndex=4  no ttl  http://10.0.0.3:2380",
            "",
            "*_ test_missing_extra_and_state _*",
            "*",
            "E       AssertionError: etcd discovery: token http://127.0.0.1:*/* holds members "
            "infra0, infra2; expected infra0, infra1 (in registration order) "
            "with _state 'started'",
            "E         missing: infra1",
            "E         not expected: infra2",
            "E         _state is None, expected 'started'",
            "E         the token now:",
            "E           http://127.0.0.1:*/*  size=3  members=2/3  _state=-  index=3",
            "*_ test_no_such_token _*",
            "*",
            "E       AssertionError: etcd discovery: token http://127.0.0.1:*/"
            "0123456789abcdef0123456789abcdef cannot be read: GET http://127.0.0.1:*/"
            '0123456789abcdef0123456789abcdef -> 404: {"errorCode":100,"message":"Key not '
            'found",*}',
        ],
        consecutive=False,
    )
    hides_its_frames(result)


FIRED = """
import pytest
import requests

PUBLIC = "https://discovery.etcd.io"


@pytest.mark.etcd_discovery_fault(503, route="new", times=1)
def test_passes(etcd_discovery):
    assert requests.get(PUBLIC + "/new", timeout=5).status_code == 503
    assert requests.get(PUBLIC + "/new", timeout=5).status_code == 200
    etcd_discovery.faults.assert_all_fired()


@pytest.mark.etcd_discovery_fault(503, route="size", method="GET")
def test_some_never_fired(etcd_discovery):
    # Tried in order: the drop rule counts the first two, the 500 answers them.
    etcd_discovery.faults.drop(route="new", nth=3)
    etcd_discovery.faults.fail(500, route="new")
    etcd_discovery.faults.delay(0.1, path="/health", name="slow health")
    requests.get(PUBLIC + "/new", timeout=5)
    requests.get(PUBLIC + "/new", timeout=5)
    etcd_discovery.faults.assert_all_fired()
"""


def test_faults_assert_all_fired(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FIRED)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       etcd_discovery.faults.assert_all_fired()",
            "E       AssertionError: etcd discovery: 3 of 4 fault rules never fired:",
            "E         503 GET size  (no request matched it)",
            "E         drop new  (2 requests matched it; it waits for request number 3)",
            "E         slow health  (no request matched it)",
            "",
        ]
    )
    hides_its_frames(result)


STRICT = """
import threading

import pytest
import requests

PUBLIC = "https://discovery.etcd.io"


@pytest.mark.etcd_discovery(strict=True)
@pytest.mark.etcd_discovery_fault(503, route="new", times=1)
def test_clean(etcd_discovery):
    assert requests.get(PUBLIC + "/new", timeout=5).status_code == 503


@pytest.mark.etcd_discovery(strict=True)
@pytest.mark.etcd_discovery_fault(503, route="size", name="size outage")
def test_unfired_rule(etcd_discovery):
    requests.get(PUBLIC + "/new", timeout=5)


@pytest.mark.etcd_discovery(strict=True, profile="etcd-v2")
def test_cut_off(etcd_discovery, etcd_discovery_url):
    # An etcd-v2 long poll answers 200 at once; its body is still to come.
    token = etcd_discovery_url.rsplit("/", 1)[-1]
    url = PUBLIC + "/" + token + "?wait=true&recursive=true"
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 30}).start()
    assert etcd_discovery.app.store.wait_for_watchers(1, timeout=10)


@pytest.mark.etcd_discovery(strict=True, profile="discoveryserver")
def test_cut_off_pending(etcd_discovery, etcd_discovery_url):
    # discoveryserver answers a long poll only once it has the event: still no status.
    url = etcd_discovery_url + "?wait=true"
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 30}).start()
    assert etcd_discovery.app.store.wait_for_watchers(1, timeout=10)


@pytest.mark.etcd_discovery(strict=True)
@pytest.mark.etcd_discovery_fault(503, route="size")
def test_failed_anyway(etcd_discovery):
    assert False, "the test's own failure"


@pytest.mark.etcd_discovery_fault(503, route="size")
def test_not_strict(etcd_discovery):
    pass
"""


def test_strict_mode_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STRICT)
    result = run(pytester, "-rA")
    # A failing test is not also failed by strict mode; a test without it passes.
    result.assert_outcomes(passed=5, failed=1, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_unfired_rule _*",
            "etcd discovery strict mode: 1 problem at the end of the test:",
            "  fault rule never fired: size outage  (no request matched it)",
            "*- etcd discovery -*",
            "etcd discovery strict mode: 1 problem at the end of the test:",
            "  fault rule never fired: size outage  (no request matched it)",
            "",
            "mode: fake  profile: etcd-v2  live url: http://127.0.0.1:*",
            "*",
            "last requests (1 of 1):",
            "  inprocess GET    /new -> 200",
            "*_ ERROR at teardown of test_cut_off _*",
            "etcd discovery strict mode: 1 problem at the end of the test:",
            "  request cut off by the end of the test: inprocess GET    "
            "/*?wait=true&recursive=true -> 200 (still streaming)",
            "*- etcd discovery -*",
            "*_ ERROR at teardown of test_cut_off_pending _*",
            "etcd discovery strict mode: 1 problem at the end of the test:",
            "  request cut off by the end of the test: live      GET    /*?wait=true -> pending",
        ],
        consecutive=False,
    )
    result.stdout.no_fnmatch_line("*ERROR at teardown of test_failed_anyway*")
    result.stdout.no_fnmatch_line("*ERROR at teardown of test_clean*")


STRICT_SUITE = """
import pytest


@pytest.mark.etcd_discovery_fault(503, route="size")
def test_strict_by_ini(etcd_discovery):
    pass


@pytest.mark.etcd_discovery(strict=False)
@pytest.mark.etcd_discovery_fault(503, route="size")
def test_opted_out(etcd_discovery):
    pass


@pytest.mark.etcd_discovery(strict="yes")
def test_bad_value(etcd_discovery):
    pass
"""


@pytest.mark.parametrize("how", ["ini", "option"])
def test_strict_mode_for_a_suite(pytester: pytest.Pytester, how: str) -> None:
    pytester.makepyfile(STRICT_SUITE)
    if how == "ini":
        pytester.makeini("[pytest]\netcd_discovery_strict = true\n")
        result = run(pytester)
    else:
        result = run(pytester, "--etcd-discovery-strict")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_strict_by_ini _*",
            "  fault rule never fired: 503 size  (no request matched it)",
            "*_ ERROR at setup of test_bad_value _*",
            "@etcd_discovery(strict='yes'): expected True or False",
        ],
        consecutive=False,
    )
    result.stdout.no_fnmatch_line("*ERROR at teardown of test_opted_out*")


def test_plain_asserts_on_the_journal_read_well(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.mark.etcd_discovery
        def test_plain(etcd_discovery):
            requests.get("https://discovery.etcd.io/health", timeout=5)
            assert etcd_discovery.calls.filter(route="new")
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    # Regexes: fnmatch would read the brackets as character classes.  pytest before 8
    # spells a bound method out in full ("<bound method CallList.filter of [...]>").
    method = r"(filter|<bound method CallList\.filter of \[<GET /health -> 200 \(inprocess\)>\]>)"
    result.stdout.re_match_lines(
        [
            re.escape("E       AssertionError: assert []") + "$",
            re.escape("E        +  where [] = ") + method + re.escape("(route='new')") + "$",
            re.escape("E        +    where ")
            + method
            + re.escape(" = [<GET /health -> 200 (inprocess)>].filter")
            + "$",
            re.escape("E        +      where [<GET /health -> 200 (inprocess)>] = <EtcdDiscovery")
            + r" fake http://127\.0\.0\.1:\d+ profile=etcd-v2>\.calls$",
        ]
    )
