"""The pytest plugin, tested from the outside with ``pytester``: options, ini values,
fixtures, the marker, the report header and the failure section."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Load the plugin explicitly when the package is not pip-installed (no entry point);
#: loading it twice would clash, hence the check.
PLUGIN_ARGS: tuple[str, ...] = (
    ()
    if any(ep.value == "pytest_etcd_discovery.plugin" for ep in entry_points(group="pytest11"))
    else ("-p", "pytest_etcd_discovery.plugin")
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN_ARGS, *args)


def run_subprocess(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    # A child interpreter must find the package from this checkout.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester.runpytest_subprocess(*PLUGIN_ARGS, *args, timeout=120)


# -- registration, options, header -------------------------------------------------------


def test_help_lists_every_option_and_ini_value(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")

    result.stdout.fnmatch_lines(
        [
            "etcd discovery fake:",
            "*--etcd-discovery-fake*",
            "*--etcd-discovery-profile*",
            "*--etcd-discovery-url=URL*",
            "*--etcd-discovery-keys-api*",
            "*--etcd-discovery-strict*",
        ]
    )
    for ini in (
        "etcd_discovery_fake",
        "etcd_discovery_profile",
        "etcd_discovery_url",
        "etcd_discovery_keys_api",
        "etcd_discovery_strict",
        "etcd_discovery_hosts",
        "etcd_discovery_listen_host",
        "etcd_discovery_allow_real_service",
    ):
        result.stdout.fnmatch_lines([f"  {ini} *"])


KEYS_API_TESTS = """
import requests

def test_keys(etcd_discovery):
    reply = requests.put(etcd_discovery.url + "/v2/keys/a", data={"value": "1"}, timeout=5)
    assert reply.status_code == EXPECTED, reply.text
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ((), 404),
        (("--etcd-discovery-keys-api",), 201),
        (("-o", "etcd_discovery_keys_api=true"), 201),
    ],
    ids=["default", "option", "ini"],
)
def test_keys_api_is_opt_in(pytester: pytest.Pytester, how: tuple[str, ...], expected: int) -> None:
    """The real service answers 404 for /v2/keys; the fake serves it only when asked."""
    pytester.makepyfile(KEYS_API_TESTS.replace("EXPECTED", str(expected)))
    run(pytester, *how).assert_outcomes(passed=1)


def test_keys_api_marker_is_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests

        def put(disco):
            return requests.put(disco.url + "/v2/keys/a", data={"value": "1"}, timeout=5)

        @pytest.mark.etcd_discovery(keys_api=True)
        def test_on(etcd_discovery):
            assert put(etcd_discovery).status_code == 201

        def test_off_again(etcd_discovery):
            assert put(etcd_discovery).status_code == 404

        @pytest.mark.etcd_discovery(keys_api="yes")
        def test_not_a_bool(etcd_discovery):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*keys_api='yes'*must be True or False*"])


