"""Concurrent exchanges with their spends group-committed (``exchange_group_commit`` on),
on both backends: caps, replay refusal and "no token without its ledger entry" exact,
and no hot-state (Redis) round trip for an exchange that needs none."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from authority.settings import Settings
from authority.storage.schema import delegations, grants, ledger_entries
from authority.storage.sql.exchange import SqlExchangeStore
from tests.support import World


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(exchange_group_commit=True)
    return result


async def counted(world: World) -> tuple[int, int, int]:
    """Calls spent on the delegation, its issued grants, and their ledger entries."""
    async with world.services.engine.connect() as conn:
        spent = (
            await conn.execute(
                select(delegations.c.calls_used).where(delegations.c.id == world.delegation_id)
            )
        ).scalar_one()
        issued = (
            await conn.execute(
                select(func.count()).where(
                    grants.c.delegation_id == world.delegation_id, grants.c.decision == "issued"
                )
            )
        ).scalar_one()
        entries = (
            await conn.execute(
                select(func.count()).where(
                    ledger_entries.c.kind == "grant",
                    ledger_entries.c.delegation_id == world.delegation_id,
                    ledger_entries.c.decision == "issued",
                )
            )
        ).scalar_one()
    return spent, issued, entries


async def test_concurrent_exchanges_spend_exactly_the_cap_in_batches(world: World) -> None:
    await world.delegate(max_calls=7)
    responses = await asyncio.gather(*(world.exchange() for _ in range(24)))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 7 and codes.count(400) == 17
    assert await counted(world) == (7, 7, 7)
    store = world.services.exchange_store
    assert isinstance(store, SqlExchangeStore)
    assert store.spends.items > store.spends.batches  # some spends shared a transaction


async def test_a_replayed_attestation_among_concurrent_exchanges_is_issued_once(
    world: World,
) -> None:
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    responses = await asyncio.gather(
        *(world.exchange(attestation=attestation) for _ in range(10)),
        *(world.exchange() for _ in range(5)),
    )
    replays = [r.status_code for r in responses[:10]]
    assert replays.count(200) == 1
    assert all(r.status_code == 200 for r in responses[10:])
    assert await counted(world) == (6, 6, 6)


async def test_an_exchange_makes_no_hot_state_round_trip(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single use is in SQL; with no rate window on the delegation nothing needs Redis."""
    trips: list[str] = []
    hot = world.services.hot
    for name in ("apply", "claim", "incr", "get", "delete", "publish"):
        real = getattr(hot, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            trips.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(hot, name, spy)
    responses = await asyncio.gather(*(world.exchange() for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert trips == []
    # The spy sees trips when there are some: a rate window is one.
    await world.delegate(rate_per_minute=100)
    assert (await world.exchange()).status_code == 200
    assert trips == ["apply"]
