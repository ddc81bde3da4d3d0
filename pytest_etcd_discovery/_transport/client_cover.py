"""Every HTTP client in the test process reaches the fake at ``https://discovery.etcd.io``.

``requests`` is served in-process by :mod:`.intercept`.  Every other client that opens
its own sockets (``urllib.request``, ``http.client``, ``httpx`` sync and async,
``aiohttp``, ``urllib3``, and anything built on :mod:`socket` and :mod:`ssl`) is covered
here, with no change to the code under test, by three small patches of the standard
library that only ever act on the discovery hosts:

1. **Name resolution.** :func:`socket.getaddrinfo` answers a discovery host name with a
   reserved loopback address (:data:`SENTINEL`) and the port asked for; no DNS query for
   that name is ever sent.  asyncio's resolver calls the same function, so ``aiohttp``
   and ``httpx.AsyncClient`` get the same answer; aiohttp's ``AsyncResolver`` (its
   default when ``aiodns`` is installed) gets it too.
2. **Connecting.** :meth:`socket.socket.connect` (and ``connect_ex``) to the sentinel
   address goes to the fake's TLS front (:mod:`.proxy`) instead, whatever port the client
   kept (``anyio`` keeps the port it was given, not the resolved one).
3. **Trust.** :meth:`ssl.SSLContext.wrap_socket` and ``wrap_bio`` (asyncio's TLS) add
   the test CA to a client context the first time it opens a TLS connection to a
   discovery host name, so certificate and host name checks pass as they are.

The guard: a discovery host asked for on a port the fake does not serve, over IPv6 only,
or with a lookup that cannot carry a port (``gethostbyname``) fails at once with
:class:`DiscoveryHostGuardError`, naming the host and the fix; nothing leaves the machine.

The same patches fail closed when no fake is on: the pytest plugin puts a
:class:`Guard` under every cover for the whole run (collection, imports, fixtures of
every scope), so a discovery host that no fake serves is refused at name resolution,
before any DNS query or connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._errors import Error
from .hosts import HostMap

# ssl, ipaddress and importlib's machinery load when a cover first needs them: the guard
# alone, which every pytest run with the plugin has, patches name resolution only.
if TYPE_CHECKING:
    import ssl
    import types

    from .proxy import DiscoveryFront

__all__ = ["SENTINEL", "ClientCover", "DiscoveryHostGuardError", "Guard", "active_cover"]

#: The address discovery host names resolve to while the fake is on.  Loopback, so even a
#: client that connects without :mod:`socket` (a C library) stays on this machine, and
#: reserved to us so a connection to it can only mean a discovery host.
SENTINEL = "127.68.69.1"

_FIX = (
    "the etcd discovery fake answers {served} for this host; to serve another URL add it "
    "to the etcd_discovery_hosts ini value (or fake_discovery(hosts=...)), and for a "
    "client that cannot be covered in-process run it in a subprocess with "
    "etcd_discovery.env()"
)


class DiscoveryHostGuardError(Error, socket.gaierror):
    """A client asked for a discovery host in a way the fake cannot serve.

    A :class:`socket.gaierror`, so clients report it as the name-resolution failure it
    stands in for (``URLError``, ``httpx.ConnectError``, ``aiohttp``'s connector error).
    """

    def __init__(
        self, host: str, reason: str, served: Iterable[str], *, fix: str | None = None
    ) -> None:
        self.host = host
        served_text = ", ".join(served) or "nothing"
        hint = _FIX.format(served=served_text) if fix is None else fix
        message = f"etcd discovery fake: refused to look up {host!r} ({reason})"
        super().__init__(socket.EAI_NONAME, f"{message}; {hint}" if hint else message)

    def __str__(self) -> str:
        return str(self.args[1])


#: How to turn the fake on, for a discovery host asked for while none is on.
_TURN_ON = (
    "no etcd discovery fake is on here, and the plugin refuses to let the test process "
    "reach the real service; serve it from the fake with pytest --etcd-discovery-fake (or "
    "the ini value etcd_discovery_fake = true) for the whole run, the etcd_discovery "
    "fixture or marker for one test, or fake_discovery() outside a test; to reach a real "
    "service use --etcd-discovery-url, or set etcd_discovery_allow_real_service = true"
)


class Guard:
    """Fail closed: refuse every lookup of ``hosts`` that no cover above it serves.

    The bottom layer of the cover stack while a pytest run is on (see
    :func:`push_guard`); it never resolves anything, so nothing leaves the machine.
    """

    def __init__(self, hosts: Iterable[str] | HostMap) -> None:
        self.hosts = hosts if isinstance(hosts, HostMap) else HostMap(hosts)
        self.ip_hosts = frozenset(n for n in self.hosts.names if _is_ip(n))

    def refusal(self, host: Any) -> DiscoveryHostGuardError:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        return DiscoveryHostGuardError(name, _TURN_ON, (), fix="")

    def resolve(
        self, host: Any, port: Any, family: int, type: int, proto: int, flags: int
    ) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
        raise self.refusal(host)

    def connect_to(self, address: tuple[Any, Any]) -> tuple[Any, Any]:
        raise ConnectionRefusedError(str(self.refusal(address[0])))

    def trust(self, context: ssl.SSLContext, server_hostname: str) -> None:
        return None


class ClientCover:
    """The three patches (see the module docstring) for one set of discovery hosts.

    :param hosts: discovery base URLs, e.g. ``https://discovery.etcd.io``.
    :param front: returns the running front to connect to (started on first use, so a
        test whose code only uses ``requests`` never pays for TLS).

    Covers nest: the innermost started one answers, and stopping it brings back the one
    before.
    """

    def __init__(self, hosts: Iterable[str] | HostMap, front: Callable[[], DiscoveryFront]) -> None:
        self.hosts = hosts if isinstance(hosts, HostMap) else HostMap(hosts)
        #: Discovery hosts written as IP addresses (rare: a self-hosted service).
        self.ip_hosts = frozenset(n for n in self.hosts.names if _is_ip(n))
        self._front = front
        self._trusted: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._saved_no_proxy: dict[str, str | None] | None = None

    def start(self) -> None:
        with _lock:
            if self in _stack:
                return
            _stack.append(self)
            if len(_stack) == 1:
                _install()
            _sync_tls()
        self._bypass_env_proxies()

    def stop(self) -> None:
        with _lock:
            if self not in _stack:
                return
            _stack.remove(self)
            if not _stack:
                _uninstall()
            _sync_tls()
        self._restore_env_proxies()

    def __enter__(self) -> ClientCover:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the patches ask -----------------------------------------------------

    def front_address(self) -> tuple[str, int]:
        return self._front().address

    def resolve(
        self, host: str, port: Any, family: int, type: int, proto: int, flags: int
    ) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
        """``getaddrinfo``'s answer for a discovery host: the sentinel, or the guard."""
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        number = _port_number(port)
        served = self.hosts.served(name)
        if number is not None and self.hosts.scheme(name, number) is None:
            raise DiscoveryHostGuardError(
                f"{name}:{number}", "a port the fake does not serve", served
            )
        if family not in (socket.AF_UNSPEC, socket.AF_INET):
            raise DiscoveryHostGuardError(name, "IPv6 only; the fake listens on IPv4", served)
        kind = type or socket.SOCK_STREAM
        if kind != socket.SOCK_STREAM:
            raise DiscoveryHostGuardError(name, "not a TCP lookup", served)
        canonical = name if flags & socket.AI_CANONNAME else ""
        return [
            (
                socket.AF_INET,
                socket.SOCK_STREAM,
                proto or socket.IPPROTO_TCP,
                canonical,
                (SENTINEL, number or 0),
            )
        ]

    def trust(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Let ``context`` verify the fake's certificate (once per context)."""
        if context in self._trusted or not self.hosts.is_discovery_name(server_hostname):
            return
        self._front().ca.trust(context)
        self._trusted.add(context)

    # -- proxies configured in this process -------------------------------------------

    def _bypass_env_proxies(self) -> None:
        """With a proxy in this process's environment, urllib and httpx would send the
        discovery host to it (CONNECT) instead of resolving it: add the discovery names
        to ``no_proxy`` while the cover is on."""
        names = [k for k in os.environ if k.lower() in ("http_proxy", "https_proxy", "all_proxy")]
        if not names or self._saved_no_proxy is not None:
            return
        self._saved_no_proxy = {k: os.environ.get(k) for k in ("no_proxy", "NO_PROXY")}
        existing = [
            entry
            for value in self._saved_no_proxy.values()
            if value
            for entry in value.split(",")
            if entry.strip()
        ]
        merged = ",".join(dict.fromkeys([*existing, *sorted(self.hosts.names)]))
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = merged

    def _restore_env_proxies(self) -> None:
        saved, self._saved_no_proxy = self._saved_no_proxy, None
        if saved is None:
            return
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def active_cover() -> ClientCover | None:
    """The cover in force now (the innermost), if any; guards are not covers."""
    for layer in reversed(_stack):
        if isinstance(layer, ClientCover):
            return layer
    return None


def push_guard(guard: Guard) -> None:
    """Put ``guard`` under the covers (the patches go in with the first layer)."""
    with _lock:
        if guard in _stack:
            return
        _stack.insert(0, guard)  # under every cover: covers always answer first
        if len(_stack) == 1:
            _install()


def pop_guard(guard: Guard) -> None:
    with _lock:
        if guard not in _stack:
            return
        _stack.remove(guard)
        if not _stack:
            _uninstall()


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _port_number(port: Any) -> int | None:
    if port is None:
        return None  # a bare name lookup: the connect decides
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    # A service name such as "https": /etc/services, no DNS.
    return socket.getservbyname(text, "tcp")


# -- the patches ------------------------------------------------------------------------

_lock = threading.Lock()
#: Guards first, then covers in the order they started; the last layer whose hosts
#: include a name answers for it.
_stack: list[ClientCover | Guard] = []

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _cover_for(host: Any) -> ClientCover | Guard | None:
    if not isinstance(host, str | bytes):
        return None
    for layer in reversed(_stack):
        if layer.hosts.is_discovery_name(host):
            return layer
    return None


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Any:
    cover = _cover_for(host)
    if cover is None:
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    return cover.resolve(host, port, family, type, proto, flags)


def _gethostbyname(hostname: str) -> str:
    if _cover_for(hostname) is None:
        return _real_gethostbyname(hostname)
    raise _portless_lookup(hostname, "gethostbyname")


def _gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    if _cover_for(hostname) is None:
        return _real_gethostbyname_ex(hostname)
    raise _portless_lookup(hostname, "gethostbyname_ex")


def _portless_lookup(hostname: str, function: str) -> DiscoveryHostGuardError:
    """The refusal of a discovery host looked up without a port (the guard's own when no
    fake is on): the connection that follows could not be sent to the front."""
    cover = _cover_for(hostname)
    if isinstance(cover, Guard):
        return cover.refusal(hostname)
    return DiscoveryHostGuardError(
        hostname,
        f"{function} carries no port, so the connection cannot be served",
        cover.hosts.served(hostname) if cover is not None else (),
    )


def _redirect(address: Any) -> Any:
    if type(address) is not tuple or len(address) != 2 or not _stack:
        return address
    host, port = address
    if host == SENTINEL:
        cover = active_cover()
        return cover.front_address() if cover is not None else address
    for layer in reversed(_stack):
        if host in layer.ip_hosts:
            if isinstance(layer, Guard):
                return layer.connect_to(address)
            if layer.hosts.scheme(host, port) is not None:
                # A discovery host given as an IP address: clients connect to it without
                # asking the resolver (asyncio skips getaddrinfo for literals).
                return layer.front_address()
            break
    return address


def _connect(self: socket.socket, address: Any) -> None:
    _real_connect(self, _redirect(address))


def _connect_ex(self: socket.socket, address: Any) -> int:
    return _real_connect_ex(self, _redirect(address))


def _wrap_socket(
    self: ssl.SSLContext,
    sock: socket.socket,
    server_side: bool = False,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    server_hostname: str | bytes | None = None,
    session: ssl.SSLSession | None = None,
) -> ssl.SSLSocket:
    _trust(self, server_side, server_hostname)
    return _real_tls["wrap_socket"](  # type: ignore[no-any-return]
        self,
        sock,
        server_side=server_side,
        do_handshake_on_connect=do_handshake_on_connect,
        suppress_ragged_eofs=suppress_ragged_eofs,
        server_hostname=server_hostname,
        session=session,
    )


def _wrap_bio(
    self: ssl.SSLContext,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
    server_side: bool = False,
    server_hostname: str | bytes | None = None,
    session: ssl.SSLSession | None = None,
) -> ssl.SSLObject:
    _trust(self, server_side, server_hostname)
    return _real_tls["wrap_bio"](  # type: ignore[no-any-return]
        self,
        incoming,
        outgoing,
        server_side=server_side,
        server_hostname=server_hostname,
        session=session,
    )


def _trust(context: ssl.SSLContext, server_side: bool, server_hostname: Any) -> None:
    if server_side or not server_hostname or not _stack:
        return
    name = (
        server_hostname.decode("ascii", "replace")
        if isinstance(server_hostname, bytes)
        else server_hostname
    )
    layer = _cover_for(name)
    if layer is not None:
        layer.trust(context, name)


#: Name resolution and connecting: installed with the first layer (the guard included).
_PATCHES: tuple[tuple[Any, str, Any, Any], ...] = (
    (socket, "getaddrinfo", _getaddrinfo, _real_getaddrinfo),
    (socket, "gethostbyname", _gethostbyname, _real_gethostbyname),
    (socket, "gethostbyname_ex", _gethostbyname_ex, _real_gethostbyname_ex),
    (socket.socket, "connect", _connect, _real_connect),
    (socket.socket, "connect_ex", _connect_ex, _real_connect_ex),
)
#: ssl's originals, read when the first cover installs the trust patches.
_real_tls: dict[str, Any] = {}


def _tls_patches() -> tuple[tuple[Any, str, Any, Any], ...]:
    import ssl

    if not _real_tls:
        _real_tls["wrap_socket"] = ssl.SSLContext.wrap_socket
        _real_tls["wrap_bio"] = ssl.SSLContext.wrap_bio
    return (
        (ssl.SSLContext, "wrap_socket", _wrap_socket, _real_tls["wrap_socket"]),
        (ssl.SSLContext, "wrap_bio", _wrap_bio, _real_tls["wrap_bio"]),
    )


#: Names the patched classes did not define themselves (``connect`` is inherited from
#: ``_socket.socket``): removed again rather than left as copies.
_INHERITED = {
    (owner, name)
    for owner, name, _, _ in _PATCHES
    if isinstance(owner, type) and name not in vars(owner)
}


# -- aiohttp with aiodns: its AsyncResolver asks c-ares, not socket.getaddrinfo ----------
#
# aiohttp makes AsyncResolver its default resolver when aiodns is installed (as with
# ``aiohttp[speedups]``); c-ares would send a real DNS query for the discovery host and
# the connection would bypass the front.  Its ``resolve`` is covered too: now if aiohttp
# is loaded, or as soon as it is imported while the fake is on.

_AIOHTTP_RESOLVER = "aiohttp.resolver"
#: Each AsyncResolver class patched, with its own resolve: a run can see more than one
#: copy of aiohttp's module (pytester's inline runs re-import what the run imported).
_aiohttp_patched: list[tuple[Any, Any]] = []


def _patch_aiohttp(module: Any) -> None:
    resolver = getattr(module, "AsyncResolver", None)
    if resolver is None or any(cls is resolver for cls, _ in _aiohttp_patched):
        return
    original = resolver.resolve

    async def resolve(
        self: Any, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[dict[str, Any]]:
        cover = _cover_for(host)
        if cover is None:
            return await original(self, host, port, family)  # type: ignore[no-any-return]
        return [
            {
                "hostname": host,
                "host": address[0],
                "port": address[1],
                "family": found_family,
                "proto": proto,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for found_family, _, proto, _, address in cover.resolve(
                host, port, family, socket.SOCK_STREAM, 0, 0
            )
        ]

    _aiohttp_patched.append((resolver, original))
    resolver.resolve = resolve


def _unpatch_aiohttp() -> None:
    while _aiohttp_patched:
        resolver, original = _aiohttp_patched.pop()
        resolver.resolve = original


class _PatchOnImport:
    # A finder in sys.meta_path needs find_spec only (importlib.abc's base is optional).
    """Covers aiohttp's resolver when it is first imported while the fake is on."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _AIOHTTP_RESOLVER:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            with _lock:
                if _stack:
                    _patch_aiohttp(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_import_hook = _PatchOnImport()


def _install() -> None:
    for owner, name, patched, _ in _PATCHES:
        setattr(owner, name, patched)
    module = sys.modules.get(_AIOHTTP_RESOLVER)
    if module is not None:
        _patch_aiohttp(module)
    # Also for a later import, or a second copy of the module (pytester's inline runs).
    if _import_hook not in sys.meta_path:
        sys.meta_path.insert(0, _import_hook)


_tls_on = False


def _sync_tls() -> None:
    """The trust patches are on while a cover is (a guard alone never trusts anything)."""
    global _tls_on
    wanted = any(isinstance(layer, ClientCover) for layer in _stack)
    if wanted == _tls_on:
        return
    for owner, name, patched, original in _tls_patches():
        setattr(owner, name, patched if wanted else original)
    _tls_on = wanted


def _uninstall() -> None:
    for owner, name, _, original in _PATCHES:
        with contextlib.suppress(AttributeError, TypeError):
            if (owner, name) in _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_import_hook)
    _unpatch_aiohttp()