def test_fixtures_are_documented(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")

    result = run(pytester, "--fixtures")

    result.stdout.fnmatch_lines(
        [
            "etcd_discovery_server [[]session scope[]] -- *",
            "*live HTTP server, shared by the whole session",
        ]
    )
    result.stdout.fnmatch_lines(
        ["etcd_discovery -- *", "*on its own copy of the shared state", "*.new_token(size)*"]
    )
    result.stdout.fnmatch_lines(["etcd_discovery_url -- *", "*A fresh token URL*"])


def test_header_with_the_flag_names_mode_profile_and_live_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_url(etcd_discovery):
            print("LIVE", etcd_discovery.url)
        """
    )

    result = run(pytester, "--etcd-discovery-fake", "-s")

    result.assert_outcomes(passed=1)
    header = [line for line in result.outlines if line.startswith("etcd-discovery:")]
    assert len(header) == 1
    assert header[0].startswith(
        "etcd-discovery: mode=fake, intercepting https://discovery.etcd.io for the whole run, "
        "profile=etcd-v2, live url=http://127.0.0.1:"
    )
    live = header[0].rsplit("live url=", 1)[1]
    # The header's server is the one the session's fixtures use.
    result.stdout.fnmatch_lines([f"*LIVE {live}"])


def test_header_without_the_flag_starts_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")

    result = run(pytester, "--etcd-discovery-profile", "discoveryserver")

    result.stdout.fnmatch_lines(
        [
            "etcd-discovery: mode=fake for tests that use it (fixture or marker); elsewhere "
            "refused, profile=discoveryserver, live url=started on first use"
        ]
    )


def test_profile_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_discovery_profile = discoveryserver\n")
    pytester.makepyfile(
        """
        def test_profile(etcd_discovery):
            assert etcd_discovery.profile == "discoveryserver"
            assert etcd_discovery.app.profile.name == "discoveryserver"
        """
    )

    run(pytester).assert_outcomes(passed=1)


def test_listen_host_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_discovery_listen_host = localhost\n")
    pytester.makepyfile(
        """
        import requests

        def test_listen(etcd_discovery, etcd_discovery_server):
            assert etcd_discovery.url.startswith("http://localhost:")
            assert etcd_discovery_server.url == etcd_discovery.url
            assert requests.get(etcd_discovery.url + "/health", timeout=5).text == "OK"
        """
    )

    run(pytester).assert_outcomes(passed=1)


def test_unknown_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--etcd-discovery-profile", "etcd-v3")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'etcd-v3'*"])


def test_flag_and_real_url_exclude_each_other(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--etcd-discovery-fake", "--etcd-discovery-url", "http://127.0.0.1:1")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--etcd-discovery-fake and --etcd-discovery-url exclude*"])


def test_both_in_ini_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\netcd_discovery_fake = true\netcd_discovery_url = http://127.0.0.1:1\n"
    )

    result = run(pytester)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*etcd_discovery_fake and etcd_discovery_url exclude*"])


def test_command_line_url_beats_ini_fake_and_forwards_to_it(
    pytester: pytest.Pytester,
) -> None:
    from pytest_etcd_discovery._transport.server import DiscoveryServer

    pytester.makeini("[pytest]\netcd_discovery_fake = true\n")
    pytester.makepyfile(
        """
        import requests

        def test_code_that_relied_on_interception():
            reply = requests.get("https://discovery.etcd.io/new?size=2", timeout=5)
            assert reply.status_code == 200
        """
    )
    with DiscoveryServer() as other:
        result = run(pytester, "--etcd-discovery-url", other.url, "-rs")

        # Issue #12: it used to skip; it runs against the configured service.
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [f"etcd-discovery: mode=real, url={other.url}, forwarding https://discovery.etcd.io"]
        )
        assert [(c.method, c.path, c.query, c.transport) for c in other.app.calls] == [
            ("GET", "/new", "size=2", "live")
        ]


# -- interception --------------------------------------------------------------------------

INTERCEPTED = """
    import re
    import requests

    def test_public_host_served_by_the_fake(etcd_discovery):
        reply = requests.get("https://discovery.etcd.io/new?size=5", timeout=5)
        assert reply.status_code == 200
        assert re.fullmatch(r"https://discovery\\.etcd\\.io/[a-f0-9]{32}", reply.text)
        view = etcd_discovery.token(reply.text)
        assert view.size == 5
        # The fake's own live server is another host: it passes through, over TCP.
        live = requests.get(etcd_discovery.url + "/new", timeout=5).text
        assert live.startswith(etcd_discovery.url + "/")
        assert [(c.path, c.transport) for c in etcd_discovery.calls] == [
            ("/new", "inprocess"),
            ("/new", "live"),
        ]
"""


def test_flag_intercepts_the_public_host_and_passes_others_through(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(INTERCEPTED)

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_ini_fake_true_works_like_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_discovery_fake = true\n")
    pytester.makepyfile(INTERCEPTED)

    run(pytester).assert_outcomes(passed=1)


def test_flag_applies_to_tests_that_do_not_ask_for_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import requests

        def test_plain_code():
            reply = requests.get("https://discovery.etcd.io/health", timeout=5)
            assert (reply.status_code, reply.text) == (200, "OK")
        """
    )

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_extra_hosts_from_ini_are_intercepted(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\netcd_discovery_fake = true\n"
        "etcd_discovery_hosts =\n    https://discovery.internal.example\n"
        "    http://127.0.0.2:7777\n"
    )
    pytester.makepyfile(
        """
        import requests

        def test_extra_hosts(etcd_discovery):
            for base in ("https://discovery.internal.example", "http://127.0.0.2:7777"):
                token_url = requests.get(base + "/new?size=1", timeout=5).text
                assert token_url.startswith(base + "/")
                assert etcd_discovery.token(token_url).size == 1
            assert etcd_discovery.hosts == (
                "https://discovery.etcd.io",
                "https://discovery.internal.example",
                "http://127.0.0.2:7777",
            )
        """
    )

    run(pytester).assert_outcomes(passed=1)


