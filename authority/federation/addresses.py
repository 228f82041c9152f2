"""Where keys may be fetched from: public https hosts, never the authority's own network.

A key location is an administrator's URL, and a discovery document (the issuer's text)
names another one: both are checked, so neither can make the authority ask its cloud's
metadata service, a private address or its own loopback for anything (server-side
request forgery). Refused:

- anything but ``https`` (``http`` only with ``allow_loopback``, and only to loopback);
- credentials, a fragment, a port that is not a number in range, a host name that does
  not encode (IDNA 2008) as the HTTP client would send it;
- a literal address that is not globally routable (``ipaddress``'s ``is_global``:
  private 10/8, 172.16/12, 192.168/16, fc00::/7, link-local 169.254/16 and fe80::/10
  with the metadata services at 169.254.169.254 and fd00:ec2::254, shared 100.64/10,
  reserved, multicast, unspecified), IPv4-mapped ones too; loopback only with
  ``allow_loopback``;
- the metadata services' names (``metadata.google.internal`` and the like), a host
  whose last label is numeric (``2130706433``, ``0x7f.1``: addresses in disguise), and
  one that is no DNS name (an empty label, a space).

At fetch time the host name is resolved, every address it resolves to must pass the
same rule, and the connection is made to the address checked (the TLS handshake and
certificate still name the host), so a name that resolves to a private address is
refused and a second, different answer (DNS rebinding) is never connected to. What
remains: a public address that forwards to private ones (a proxy of the issuer's own)
cannot be seen from here; an egress firewall is the control for that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

#: The cloud metadata services' names (GCP, AWS, Azure, Alibaba, Oracle), lowercase.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.oraclecloud.com",
    }
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_LABEL = re.compile(r"[a-z][a-z0-9-]{0,62}")
_HOST_LABEL = re.compile(r"[a-z0-9_][a-z0-9_-]{0,62}")

#: Resolves a host and port to its addresses (the event loop's getaddrinfo by default).
Resolver = Callable[[str, int], Awaitable[list[str]]]


def address_allowed(address: str, *, allow_loopback: bool) -> bool:
    """Whether keys may be fetched from this IP address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not ip.is_multicast


def check_key_location(url: str, *, allow_loopback: bool = True) -> None:
    """Refuse (``ValueError``) a URL keys may not be fetched from (the module's rules).

    ``allow_loopback`` (the default, for checking what an administrator writes) lets
    ``http`` and loopback pass; the fetch itself passes the deployment's setting.
    """
    refused = ValueError(
        "a key location must be an https URL of a public host (http only on loopback)"
    )
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError("a key location has no credentials or fragment")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
        parsed = httpx.URL(url)
        host, raw_host = parsed.host, parsed.raw_host.decode("ascii")
    except (ValueError, httpx.InvalidURL):  # UnicodeError is a ValueError
        raise refused from None
    if parts.scheme not in ("https", "http") or not host:
        raise refused
    try:
        literal: str | None = str(ipaddress.ip_address(host))
    except ValueError:
        literal = None
    loopback = host in _LOOPBACK_NAMES or (
        literal is not None and ipaddress.ip_address(literal).is_loopback
    )
    if parts.scheme == "http" and not (loopback and allow_loopback):
        raise refused
    if literal is not None:
        if not address_allowed(literal, allow_loopback=allow_loopback):
            raise refused
        return
    if loopback and not allow_loopback:
        raise refused
    labels = raw_host.removesuffix(".").split(".")
    if host.removesuffix(".") in METADATA_HOSTS or not _LABEL.fullmatch(labels[-1]):
        raise refused
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise refused  # an empty label, a space, a character no DNS name holds


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class PublicOnlyTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that connects only to addresses ``address_allowed`` passes:
    it resolves the host itself, checks every address, and connects to the first."""

    def __init__(self, *, allow_loopback: bool, resolve: Resolver | None = None) -> None:
        self._allow_loopback = allow_loopback
        self._resolve = resolve or _resolve
        # No connection is kept: one to an address is verified for the host it was
        # opened for, and must not be reused for another host at the same address.
        # Keys are fetched once an interval per domain; a new connection costs nothing.
        self._inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self._resolve(host, port)
        except OSError:
            raise httpx.ConnectError("the key location's host does not resolve") from None
        if not addresses or not all(
            address_allowed(a, allow_loopback=self._allow_loopback) for a in addresses
        ):
            raise AddressRefused("the key location's host resolves to a refused address")
        # Connect to the address checked; TLS still names (and verifies) the host.
        request.url = url.copy_with(host=addresses[0].split("%", 1)[0])
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class AddressRefused(Exception):
    """A key location whose host resolves to an address keys are never fetched from."""
