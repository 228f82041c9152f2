"""Where a webhook may be delivered: public addresses only, and the one that was checked.

At delivery time the URL's host must resolve to public addresses only
(``webhook_allow_private_addresses`` for development), so that an owner cannot make the
authority call into its own network. An IPv6 address that carries an IPv4 one
(IPv4-mapped, -compatible or -translated, 6to4, Teredo) is judged by the IPv4 address as
well, and the NAT64 prefixes, which reach any IPv4 address, are refused outright. The
name is resolved once per connection and the connection goes to an address that was
checked, while the Host header, TLS SNI and the certificate check stay with the name: a
name that resolves elsewhere a moment later (DNS rebinding) reaches nothing new.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

import httpcore
import httpx


class AddressRefused(Exception):
    """The URL's host resolves to an address the authority does not call."""


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
Acceptable = Callable[[str], bool]

#: Never called, whatever they carry. NAT64, RFC 6052 §2.1 (well-known prefix) and
#: RFC 8215 (local-use): a translator turns these into any IPv4 address it can reach,
#: the operator's own network included. And prefixes that are not global but that
#: some versions of Python's registry table miss: site-local (RFC 3879, deprecated but
#: still routed inside some networks), SRv6 SIDs (RFC 9602), documentation (RFC 9637).
REFUSED_PREFIXES: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("fec0::/10"),
    ipaddress.IPv6Network("5f00::/16"),
    ipaddress.IPv6Network("3fff::/20"),
)
#: RFC 4291 §2.5.5.1, "IPv4-Compatible IPv6 address" ``::a.b.c.d`` (deprecated).
IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
#: RFC 2765 §2.1, "IPv4-translated address" ``::ffff:0:a.b.c.d`` (SIIT).
IPV4_TRANSLATED: Final = ipaddress.IPv6Network("::ffff:0:0:0/96")


async def resolve_system(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses that traffic to ``ip`` is delivered to or through."""
    if ip.ipv4_mapped is not None:  # RFC 4291 §2.5.5.2, ::ffff:a.b.c.d
        return [ip.ipv4_mapped]
    if ip in IPV4_COMPATIBLE or ip in IPV4_TRANSLATED:  # ::a.b.c.d, ::ffff:0:a.b.c.d
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:  # RFC 3056 §2, 2002:a.b.c.d::/48
        return [ip.sixtofour]
    if ip.teredo is not None:  # RFC 4380 §4, 2001::/32: the relay server and the client
        return list(ip.teredo)
    return []


def _global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def public(address: str) -> bool:
    """Whether ``address`` is one the authority may call: global, and so is every IPv4
    address it carries; never one of ``REFUSED_PREFIXES``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in prefix for prefix in REFUSED_PREFIXES):
            return False
        if not all(_global(inner) for inner in embedded_ipv4(ip)):
            return False
    return _global(ip)


def allow_any(address: str) -> bool:
    del address
    return True


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves a host once, checks every address, and connects to a checked one.

    httpcore hands the URL's host to ``connect_tcp`` and, for https, the same host to TLS
    as the server name (SNI and the certificate check); the Host header comes from the
    URL too. So the name is what TLS verifies and the address is what was checked.
    """

    def __init__(
        self,
        resolve: Resolve,
        acceptable: Acceptable,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolve = resolve
        self._acceptable = acceptable
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = list(await self._resolve(host, port))
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"cannot resolve: {type(exc).__name__}") from None
        # Every address must pass: a name with one private address could be steered to
        # it. The connection then goes to one of these very addresses, never to what the
        # name resolves to later.
        if not addresses or not all(self._acceptable(a) for a in addresses):
            raise AddressRefused("resolves to a non-public address")
        failure: Exception = httpcore.ConnectError("no address connected")
        for address in addresses:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("not a network address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through ``backend``.

    httpx does not take a network backend, so the pool it built is replaced by one with
    the same TLS context and limits and the pinning backend (httpcore's own seam).
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        context = httpx.create_ssl_context(trust_env=False)
        limits = httpx.Limits()
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
