"""What the plugin costs runs that use little of it (the live fixture alone loads neither
requests nor responses), and that the fake marked tests get is set up before their own
fixtures."""

from __future__ import annotations

import pytest
from test_plugin import run, run_subprocess


def test_live_fixture_without_interception_loads_no_requests_or_responses(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child interpreter: this one has requests and responses loaded already.
    pytester.makepyfile(
        """
        import sys
        import pytest

        @pytest.mark.etcd_discovery(intercept=False)  # the live URL only
        def test_live(etcd_discovery):
            token_url = etcd_discovery.new_token(2)
            etcd_discovery.set_state(token_url)
            assert etcd_discovery.token(token_url).size == 2
            assert not {"requests", "responses"} & set(sys.modules)
        """
    )
    run_subprocess(pytester, monkeypatch, "-p", "no:hypothesispytest").assert_outcomes(passed=1)


def test_marker_sets_the_fake_up_before_the_tests_own_fixtures(
    pytester: pytest.Pytester,
) -> None:
    # An autouse fixture would run first; the hook keeps that order, also when the test
    # names etcd_discovery after a fixture that needs interception.
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.fixture
        def token_url():
            return requests.get("https://discovery.etcd.io/new?size=2", timeout=5).text

        @pytest.mark.etcd_discovery
        def test_implicit(token_url):
            assert "/" in token_url

        @pytest.mark.etcd_discovery
        def test_named_last(token_url, etcd_discovery):
            assert etcd_discovery.token(token_url).size == 2
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_flag_sets_the_fake_up_before_the_tests_own_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.fixture
        def token_url():
            return requests.get("https://discovery.etcd.io/new?size=2", timeout=5).text

        def test_plain(token_url):
            assert "/" in token_url
        """
    )
    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_marked_parameter_alone_gets_the_fake(pytester: pytest.Pytester) -> None:
    # The items of one parametrized test share their fixture list: the marked one must
    # not hand the fake to its siblings.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize(
            "marked", [pytest.param(True, marks=pytest.mark.etcd_discovery), False]
        )
        def test_param(marked, request):
            assert ("etcd_discovery" in request.fixturenames) is marked
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_flag_also_serves_doctests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        '''
        def new_token():
            """
            >>> import requests
            >>> requests.get("https://discovery.etcd.io/new", timeout=5).status_code
            200
            """
        '''
    )
    run(pytester, "--etcd-discovery-fake", "--doctest-modules").assert_outcomes(passed=1)


def test_a_nested_run_leaves_the_outer_test_its_own_fake(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    # A pytester run inside a test must not leave the outer test the inner session's fake.
    pytester.makepyfile(
        """
        def test_inner(etcd_discovery):
            assert etcd_discovery.new_token()
        """
    )
    run(pytester).assert_outcomes(passed=1)
    disco = request.getfixturevalue("etcd_discovery")
    assert disco.url == request.getfixturevalue("etcd_discovery_server").url
    assert disco.token(disco.new_token(2)).size == 2
