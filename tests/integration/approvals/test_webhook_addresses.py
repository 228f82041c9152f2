"""Where a webhook may be delivered: public addresses only, whatever form an address
takes, and only to the address that was checked, whatever the name resolves to later."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import pytest

from authority.approvals import webhooks
from authority.approvals.webhook_addresses import (
    AddressRefused,
    PinnedBackend,
    PinnedTransport,
    public,
)
from authority.approvals.webhooks import Dispatcher
from authority.clock import FrozenClock
from tests.support import World

from .support import world_with

REFUSED = [
    # The plain private, loopback, link-local, shared, multicast and unspecified ranges.
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "0.0.0.0",  # noqa: S104 (an address judged, not bound)
    "::1",
    "::",
    "fe80::1%eth0",
    "fc00::1",
    "ff02::1",
    # IPv4-mapped (RFC 4291 §2.5.5.2).
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    # IPv4-compatible (RFC 4291 §2.5.5.1).
    "::127.0.0.1",
    "::10.0.0.1",
    "::169.254.169.254",
    "::192.168.1.1",
    # IPv4-translated (RFC 2765 §2.1).
    "::ffff:0:7f00:1",
    "::ffff:0:a00:1",
    # 6to4 (RFC 3056) of private addresses.
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::1",
    # Teredo (RFC 4380): client 10.0.0.1 (obfuscated), and a private server.
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    "2001:0:a00:1::1",
    # NAT64, refused even for a public IPv4 address (RFC 6052, RFC 8215).
    "64:ff9b::808:808",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",
    "64:ff9b:1:ffff::a00:1",
    # Not global, though some versions of Python's table miss them.
    "fec0::1",
    "5f00::1",
    "3fff::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_in_every_form_are_refused(address: str) -> None:
    assert public(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_accepted(address: str) -> None:
    assert public(address) is True


# --- the address connected to is the address checked ---------------------------------------
@dataclass
class Listener:
    """A bare HTTP/1.1 endpoint on one loopback address: records every request, 204."""

    host: str
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.requests.append(head)
            writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Rebinding:
    """A name server that answers ``first`` once, then ``later`` (DNS rebinding)."""

    first: list[str]
    later: list[str]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.first if len(self.asked) == 1 else self.later


@pytest.fixture
async def listeners() -> AsyncIterator[tuple[Listener, Listener]]:
    """The same port on two loopback addresses: one the check allows, one it must not."""
    checked = Listener("127.0.0.2")
    await checked.start()
    private = Listener("127.0.0.1", checked.port)
    await private.start()
    try:
        yield checked, private
    finally:
        await checked.stop()
        await private.stop()


async def register(world: World, url: str) -> None:
    response = await world.client.put(
        f"/v1/owners/{world.owner_id}/webhook",
        json={"url": url},
        headers=world.auth(world.owner_key),
    )
    assert response.status_code == 200, response.text


async def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.01)


async def test_a_name_that_rebinds_after_the_check_reaches_only_the_checked_address(
    settings_factory: Any, clock: FrozenClock, listeners: tuple[Listener, Listener]
) -> None:
    """``localhost`` is checked as 127.0.0.2 (the only address this test lets through);
    asked again, the name server, like the system's, says 127.0.0.1. The delivery goes to
    127.0.0.2 with the name in the Host header, and nothing reaches 127.0.0.1."""
    checked, private = listeners
    resolver = Rebinding(first=["127.0.0.2"], later=["127.0.0.1"])
    settings = settings_factory(webhook_allow_http=True)
    async with world_with(settings, clock) as world:
        world.services.webhooks = Dispatcher(
            world.services, resolve=resolver, acceptable=lambda a: a == "127.0.0.2"
        )
        await register(world, f"http://localhost:{checked.port}/hook")
        assert webhooks.notify(world.services, world.owner_id, "approval.requested", {"n": 1})
        counter = world.services.metrics.webhooks
        await wait_until(lambda: counter.labels("delivered")._value.get() == 1, "not delivered")
        assert len(checked.requests) == 1
        assert f"host: localhost:{checked.port}".encode() in checked.requests[0].lower()
        assert private.requests == []
        assert resolver.asked == ["localhost"]  # resolved once, for the connection itself
        # A later connection asks again and is checked again: 127.0.0.1 is refused.
        assert webhooks.notify(world.services, world.owner_id, "approval.requested", {"n": 2})
        await wait_until(lambda: counter.labels("refused")._value.get() == 1, "not refused")
        assert private.requests == [] and len(checked.requests) == 1


async def test_one_non_public_address_among_public_ones_refuses_the_name(
    settings_factory: Any, clock: FrozenClock, listeners: tuple[Listener, Listener]
) -> None:
    checked, private = listeners
    resolver = Rebinding(first=["8.8.8.8", "::ffff:127.0.0.1"], later=[])
    settings = settings_factory(webhook_allow_http=True)
    async with world_with(settings, clock) as world:
        world.services.webhooks = Dispatcher(world.services, resolve=resolver)
        await register(world, f"http://localhost:{private.port}/hook")
        assert webhooks.notify(world.services, world.owner_id, "approval.requested", {"n": 1})
        counter = world.services.metrics.webhooks
        await wait_until(lambda: counter.labels("refused")._value.get() == 1, "not refused")
        assert private.requests == [] and checked.requests == []


# --- TLS stays with the name --------------------------------------------------------------
class RecordingStream(httpcore.AsyncNetworkStream):
    def __init__(self, record: dict[str, Any]) -> None:
        self._record = record
        self._reply = b"HTTP/1.1 204 No Content\r\n\r\n"

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        reply, self._reply = self._reply, b""
        return reply

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._record.setdefault("sent", b"")
        self._record["sent"] += buffer

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        self._record["server_hostname"] = server_hostname
        self._record["ssl_context"] = ssl_context
        return self


class RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.record: dict[str, Any] = {}

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.record["connected"] = (host, port)
        return RecordingStream(self.record)


async def test_tls_verifies_the_name_while_connecting_to_the_checked_address() -> None:
    inner = RecordingBackend()
    resolver = Rebinding(first=["198.51.100.7"], later=["127.0.0.1"])
    backend = PinnedBackend(resolver, lambda a: a == "198.51.100.7", inner=inner)
    async with httpx.AsyncClient(transport=PinnedTransport(backend)) as client:
        response = await client.post("https://hooks.example.test/hook", content=b"{}")
    assert response.status_code == 204
    record = inner.record
    assert record["connected"] == ("198.51.100.7", 443)
    assert record["server_hostname"] == "hooks.example.test"  # SNI and certificate name
    context: ssl.SSLContext = record["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert b"\r\nHost: hooks.example.test\r\n" in record["sent"]


async def test_a_refused_name_opens_no_connection() -> None:
    inner = RecordingBackend()
    backend = PinnedBackend(Rebinding(first=["10.0.0.1"], later=[]), public, inner=inner)
    async with httpx.AsyncClient(transport=PinnedTransport(backend)) as client:
        with pytest.raises(AddressRefused):
            await client.post("https://hooks.example.test/hook", content=b"{}")
    assert inner.record == {}