def test_the_fixture_alone_intercepts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import requests
        from requests.adapters import HTTPAdapter

        ORIGINAL_SEND = HTTPAdapter.send

        def test_fixture_means_the_fake(etcd_discovery):
            assert etcd_discovery.intercepting
            token_url = requests.get("https://discovery.etcd.io/new", timeout=5).text
            assert etcd_discovery.token(token_url).size == 3

        def test_no_fixture_nothing_is_patched():
            assert HTTPAdapter.send is ORIGINAL_SEND
        """
    )

    run(pytester).assert_outcomes(passed=2)


def test_intercept_false_leaves_requests_alone_and_the_guard_refuses(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests
        from requests.adapters import HTTPAdapter

        ORIGINAL_SEND = HTTPAdapter.send

        @pytest.mark.etcd_discovery(intercept=False)
        def test_url_only(etcd_discovery):
            assert not etcd_discovery.intercepting
            assert HTTPAdapter.send is ORIGINAL_SEND
            with pytest.raises(requests.ConnectionError, match="refused to look up"):
                requests.get("https://discovery.etcd.io/new", timeout=5)
            # The live URL still serves.
            assert requests.get(etcd_discovery.url + "/new", timeout=5).status_code == 200

        @pytest.mark.etcd_discovery(intercept=False)
        def test_context_manager(etcd_discovery):
            with etcd_discovery.intercept():
                assert HTTPAdapter.send is not ORIGINAL_SEND
                token_url = requests.get("https://discovery.etcd.io/new", timeout=5).text
            assert HTTPAdapter.send is ORIGINAL_SEND
            assert etcd_discovery.token(token_url).size == 3
        """
    )

    run(pytester).assert_outcomes(passed=2)


def test_intercept_inside_an_intercepted_test_is_harmless(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import requests
        from requests.adapters import HTTPAdapter

        def test_nested(etcd_discovery):
            patched = HTTPAdapter.send
            with etcd_discovery.intercept():
                assert HTTPAdapter.send is patched  # no second patch
            # Leaving the block does not switch off the test-wide interception.
            assert etcd_discovery.intercepting
            assert requests.get("https://discovery.etcd.io/new", timeout=5).ok
        """
    )

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_intercepted_long_poll_honours_the_requests_timeout(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests

        def test_timeout(etcd_discovery):
            token_url = requests.get("https://discovery.etcd.io/new", timeout=5).text
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(token_url + "?wait=true&recursive=true", timeout=0.2)
        """
    )

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


# -- the fixture -------------------------------------------------------------------------


