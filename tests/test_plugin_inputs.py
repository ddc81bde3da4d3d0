"""Strict inputs (issue #12, item 9): every bad option, ini value or marker argument is
refused with one clear line that names it, never a traceback or a silent default."""

from __future__ import annotations

import pytest
from test_plugin import run


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("notaurl", "must start with http:// or https://"),
        ("ftp://x", "must start with http:// or https://"),
        ("http://", "needs a host"),
        ("http://host:notaport", "needs a host (and a valid port"),
        ("http://host:0", "needs a host (and a valid port"),
        ("http://host/?q=1", "may not carry a query"),
        ("http://user@host", "user info"),
        ("http://host:", "needs a host (and a valid port"),  # a port separator, no number
        ("http://a b.example", "its host is not a host name"),
    ],
)
def test_bad_url_option_is_a_usage_error(pytester: pytest.Pytester, url: str, problem: str) -> None:
    result = run(pytester, "--etcd-discovery-url", url)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--etcd-discovery-url: {url!r} is not a discovery service URL: *{problem}*"]
    )


def test_bad_url_in_the_ini_names_the_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_discovery_url = ftp://x\n")

    result = run(pytester)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*etcd_discovery_url (ini): 'ftp://x' is not a discovery*"])


def test_url_with_a_path_prefix_and_trailing_slash_is_accepted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")

    result = run(pytester, "--etcd-discovery-url", "http://127.0.0.1:1/discovery/")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["etcd-discovery: mode=real, url=http://127.0.0.1:1/discovery"])


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("ftp://x", "'ftp://x' is not a discovery service URL: it must start with http*"),
        ("https://", "'https://' is not a discovery service URL: it needs a host*"),
        ("disco.example:port", "*it needs a host (and a valid port*"),
        ("https://disco.example/v1", "'https://disco.example/v1' has a path*"),
        ("notaurl", "'notaurl' is neither scheme://host* nor a host name with a domain*"),
        ("disco.example:", "*it needs a host (and a valid port*"),
        ("https://-bad-.example", "*its host is not a host name*"),
    ],
)
def test_bad_hosts_ini_is_a_usage_error(pytester: pytest.Pytester, host: str, message: str) -> None:
    pytester.makeini(f"[pytest]\netcd_discovery_hosts =\n    https://ok.example\n    {host}\n")

    result = run(pytester)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*etcd_discovery_hosts: {message}"])


@pytest.mark.parametrize(
    "host", ["disco.example", "localhost", "10.1.2.3", "http://disco:8087", "etcd_disco.lan"]
)
def test_good_hosts_ini_values_are_accepted(pytester: pytest.Pytester, host: str) -> None:
    """A bare dotted name, an address or localhost is an https host; with a scheme a
    single-label name (a container's) is fine too."""
    pytester.makeini(f"[pytest]\netcd_discovery_hosts = {host}\n")
    pytester.makepyfile("def test_x(): pass")

    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize("listen", ["nosuchhost.invalid", "127.0.0.256", "0.0.0.0:80"])
def test_a_listen_host_that_is_no_address_is_a_usage_error_at_start(
    pytester: pytest.Pytester, listen: str
) -> None:
    """Checked without DNS at start, not a resolver error in every test's setup."""
    pytester.makeini(f"[pytest]\netcd_discovery_listen_host = {listen}\n")
    pytester.makepyfile("def test_x(etcd_discovery): pass\ndef test_y(etcd_discovery): pass")

    result = run(pytester)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*etcd_discovery_listen_host: {listen!r} is not an address to listen on*"]
    )
    assert "gaierror" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("listen", ["localhost", "::1", "[::1]", "127.0.0.1"])
def test_listen_host_addresses_are_accepted(pytester: pytest.Pytester, listen: str) -> None:
    pytester.makeini(f"[pytest]\netcd_discovery_listen_host = {listen}\n")
    pytester.makepyfile("def test_x(): pass")

    run(pytester).assert_outcomes(passed=1)


