"""Shared state: what session and module fixtures (and, under the flag, conftest and
import-time code) write is seen by every later test; what a test writes is its own."""

from __future__ import annotations

import pytest
from test_plugin import run, run_subprocess

CONFTEST = """
import pytest
import requests

PUBLIC = "https://discovery.etcd.io"


@pytest.fixture(scope="session")
def cluster_token(etcd_discovery_shared):
    # Provisioning done once: a token, one member, through the shared handle.
    token_url = etcd_discovery_shared.new_token(3, base_url=PUBLIC)
    etcd_discovery_shared.register(token_url, "m1", "http://10.0.0.1:2380")
    return token_url
"""

MODULE_A = """
import requests

def test_reads_and_writes_its_copy(etcd_discovery, cluster_token):
    assert etcd_discovery.token(cluster_token).names == ["m1"]
    etcd_discovery.register(cluster_token, "m2", "http://10.0.0.2:2380")
    etcd_discovery.faults.fail(503, route="new")
    assert requests.get("https://discovery.etcd.io/new", timeout=5).status_code == 503
    assert etcd_discovery.token(cluster_token).names == ["m1", "m2"]
"""

MODULE_B = """
import requests

def test_sees_the_shared_token_only(etcd_discovery, cluster_token):
    # Module a's member and fault stayed in module a's test.
    assert etcd_discovery.token(cluster_token).names == ["m1"]
    assert requests.get("https://discovery.etcd.io/new", timeout=5).status_code == 200
    assert len(etcd_discovery.tokens()) == 2


def test_a_later_test_too(etcd_discovery, cluster_token, etcd_discovery_shared):
    assert etcd_discovery.token(cluster_token).names == ["m1"]
    # The shared handle's journal holds what was asked while no test ran.
    assert [c.route for c in etcd_discovery_shared.calls] == []
    assert etcd_discovery_shared.tokens() == etcd_discovery.tokens()[:1]
"""


def _write(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a=MODULE_A, test_b=MODULE_B)


def test_a_session_token_is_seen_by_later_tests_in_two_modules(
    pytester: pytest.Pytester,
) -> None:
    _write(pytester)
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=3)


def test_the_same_under_the_flag(pytester: pytest.Pytester) -> None:
    _write(pytester)
    run(pytester, "-p", "no:randomly", "--etcd-discovery-fake").assert_outcomes(passed=3)


def test_xdist_workers_each_have_their_own_shared_state(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(pytester)
    result = run_subprocess(pytester, monkeypatch, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=3)


def test_under_the_flag_conftest_import_time_and_module_fixture_calls_are_served(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import requests
        # Import time of a conftest: before any test, fixture or collection.
        CONFTEST_TOKEN = requests.get("https://discovery.etcd.io/new?size=5", timeout=5).text
        """
    )
    pytester.makepyfile(
        """
        import urllib.request
        import pytest
        from conftest import CONFTEST_TOKEN

        with urllib.request.urlopen("https://discovery.etcd.io/new?size=2", timeout=5) as r:
            MODULE_TOKEN = r.read().decode()

        @pytest.fixture(scope="module")
        def module_token():
            with urllib.request.urlopen("https://discovery.etcd.io/new?size=1", timeout=5) as r:
                return r.read().decode()

        def test_all_three_are_in_the_shared_state(etcd_discovery, module_token):
            urls = (CONFTEST_TOKEN, MODULE_TOKEN, module_token)
            sizes = [etcd_discovery.token(u).size for u in urls]
            assert sizes == [5, 2, 1]
        """
    )
    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_without_the_flag_a_module_fixture_is_refused_with_the_fix(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import urllib.request
        import pytest

        @pytest.fixture(scope="module")
        def module_token():
            with urllib.request.urlopen("https://discovery.etcd.io/new?size=1", timeout=5) as r:
                return r.read().decode()

        def test_uses_it(etcd_discovery, module_token):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*refused to look up 'discovery.etcd.io' (no etcd discovery fake is on here*"]
    )
    result.stdout.fnmatch_lines(["*pytest --etcd-discovery-fake*"])


def test_shared_intercept_serves_a_fixture_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import requests
        import pytest

        @pytest.fixture(scope="module")
        def module_token(etcd_discovery_shared):
            with etcd_discovery_shared.intercept():
                return requests.get("https://discovery.etcd.io/new?size=4", timeout=5).text

        def test_one(etcd_discovery, module_token):
            assert etcd_discovery.token(module_token).size == 4

        def test_two(etcd_discovery, module_token):
            assert etcd_discovery.token(module_token).size == 4
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_fake_discovery_inside_a_flagged_run_shares_the_runs_fake(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import requests
        import pytest
        from pytest_etcd_discovery import fake_discovery

        @pytest.fixture(scope="module")
        def module_token():
            with fake_discovery():
                return requests.get("https://discovery.etcd.io/new?size=3", timeout=5).text

        def test_no_404(module_token):
            assert requests.get(module_token, timeout=5).status_code == 200
        """
    )
    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=1)


def test_the_shared_clock_expires_shared_keys(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="module")
        def token(etcd_discovery_shared):
            url = etcd_discovery_shared.new_token(3)
            etcd_discovery_shared.register_v04(url, "old", "http://10.0.0.9:7001", start=False)
            return url

        def test_before(etcd_discovery, token):
            assert etcd_discovery.token(token).names == ["old"]
            etcd_discovery.clock.advance(7 * 86400)  # this test's copy only
            assert etcd_discovery.token(token).names == []

        def test_after(etcd_discovery, etcd_discovery_shared, token):
            assert etcd_discovery.token(token).names == ["old"]
            etcd_discovery_shared.clock.advance(7 * 86400)
            assert etcd_discovery_shared.token(token).names == []
        """
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=2)


# -- misspellings fail instead of leaving tests without the fake --------------------------


def test_a_misspelled_ini_key_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_discovry_fake = true\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown ini value 'etcd_discovry_fake': did you mean 'etcd_discovery_fake'?*"]
    )


def test_a_misspelled_marker_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.etcd_dicovery(size=5)
        def test_marked():
            pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_marked: unknown marker 'etcd_dicovery': did you mean 'etcd_discovery'?*"]
    )


def test_other_plugins_ini_values_and_markers_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow tests\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slow
        @pytest.mark.parametrize("n", [1])
        def test_marked(n):
            pass
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_a_module_fixtures_writes_end_with_the_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.fixture(scope="module")
        def token(etcd_discovery_module):
            return etcd_discovery_module.new_token(3)

        def test_one(etcd_discovery, token):
            assert etcd_discovery.tokens() == [token.rsplit("/", 1)[1]]

        def test_two(etcd_discovery, token):
            assert len(etcd_discovery.tokens()) == 1
        """,
        test_b="""
        def test_starts_empty(etcd_discovery, etcd_discovery_shared):
            assert etcd_discovery.tokens() == []
            assert etcd_discovery_shared.tokens() == []
        """,
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=3)