def test_register_derives_the_member_id_like_etcd(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import hashlib
        from pytest_etcd_discovery._etcd_discovery import ClusterFullError, DiscoveryError

        def test_register(etcd_discovery):
            token_url = etcd_discovery.new_token(3)
            urls = ["http://10.0.0.2:2380", "http://10.0.0.1:2380"]
            member = etcd_discovery.register(token_url, "infra0", urls)
            digest = hashlib.sha1(
                b"http://10.0.0.1:2380http://10.0.0.2:2380" + token_url.encode()
            ).digest()
            assert member.id == format(int.from_bytes(digest[:8], "big"), "x")
            assert member.key == f"/_etcd/registry/{token_url.rsplit('/', 1)[1]}/{member.id}"
            assert member.value == "infra0=http://10.0.0.1:2380,infra0=http://10.0.0.2:2380"
            assert member.name == "infra0" and member.ttl is None
            # A wiped data dir registers the same id again: etcd gets 412/105.
            try:
                etcd_discovery.register(token_url, "infra0", urls)
            except DiscoveryError as err:
                assert (err.status, err.error_code) == (412, 105)
            else:
                raise AssertionError("second registration accepted")

        def test_full_token(etcd_discovery):
            token_url = etcd_discovery.new_token(2)
            a = etcd_discovery.register(token_url, "a", "http://10.0.0.1:2380")
            etcd_discovery.register(token_url, "b", "http://10.0.0.2:2380")
            try:
                etcd_discovery.register(token_url, "c", "http://10.0.0.3:2380")
            except ClusterFullError as err:
                assert [m.name for m in err.members] == ["a", "b"]
                assert str(err).startswith("discovery: cluster is full")
            else:
                raise AssertionError("a third member joined a size-2 token")
            assert etcd_discovery.token(token_url).names == ["a", "b"]  # nothing written
            # A member already registered is not "full": etcd goes on to the PUT (412).
            try:
                etcd_discovery.register(token_url, "a", "http://10.0.0.1:2380")
            except DiscoveryError as err:
                assert err.error_code == 105
            etcd_discovery.register(token_url, "c", "http://10.0.0.3:2380", check_full=False)
            assert etcd_discovery.token(token_url).names == ["a", "b", "c"]
        """
    )

    run(pytester).assert_outcomes(passed=2)


def test_token_view_and_etcd04_helper(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_view(etcd_discovery):
            token_url = etcd_discovery.new_token(2)
            disco = etcd_discovery
            first = disco.register_v04(token_url, "b", "http://10.0.0.2:7001", start=False)
            assert disco.create_state(token_url) is True  # b starts the cluster
            second = disco.register_v04(token_url, "a", "http://10.0.0.1:7001", start=False)
            assert disco.create_state(token_url) is False  # a joins it
            assert (first.id, second.id) == ("b", "a")
            view = etcd_discovery.token(token_url)
            assert view.size == 2 and view.state == "started" and view.full
            assert view.names == ["b", "a"]  # createdIndex order, not key order
            assert [m.ttl for m in view.members] == [604800, 604800]
            assert view.members[0].peer_urls == ["http://10.0.0.2:7001"]
            assert etcd_discovery.tokens() == [token_url.rsplit("/", 1)[1]]
        """
    )

    run(pytester).assert_outcomes(passed=1)


def test_snapshot_and_restore(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json

        def test_roundtrip(etcd_discovery):
            token_url = etcd_discovery.new_token(3)
            etcd_discovery.register(token_url, "infra0", "http://10.0.0.1:2380")
            saved = json.loads(json.dumps(etcd_discovery.snapshot()))
            etcd_discovery.register(token_url, "infra1", "http://10.0.0.2:2380")
            etcd_discovery.delete(token_url, etcd_discovery.token(token_url).members[0].key)
            assert etcd_discovery.token(token_url).names == ["infra1"]
            etcd_discovery.restore(saved)
            assert etcd_discovery.token(token_url).names == ["infra0"]
        """
    )

    run(pytester).assert_outcomes(passed=1)


def test_state_is_isolated_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("round", range(4))
        def test_fresh(etcd_discovery, etcd_discovery_server, round):
            assert etcd_discovery.tokens() == []
            assert etcd_discovery.calls == []
            assert etcd_discovery.url == etcd_discovery_server.url
            token_url = etcd_discovery.new_token(1)
            etcd_discovery.register(token_url, f"m{round}", "http://10.0.0.1:2380")
            etcd_discovery.clock.freeze()
        """
    )

    run(pytester, "-p", "no:randomly").assert_outcomes(passed=4)