def test_a_fault_marker_without_the_fixture_still_serves(pytester: pytest.Pytester) -> None:
    """The fault marker alone turns the fake on (the plugin's autouse fixture): its rule
    answers a test that never names the fixture."""
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.mark.etcd_discovery_fault(503, route="new")
        def test_marked_only():
            assert requests.get("https://discovery.etcd.io/new", timeout=5).status_code == 503

        def test_unmarked():
            assert requests.get("https://discovery.etcd.io/new", timeout=5).status_code == 200
        """
    )

    run(pytester, "--etcd-discovery-fake").assert_outcomes(passed=2)


def test_a_huge_member_count_in_the_marker_fails_fast(pytester: pytest.Pytester) -> None:
    """``members=10**6`` is refused by its count before any list of names is made (it
    took 92 s of setup when it was seeded)."""
    pytester.makepyfile(
        """
        import pytest
        import tracemalloc

        @pytest.fixture(autouse=True, scope="module")
        def traced():
            tracemalloc.start()
            yield
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 5 * 2**20, peak  # a million names would be ~100 MiB

        @pytest.mark.etcd_discovery(members=10**6)
        def test_marked(etcd_discovery):
            pass
        """
    )

    result = run(pytester)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["@etcd_discovery(members=...): at most 1000 members per token*"])


def test_bad_truth_value_names_the_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_discovery_fake = maybe\n")

    result = run(pytester)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*etcd_discovery_fake: invalid truth value 'maybe' (use true or false)*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


BAD_MARKERS = [
    ("size=0", "size=0): size must be a positive integer"),
    ("size=-3", "size=-3): size must be a positive integer"),
    ("size='3'", "size='3'): size must be a positive integer"),
    ("size=True", "size=True): size must be a positive integer"),
    ("members=-1", "members=...): a count must be >= 0, got -1"),
    ("members='abc'", "members=...): give a count or a list of names*, got 'abc'"),
    ("members=[{'peer_urls': 'http://h:2380'}]", "members=...): member 1 has no name"),
    ("members=[{'name': 'a', 'colour': 'red'}]", "members=...): member 1: unknown keys *'colour'*"),
    ("members=[{'name': 'a', 'style': 'v2'}]", "members=...): member 1 ('a'): style must be*"),
    ("members=[('a', 3)]", "members=...): member 1 ('a'): peer_urls must be a URL or*, got 3"),
    ("members=[3]", "members=...): member 1: cannot read 3*"),
    # What the control API always refused, the marker refuses too (one parser, _etcd).
    ("members=['a/b']", "members=...): member 1: the name must be non-empty without '/'*"),
    ("members=['']", "members=...): member 1: the name must be non-empty without '/'*"),
    (
        "members=[{'name': 'a', 'style': 'v0.4', 'peer_urls': ['http://h:7001', 'http://i:7001']}]",
        "members=...): member 1 ('a'): an etcd 0.4 member has exactly one peer URL, got 2",
    ),
    ("members=[('a', 'h:2380')]", "members=...): member 1 ('a'): peer URL 'h:2380' is not*"),
    ("members=['a', ('b', 'http://10.0.0.1:2380')]", "members=...): member 2 ('b') would *"),
    ("frozen='yes'", "frozen='yes'): frozen must be True or False"),
    ("state=1", "state=1): state must be a string such as 'started'"),
    ("profile='etcd-v3'", "profile='etcd-v3'): not one of etcd-v2, discoveryserver"),
]


@pytest.mark.parametrize(("args", "message"), BAD_MARKERS)
def test_bad_marker_arguments_fail_with_one_line(
    pytester: pytest.Pytester, args: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.etcd_discovery({args})
        def test_marked(etcd_discovery):
            pass
        """
    )

    result = run(pytester)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"@etcd_discovery({message}"])
    assert "Traceback" not in result.stdout.str()
    assert "KeyError" not in result.stdout.str()


def test_good_marker_arguments_still_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.etcd_discovery(
            size=2,
            members=[{"name": "a", "peer_urls": ["http://h:2380"]}, ("b", "http://i:2380")],
            frozen=False,
        )
        def test_marked(etcd_discovery, etcd_discovery_url):
            assert etcd_discovery.token(etcd_discovery_url).names == ["a", "b"]

        @pytest.mark.etcd_discovery(members=0)
        def test_no_members(etcd_discovery, etcd_discovery_url):
            assert etcd_discovery.token(etcd_discovery_url).names == []
        """
    )

    run(pytester).assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("999", "fault status must be 100-599 (an HTTP status), got 999"),
        ("path_regex='('", "fault path_regex '(': bad regex*"),
        ("action='delay', delay=float('inf')", "fault delay must be a number of seconds*"),
        ("method='GETT'", "unknown fault method 'GETT'*"),
        ("path='new'", "fault path 'new' must start with '/'*"),
        ("body=b'x'", "fault body must be a string, got b'x'"),
    ],
)
def test_bad_fault_marker_fails_with_one_line(
    pytester: pytest.Pytester, args: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.etcd_discovery_fault({args})
        def test_marked(etcd_discovery):
            pass
        """
    )

    result = run(pytester)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
