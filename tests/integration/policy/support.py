"""What the policy tests share: the ledger's entries by kind, and a change over the API."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import func, select

from authority.storage.schema import grants, ledger_entries
from tests.support import World

FORBID_CREATE = """@id("no-issues-in-web")
forbid(principal, action == Action::"create", resource)
  when { context.resource == "acme/web" };
"""


async def entries(world: World, kind: str) -> list[dict[str, Any]]:
    query = (
        select(ledger_entries.c.body)
        .where(ledger_entries.c.kind == kind)
        .order_by(ledger_entries.c.id)
    )
    async with world.services.engine.connect() as conn:
        return [json.loads(row.body) for row in await conn.execute(query)]


async def counts(world: World) -> tuple[int, int]:
    """How many ledger entries and grants are stored."""
    async with world.services.engine.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(ledger_entries))).scalar()
        granted = (await conn.execute(select(func.count()).select_from(grants))).scalar()
    return int(stored or 0), int(granted or 0)


async def set_policy(
    world: World, text: str, key: str | None = None, **extra: Any
) -> httpx.Response:
    return await world.client.post(
        "/v1/policies", json={"text": text, **extra}, headers=world.auth(key or world.admin)
    )