def test_xdist_workers_each_get_their_own_isolated_fake(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest
        import requests

        @pytest.mark.parametrize("n", range(6))
        def test_isolated(etcd_discovery, n):
            assert etcd_discovery.tokens() == []
            token_url = requests.get("https://discovery.etcd.io/new?size=2", timeout=5).text
            etcd_discovery.register(token_url, f"m{n}", "http://10.0.0.1:2380")
            assert etcd_discovery.token(token_url).names == [f"m{n}"]
            print("WORKER", os.environ["PYTEST_XDIST_WORKER"], etcd_discovery.url)
        """
    )

    result = run_subprocess(
        pytester, monkeypatch, "-p", "xdist", "-n", "2", "--etcd-discovery-fake", "-rA"
    )

    result.assert_outcomes(passed=6)
    workers = {
        line.split()[1]: line.split()[2] for line in result.outlines if line.startswith("WORKER")
    }
    assert set(workers) == {"gw0", "gw1"}
    assert len(set(workers.values())) == 2  # one live server per worker
    result.stdout.fnmatch_lines(["*live url=one per xdist worker*"])


# -- the clock -----------------------------------------------------------------------------


def test_advance_wakes_a_watch_blocked_in_another_thread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import time
        import requests

        def test_expiry_wakes_watcher(etcd_discovery):
            token_url = requests.get("https://discovery.etcd.io/new?size=3", timeout=5).text
            etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.1:7001", start=False)
            index = etcd_discovery.token(token_url).index
            got = []

            def watch():
                reply = requests.get(
                    token_url, params={"wait": "true", "recursive": "true",
                    "waitIndex": index + 1}, timeout=30,
                )
                got.append(reply.json())

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            assert etcd_discovery.app.store.wait_for_watchers(1, timeout=10), "no watch"
            assert not got

            etcd_discovery.clock.advance(7 * 86400)
            watcher.join(timeout=10)

            assert not watcher.is_alive()
            assert got[0]["action"] == "expire"
            assert got[0]["node"]["key"].endswith("/core-1")
            assert got[0]["prevNode"]["value"] == "http://10.0.0.1:7001"
            assert etcd_discovery.token(token_url).members == ()
        """
    )

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_ttl_and_expiration_follow_the_clock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import datetime

        def test_ttl(etcd_discovery):
            etcd_discovery.clock.freeze()
            token_url = etcd_discovery.new_token(1)
            member = etcd_discovery.register_v04(token_url, "a", "http://10.0.0.1:7001")
            assert member.ttl == 604800
            etcd_discovery.clock.advance(86400 + 0.5)
            left = etcd_discovery.token(token_url).members[0]
            assert left.ttl == 6 * 86400  # ceil(518399.5)
            expires = datetime.fromisoformat(left.expiration.replace("Z", "+00:00")[:26] + "+00:00")
            assert abs(expires.timestamp() - (etcd_discovery.clock.now() + 6 * 86400 - 0.5)) < 1e-3
        """
    )

    run(pytester).assert_outcomes(passed=1)


# -- the marker ----------------------------------------------------------------------------


def test_marker_seeds_and_intercepts_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests
        from requests.adapters import HTTPAdapter

        ORIGINAL_SEND = HTTPAdapter.send

        @pytest.mark.etcd_discovery(size=5, members=["infra0", "infra1"], state="started")
        def test_seeded(etcd_discovery, etcd_discovery_url):
            view = etcd_discovery.token(etcd_discovery_url)
            assert (view.size, view.names, view.state) == (5, ["infra0", "infra1"], "started")
            assert view.members[0].peer_urls == ["http://10.0.0.1:2380"]
            assert etcd_discovery.intercepting

        @pytest.mark.etcd_discovery
        def test_marker_alone_turns_interception_on():
            assert HTTPAdapter.send is not ORIGINAL_SEND
            assert requests.get("https://discovery.etcd.io/new", timeout=5).ok

        def test_unmarked_is_untouched():
            assert HTTPAdapter.send is ORIGINAL_SEND

        @pytest.mark.etcd_discovery(size=1)
        def test_size_only(etcd_discovery_url, etcd_discovery):
            assert etcd_discovery.token(etcd_discovery_url).size == 1
        """
    )

    run(pytester, "--strict-markers").assert_outcomes(passed=4)


