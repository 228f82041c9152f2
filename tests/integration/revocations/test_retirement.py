"""Retiring an agent or an owner stops its tokens everywhere, and the ledger says so."""

from __future__ import annotations

import json

from sqlalchemy import select

from authority.storage.schema import ledger_entries, revocation_events
from tests.support import World


async def _events(world: World) -> list[tuple[str, str | None, str | None]]:
    async with world.services.engine.connect() as conn:
        rows = (await conn.execute(select(revocation_events))).all()
    return [(r.kind, r.agent_id, r.owner_id) for r in rows]


async def _entries(world: World, kind: str) -> list[dict[str, object]]:
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(select(ledger_entries).where(ledger_entries.c.kind == kind))
        ).all()
    return [json.loads(r.body) for r in rows]


async def test_retiring_an_agent_is_a_feed_event_and_a_ledger_entry(world: World) -> None:
    token = (await world.exchange()).json()["access_token"]
    assert token
    retired = await world.client.delete(
        f"/v1/agents/{world.agent_id}", headers=world.auth(world.owner_key)
    )
    assert retired.status_code == 200
    assert ("agent", world.agent_id, world.owner_id) in await _events(world)
    [entry] = await _entries(world, "agent_retired")
    assert entry["agent_id"] == world.agent_id
    # Retiring again changes nothing: no second event or entry.
    await world.client.delete(f"/v1/agents/{world.agent_id}", headers=world.auth(world.owner_key))
    assert len(await _entries(world, "agent_retired")) == 1


async def test_retiring_an_owner_is_a_feed_event_and_a_ledger_entry(world: World) -> None:
    retired = await world.client.delete(
        f"/v1/owners/{world.owner_id}", headers=world.auth(world.admin)
    )
    assert retired.status_code == 200
    assert ("owner", None, world.owner_id) in await _events(world)
    [entry] = await _entries(world, "owner_retired")
    assert entry["owner_id"] == world.owner_id
    assert (await world.exchange()).status_code == 400
