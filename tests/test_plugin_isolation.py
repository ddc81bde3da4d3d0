"""Nothing a test started may touch a later test's state (issue #12, item 7).

A request still held by the fake when its test ends (a delay, a slow callback) used to
continue into the next test's fresh store. These tests hold one on purpose with events,
so the late request arrives after the next test started, every run.
"""

from __future__ import annotations

import pytest
from test_plugin import run

#: Test one holds a PUT (live or in-process) in a ``callback`` fault until test two releases
#: it; test two then checks its own state and the first test's journal.
HELD_ACROSS_TESTS = """
import threading

import pytest
import requests

held = threading.Event()
release = threading.Event()
shared = {}

def hold(request):
    held.set()
    release.wait(60)

@pytest.fixture
def base(etcd_discovery):
    return etcd_discovery.url if TRANSPORT == "live" else "https://discovery.etcd.io"

def test_one(etcd_discovery, base):
    token_url = etcd_discovery.new_token(3, base_url=base)
    etcd_discovery.faults.add(action="callback", on_match=hold, method="PUT")

    def put():
        try:
            shared["reply"] = requests.put(f"{token_url}/late", data={"value": "x"}, timeout=60)
        except requests.ConnectionError as exc:
            shared["error"] = exc

    with etcd_discovery.intercept():
        thread = threading.Thread(target=put)
        thread.start()
        assert held.wait(60)
    shared["thread"], shared["disco"] = thread, etcd_discovery

def test_two(etcd_discovery):
    release.set()
    shared["thread"].join(60)
    assert not shared["thread"].is_alive()
    # Test two's store and journal saw nothing of it.
    assert etcd_discovery.tokens() == []
    assert etcd_discovery.app.store.index == 0
    assert etcd_discovery.calls == []
    # The late request was refused like a server gone away, and test one's journal has it.
    assert "reply" not in shared, shared["reply"].text
    assert isinstance(shared["error"], requests.ConnectionError)
    (late,) = [c for c in shared["disco"].calls if c.method == "PUT"]
    assert late.path.endswith("/late") and late.status == 0
"""


@pytest.mark.parametrize("transport", ["live", "inprocess"])
def test_a_request_held_past_its_test_never_reaches_the_next_one(
    pytester: pytest.Pytester, transport: str
) -> None:
    pytester.makepyfile(f"TRANSPORT = {transport!r}\n" + HELD_ACROSS_TESTS)

    run(pytester).assert_outcomes(passed=2)


#: A handle kept past its test and turned on and off in a later one: the later test's
#: interception stays on (each test's handle reuses its stack's interceptor, so the kept
#: one must not stop it).
KEPT_HANDLE = """
import requests

kept = []

def test_one(etcd_discovery):
    kept.append(etcd_discovery)

def test_two(etcd_discovery):
    (old,) = kept
    with old.intercept():
        assert requests.get("https://discovery.etcd.io/new?size=2", timeout=5).ok
    assert etcd_discovery.intercepting and not old.intercepting
    token_url = requests.get("https://discovery.etcd.io/new?size=3", timeout=5).text
    assert etcd_discovery.token(token_url).size == 3
    old.start_intercept()
    old.stop_intercept()
    assert etcd_discovery.intercepting
    assert requests.get(token_url, timeout=5).ok

def test_three():
    # Refused again once no test serves the host.
    try:
        requests.get("https://discovery.etcd.io/new?size=1", timeout=5)
    except requests.ConnectionError as exc:
        assert "refused to look up" in str(exc)
    else:
        raise AssertionError("served outside a test using the fixture")
"""


def test_a_kept_handle_leaves_the_current_tests_interception_on(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(KEPT_HANDLE)
    run(pytester).assert_outcomes(passed=3)