def test_marker_on_module_and_class_closest_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.etcd_discovery(size=7, frozen=True)

        def test_module_level(etcd_discovery, etcd_discovery_url):
            assert etcd_discovery.token(etcd_discovery_url).size == 7
            assert etcd_discovery.clock.frozen
            now = etcd_discovery.clock.now()
            assert etcd_discovery.clock.now() == now

        @pytest.mark.etcd_discovery(profile="discoveryserver", members=2)
        class TestClass:
            def test_class_level(self, etcd_discovery, etcd_discovery_url):
                view = etcd_discovery.token(etcd_discovery_url)
                assert (view.size, len(view.members)) == (7, 2)
                assert etcd_discovery.profile == "discoveryserver"
                assert etcd_discovery.app.profile.name == "discoveryserver"

            @pytest.mark.etcd_discovery(size=2, frozen=False)
            def test_method_level(self, etcd_discovery, etcd_discovery_url):
                assert etcd_discovery.token(etcd_discovery_url).size == 2
                assert not etcd_discovery.clock.frozen
        """
    )

    run(pytester, "--strict-markers").assert_outcomes(passed=3)


def test_marker_members_forms_and_etcd04_style(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.etcd_discovery(members=[
            ("a", ["http://10.1.0.1:2380", "http://10.1.0.9:2380"]),
            {"name": "b", "peer_urls": "http://10.1.0.2:7001", "style": "v0.4"},
        ])
        def test_forms(etcd_discovery, etcd_discovery_url):
            a, b = etcd_discovery.token(etcd_discovery_url).members
            assert a.peer_urls == ["http://10.1.0.1:2380", "http://10.1.0.9:2380"]
            assert (b.id, b.value, b.ttl) == ("b", "http://10.1.0.2:7001", 604800)
        """
    )

    run(pytester).assert_outcomes(passed=1)


def test_marker_with_unknown_argument_fails_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.etcd_discovery(sise=3)
        def test_typo(etcd_discovery):
            pass
        """
    )

    result = run(pytester)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@etcd_discovery got unknown arguments [[]'sise'[]]*"])


# -- the failure section -------------------------------------------------------------------


def test_failure_report_shows_tokens_members_and_requests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import requests

        def test_bootstrap(etcd_discovery):
            token_url = requests.get("https://discovery.etcd.io/new?size=3", timeout=5).text
            etcd_discovery.register(token_url, "infra0", "http://10.0.0.1:2380")
            etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.2:7001")
            requests.get(token_url + "/missing", timeout=5)
            assert len(etcd_discovery.token(token_url).members) == 3

        def test_passing(etcd_discovery):
            etcd_discovery.new_token()
        """
    )

    result = run(pytester, "--etcd-discovery-fake")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- etcd discovery -*",
            "mode: fake  profile: etcd-v2  live url: http://127.0.0.1:*",
            "clock: *Z (running)",
            "interception: on (https://discovery.etcd.io)",
            "tokens (1):",
            # Under the URL the code under test got from /new, not the live server's.
            "  https://discovery.etcd.io/* size=3  members=2/3  _state=started  index=*",
            "    1. infra0 * id=* createdIndex=*  no ttl  http://10.0.0.1:2380",
            # (604800 s at registration; the clock runs, so a loaded machine reads less)
            "    2. core-1 * id=core-1  createdIndex=*  ttl 60????s left  http://10.0.0.2:7001",
            "last requests (2 of 2):",
            "  inprocess GET    /new?size=3 -> 200",
            "  inprocess GET    /*/missing -> 404",
        ]
    )
    # Only the failing test gets the section.
    assert result.stdout.str().count("- etcd discovery -") == 1


# -- against a "real" service: --etcd-discovery-url ---------------------------------------

