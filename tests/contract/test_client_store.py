"""The client-authentication port's contract (``authority.storage.clients``), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from authority.settings import Settings
from authority.storage.clients import RegisteredServer

from .exchange_support import RACERS, Ports, open_ports, use
from .support import seed


@pytest.fixture
async def ports(sql_settings: Settings | None) -> AsyncIterator[Ports]:
    async for opened in open_ports(sql_settings):
        yield opened


async def test_a_registered_server_is_read_as_registered(ports: Ports) -> None:
    s = await seed(ports.store)
    assert await ports.clients.server(s.server_id) == RegisteredServer(
        id=s.server_id,
        audience=s.audience,
        auth_method="client_secret_basic",
        secret_hash="ab" * 32,
        jwks=None,
        status="active",
    )


async def test_an_unknown_server_reads_as_none(ports: Ports) -> None:
    await seed(ports.store)
    assert await ports.clients.server("rs_unknown") is None
    assert await ports.clients.server("") is None


async def test_an_assertion_is_spent_once_among_concurrent_callers(ports: Ports) -> None:
    results = await asyncio.gather(*(ports.clients.spend(use("assertion")) for _ in range(RACERS)))
    assert results.count(True) == 1
    assert await ports.clients.spend(use("assertion")) is False
    assert await ports.clients.spend(use("another")) is True
    assert len(await ports.rows("used_jtis")) == 2
