"""The parts behind ``EtcdDiscovery``, one at a time and without pytester: the backends
(the fake in-process, a service over HTTP), the token helpers on both, interception,
and the failure section's token URLs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from pytest_etcd_discovery._backend import FakeBackend, RealBackend, backend_for
from pytest_etcd_discovery._constants import DEFAULT_HOSTS, TRANSPORT_FIXTURE
from pytest_etcd_discovery._etcd_discovery import EtcdDiscovery
from pytest_etcd_discovery._interception import Interception
from pytest_etcd_discovery._model import ClusterFullError, DiscoveryError, Member
from pytest_etcd_discovery._report import render, token_urls
from pytest_etcd_discovery._seeding import Seeder
from pytest_etcd_discovery._transport.forward import ForwardApp
from pytest_etcd_discovery._transport.server import DiscoveryServer
from pytest_etcd_discovery._v2store.clock import ControllableClock
from pytest_etcd_discovery._v2store.store import Store

PUBLIC = DEFAULT_HOSTS[0]


@pytest.fixture
def server() -> Iterator[DiscoveryServer]:
    """A fake of this test's own (its store and clock are the test's to change)."""
    with DiscoveryServer() as live:
        live.app.reset(Store(ControllableClock(frozen=True)))
        yield live


@pytest.fixture
def fake(server: DiscoveryServer) -> FakeBackend:
    return FakeBackend(server.url, DEFAULT_HOSTS, app=server.app, server=server)


@pytest.fixture
def real(server: DiscoveryServer) -> RealBackend:
    """A "real" service: the live fake reached over HTTP only, as one behind
    ``--etcd-discovery-url`` is."""
    return RealBackend(server.url, DEFAULT_HOSTS)


@pytest.fixture(params=["fake", "real"])
def seeder(request: pytest.FixtureRequest) -> Seeder:
    return Seeder(request.getfixturevalue(request.param))


# -- choosing a backend --------------------------------------------------------------------


def test_an_app_makes_the_fake_backend_and_none_the_real_one(server: DiscoveryServer) -> None:
    fake = backend_for(server.url + "/", DEFAULT_HOSTS, server.app, server)
    real = backend_for(server.url, DEFAULT_HOSTS)
    assert isinstance(fake, FakeBackend) and fake.mode == "fake" and fake.url == server.url
    assert isinstance(real, RealBackend) and real.mode == "real"


# -- the fake backend ----------------------------------------------------------------------


def test_the_fake_answers_in_process_as_the_fixture(
    fake: FakeBackend, server: DiscoveryServer
) -> None:
    status, _, body = fake.request("GET", f"{PUBLIC}/new?size=2")
    assert status == 200 and body.startswith(f"{PUBLIC}/")  # any host, answered in-process
    assert [c.transport for c in server.app.calls] == [TRANSPORT_FIXTURE]
    assert fake.fake("anything") is fake
    assert fake.place(f"{PUBLIC}/x") == f"{PUBLIC}/x"
    assert fake.interception_target() is server.app
    assert fake.tokens() == [body.rsplit("/", 1)[1]]


def test_the_fake_acts_on_the_store_it_is_bound_to(server: DiscoveryServer) -> None:
    shared = server.app.store
    bound = FakeBackend(server.url, DEFAULT_HOSTS, app=server.app, store=lambda: shared)
    server.app.reset(server.app.new_store(shared.clock), retire=False)  # a test's copy
    Seeder(bound).new_token(1)
    assert len(bound.tokens()) == 1 and server.app.token_names() == []
    saved = bound.snapshot()
    server.app.store.restore(saved["store"])  # the served store can take it back
    assert server.app.token_names() == bound.tokens()


def test_the_fake_pins_its_journal_unless_it_has_a_source(
    fake: FakeBackend, server: DiscoveryServer
) -> None:
    fake.request("GET", f"{server.url}/health")
    fake.keep_journal()
    server.app.reset()  # the next test's journal
    fake.request("GET", f"{server.url}/health")
    assert len(fake.journal()) == 1 and len(server.app.calls) == 1
    sourced = FakeBackend(server.url, DEFAULT_HOSTS, app=server.app, journal=list)
    sourced.keep_journal()
    assert sourced.journal() == []


def test_the_fake_without_server_or_clock_says_so(server: DiscoveryServer) -> None:
    bare = FakeBackend(server.url, DEFAULT_HOSTS, app=server.app)
    with pytest.raises(RuntimeError, match="without a live server"):
        _ = bare.server
    with pytest.raises(RuntimeError, match="without a clock"):
        _ = bare.clock


# -- the real backend ----------------------------------------------------------------------


def test_the_real_service_takes_the_discovery_hosts_urls(real: RealBackend) -> None:
    assert real.place(f"{PUBLIC}/abc?wait=true") == f"{real.url}/abc?wait=true"
    assert real.place(f"{real.url}/abc") == f"{real.url}/abc"
    extra = RealBackend(real.url, (*DEFAULT_HOSTS, "http://disco.example:8080"))
    assert extra.place("http://disco.example:8080/abc") == f"{real.url}/abc"
    with pytest.raises(ValueError, match="not on the configured service"):
        real.place("https://example.invalid/abc")


def test_the_real_service_is_reached_over_http(real: RealBackend, server: DiscoveryServer) -> None:
    status, _, body = real.request("GET", f"{PUBLIC}/new?size=1")  # moved onto the service
    assert status == 200 and body.startswith(server.url)
    assert [c.transport for c in server.app.calls] == ["live"]


def test_what_needs_the_fake_skips_against_a_real_service(real: RealBackend) -> None:
    with pytest.raises(pytest.skip.Exception, match="the clock needs the fake's insides"):
        real.fake("the clock")


def test_the_real_forwarder_is_made_once_and_closed_with_interception(real: RealBackend) -> None:
    forward = real.interception_target()
    assert isinstance(forward, ForwardApp) and forward.base_url == real.url
    assert real.forward is forward
    shared = ForwardApp(real.url)
    assert RealBackend(real.url, DEFAULT_HOSTS, forward=shared).interception_target() is shared
    real.end_interception()  # closes the polls it forwards; it serves the next one
    status, _, _ = real.request("GET", f"{real.url}/health")
    assert status == 200


# -- the token helpers, on either backend ------------------------------------------------------


def test_seeding_reads_back_the_same_on_both_backends(seeder: Seeder) -> None:
    token_url = seeder.new_token(2)
    assert seeder.created_tokens == [token_url]
    infra0 = seeder.register(token_url, "infra0", "http://10.0.0.1:2380")
    core1 = seeder.register_v04(token_url, "core-1", "http://10.0.0.2:7001", start=False)
    assert isinstance(core1, Member) and core1.id == "core-1"
    assert infra0.key == f"/_etcd/registry/{token_url.rsplit('/', 1)[1]}/{infra0.id}"
    view = seeder.token(token_url)
    assert (view.names, view.state, view.full) == (["infra0", "core-1"], None, True)
    with pytest.raises(ClusterFullError):
        seeder.register(token_url, "infra1", "http://10.0.0.3:2380")
    # etcd 0.4: the first to create _state starts the cluster, the rest join it.
    assert seeder.create_state(token_url) is True
    assert seeder.create_state(token_url) is False
    assert seeder.token(token_url).state == "started"


def test_register_v04_starts_the_cluster_unless_told_not_to(seeder: Seeder) -> None:
    token_url = seeder.new_token(3)
    seeder.register_v04(token_url, "a", "http://10.0.0.1:7001")
    assert seeder.token(token_url).state == "started"
    assert seeder.create_state(token_url) is False


def test_delete_takes_a_member_its_key_or_its_id(seeder: Seeder) -> None:
    token_url = seeder.new_token(3)
    members = [seeder.register_v04(token_url, n, "http://10.0.0.1:7001") for n in "abc"]
    seeder.delete(token_url, members[0])
    seeder.delete(token_url, members[1].key)
    seeder.delete(token_url, members[2].id)
    seeder.delete(token_url, "_state")
    view = seeder.token(token_url)
    assert (view.members, view.state) == ((), None)
    other = seeder.new_token(1)
    with pytest.raises(ValueError, match="is not under the token"):
        seeder.delete(other, members[0].key)
    with pytest.raises(DiscoveryError) as gone:
        seeder.delete(token_url, members[0])
    assert gone.value.error_code == 100


def test_a_token_url_on_a_discovery_host_differs_by_backend(
    fake: FakeBackend, real: RealBackend
) -> None:
    assert Seeder(fake).token_url("t", PUBLIC) == f"{PUBLIC}/t"
    assert Seeder(real).token_url("t", PUBLIC) == f"{real.url}/t"  # never the public one
    assert Seeder(real).new_token(1, base_url=PUBLIC).startswith(f"{real.url}/")


# -- interception --------------------------------------------------------------------------


def test_interception_serves_requests_from_the_backend_while_on(fake: FakeBackend) -> None:
    part = Interception(fake, None)
    assert not part.active and part.off_hint is not None and PUBLIC in part.off_hint
    with part.block():
        assert part.active and part.off_hint is None
        with part.block():  # already on: an inner block leaves it on
            pass
        assert part.active
        token_url = requests.get(f"{PUBLIC}/new?size=1", timeout=5).text
    assert not part.active
    assert token_url.startswith(f"{PUBLIC}/") and len(fake.tokens()) == 1


def test_without_a_front_the_drop_in_says_why(fake: FakeBackend, real: RealBackend) -> None:
    with pytest.raises(RuntimeError, match=r"no TLS front$"):
        _ = Interception(fake, None).front
    with pytest.raises(RuntimeError, match="no discovery host to forward to"):
        Interception(real, None).env()


def test_add_to_needs_interception_on(fake: FakeBackend) -> None:
    import responses

    part = Interception(fake, None)
    with responses.RequestsMock() as mock:
        with pytest.raises(RuntimeError, match="needs interception on"):
            part.add_to(mock)
        with part.block():
            part.add_to(mock)
            assert requests.get(f"{PUBLIC}/health", timeout=5).text == "OK"


# -- the failure section lists tokens where the code got them ------------------------------


def test_the_report_lists_each_token_under_the_url_it_was_handed_out_at(
    server: DiscoveryServer,
) -> None:
    disco = EtcdDiscovery(server.url, app=server.app, server=server, clock=ControllableClock())
    on_live = requests.get(f"{server.url}/new?size=1", timeout=5).text
    mine = disco.new_token(2, base_url=PUBLIC)
    with disco.intercept():
        intercepted = requests.get(f"{PUBLIC}/new?size=3", timeout=5).text
    made_apart = server.app.new_token(4)  # no /new: shown on the live server
    assert intercepted.startswith(f"{PUBLIC}/") and on_live.startswith(server.url)
    assert token_urls(disco) == [on_live, mine, intercepted, disco.token_url(made_apart)]
    section = render(disco)
    assert f"  {intercepted}  size=3" in section and f"  {on_live}  size=1" in section


def test_the_journal_notes_the_token_a_new_made(fake: FakeBackend, server: DiscoveryServer) -> None:
    made = requests.get(f"{server.url}/new", timeout=5).text
    requests.get(f"{server.url}/new?size=x", timeout=5)  # refused: made nothing
    requests.get(made, timeout=5)
    assert [c.created_url for c in server.app.calls] == [made, None, None]


def test_the_report_against_a_real_service_lists_the_handles_tokens(
    server: DiscoveryServer,
) -> None:
    disco = EtcdDiscovery(server.url)
    requests.get(f"{server.url}/new", timeout=5)  # not the handle's: it cannot know
    made = disco.new_token(1, base_url=PUBLIC)
    assert made.startswith(server.url) and token_urls(disco) == [made]