REAL_MODE = """
    import pytest
    import requests
    from pytest_etcd_discovery import scenarios

    PUBLIC = "https://discovery.etcd.io"

    def test_helpers_work(etcd_discovery, etcd_discovery_url):
        assert etcd_discovery.mode == "real"
        assert etcd_discovery_url.startswith(etcd_discovery.url + "/")
        etcd_discovery.register(etcd_discovery_url, "infra0", "http://10.0.0.1:2380")
        view = etcd_discovery.token(etcd_discovery_url)
        assert (view.size, view.names) == (3, ["infra0"])

    def test_helpers_never_leave_the_configured_service(etcd_discovery):
        # Issue #12: these returned and then used public URLs.
        url = etcd_discovery.new_token(3, base_url=PUBLIC)
        assert url.startswith(etcd_discovery.url + "/")
        public = PUBLIC + "/" + url.rsplit("/", 1)[1]
        assert etcd_discovery.token_url("x", PUBLIC) == etcd_discovery.url + "/x"
        etcd_discovery.register(public, "m1", "http://10.0.0.1:2380")
        assert etcd_discovery.token(public).names == ["m1"]
        token_url, members = scenarios.full_cluster(etcd_discovery, 2, base_url=PUBLIC)
        assert token_url.startswith(etcd_discovery.url + "/") and len(members) == 2
        assert scenarios.stale_state(etcd_discovery).startswith(etcd_discovery.url + "/")
        with pytest.raises(ValueError, match="not on the configured service"):
            etcd_discovery.token("http://elsewhere.invalid/abc")

    @pytest.mark.etcd_discovery(size=1, members=["only"], state="started")
    def test_marker_seeds_the_real_service(etcd_discovery, etcd_discovery_url):
        view = etcd_discovery.token(etcd_discovery_url)
        assert (view.size, view.names, view.state) == (1, ["only"], "started")
        assert etcd_discovery.intercepting
        # Code under test calling the public host reaches the configured service.
        reply = requests.get(f"{PUBLIC}/{view.token}/_config/size", timeout=10)
        assert reply.json()["node"]["value"] == "1"

    def test_clock_needs_the_fake(etcd_discovery):
        etcd_discovery.clock.advance(1)

    @pytest.mark.etcd_discovery(frozen=True)
    def test_frozen_needs_the_fake(etcd_discovery):
        pass

    def test_no_fake_server(etcd_discovery_server):
        pass

    @pytest.mark.etcd_discovery_fault(503, route="size")
    def test_faults_need_the_fake():
        pass

    def test_scenarios_with_faults_need_the_fake(etcd_discovery):
        scenarios.outage(etcd_discovery)
"""


def _check_real_mode(result: pytest.RunResult, url: str) -> None:
    result.assert_outcomes(passed=3, skipped=5)
    result.stdout.fnmatch_lines([f"etcd-discovery: mode=real, url={url}"])
    where = f"this run uses the real service {url} (--etcd-discovery-url)"
    result.stdout.fnmatch_lines(
        [
            f"*the clock needs the fake's insides; this run uses the real service at {url}*",
            f"*@etcd_discovery(frozen=True) needs the fake's clock; {where}*",
            f"*@etcd_discovery_fault needs the fake; {where}*",
            "*fault injection needs the fake's insides*",
        ]
    )
    result.stdout.fnmatch_lines([f"*no fake server; using the real service {url}*"])


def test_real_url_mode_against_a_separate_server(pytester: pytest.Pytester) -> None:
    from pytest_etcd_discovery._transport.server import DiscoveryServer

    pytester.makepyfile(REAL_MODE)
    with DiscoveryServer() as other:
        result = run(pytester, "--etcd-discovery-url", other.url, "-rs")
        # The helpers reached it over HTTP, not through the app's Python API.
        assert {c.transport for c in other.app.calls} == {"live"}
        _check_real_mode(result, other.url)


def test_real_url_from_ini(pytester: pytest.Pytester) -> None:
    from pytest_etcd_discovery._transport.server import DiscoveryServer

    pytester.makepyfile(REAL_MODE)
    with DiscoveryServer() as other:
        pytester.makeini(f"[pytest]\netcd_discovery_url = {other.url}\n")
        result = run(pytester, "-rs")
        _check_real_mode(result, other.url)


@pytest.mark.real
def test_real_url_mode_against_the_real_discovery_service(
    pytester: pytest.Pytester, real_service: object
) -> None:
    url = str(real_service.url)  # type: ignore[attr-defined]
    pytester.makepyfile(REAL_MODE)

    result = run(pytester, "--etcd-discovery-url", url, "-rs")

    _check_real_mode(result, url)


# -- a real etcd bootstrapping through the fixture -----------------------------------------


@pytest.mark.real
def test_real_etcd_cluster_bootstraps_through_the_fixture(pytester: pytest.Pytester) -> None:
    from realutil import require_real

    require_real("etcd", "etcdctl")
    pytester.makepyfile(
        """
        import pytest
        from pytest_etcd_discovery._real.cluster import DiscoveryCluster
        from pytest_etcd_discovery._etcd_discovery import (
            ClusterFullError, DiscoveryError, etcd_member_id,
        )

        @pytest.mark.etcd_discovery(size=3)
        def test_bootstrap(etcd_discovery, etcd_discovery_url, tmp_path):
            with DiscoveryCluster(etcd_discovery_url, 3, base_dir=tmp_path) as cluster:
                cluster.wait_healthy(timeout=60)
                listed = cluster.member_list()
                view = etcd_discovery.token(etcd_discovery_url)
                peers = {m.name: m.peer_url for m in cluster.members}
                # What etcd registered is what the fixture derives for the same member.
                assert len(view.members) == 3
                for member in view.members:
                    assert member.value == f"{member.name}={peers[member.name]}"
                    expected = etcd_member_id([peers[member.name]], etcd_discovery_url)
                    assert member.id == expected
                assert sorted(m.id for m in listed) == sorted(m.id for m in view.members)
                # So the helper collides with the real member, as a wiped data dir would.
                with pytest.raises(DiscoveryError) as info:
                    etcd_discovery.register(etcd_discovery_url, "m1", [peers["m1"]])
                assert info.value.error_code == 105
                # A 4th member: the helper and a real etcd both find the token full.
                with pytest.raises(ClusterFullError):
                    etcd_discovery.register(etcd_discovery_url, "m4", ["http://127.0.0.1:1"])
                for attempt in range(3):  # free ports can be taken by a parallel job
                    extra = cluster.add_extra_member(f"x{attempt}", fallback="exit")
                    assert extra.wait_exit(timeout=60) != 0
                    if "address already in use" not in extra.output:
                        break
                assert "cluster is full" in extra.output
                assert len(etcd_discovery.token(etcd_discovery_url).members) == 3
                # etcd's discovery traffic went over TCP to the live server.
                assert {c.transport for c in etcd_discovery.calls} == {"live"}
                assert any("wait=true" in c.query for c in etcd_discovery.calls)
        """
    )

    result = run(pytester, "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_works_beside_freezegun(pytester: pytest.Pytester) -> None:
    pytest.importorskip("freezegun")
    pytester.makepyfile(
        """
        import requests
        from freezegun import freeze_time

        def test_frozen_world(etcd_discovery):
            with freeze_time("2014-06-01 12:00:00"):
                token_url = requests.get("https://discovery.etcd.io/new?size=3", timeout=5).text
                member = etcd_discovery.register_v04(token_url, "core-1", "http://10.0.0.1:7001")
                # The fake reads time through its clock, which follows the (frozen) time.
                assert member.expiration == "2014-06-08T12:00:00Z"
                assert member.ttl == 604800
                etcd_discovery.clock.advance(7 * 86400)
                assert etcd_discovery.token(token_url).members == ()
                assert requests.get(etcd_discovery.url + "/health", timeout=5).text == "OK"
        """
    )

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_a_bug_inside_the_fake_fails_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import requests

        def test_meets_a_fake_bug(etcd_discovery):
            def broken(request):
                raise RuntimeError("fake bug")
            etcd_discovery.app.before_request.append(broken)
            try:
                assert requests.get(etcd_discovery.url + "/new", timeout=5).status_code == 500
            finally:
                etcd_discovery.app.before_request.remove(broken)  # the server is shared

        def test_next_one_is_clean(etcd_discovery):
            assert requests.get(etcd_discovery.url + "/new", timeout=5).status_code == 200
        """
    )
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*the fake discovery service failed internally*", "*RuntimeError: fake bug*"]
    )
