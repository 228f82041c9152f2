"""A small real ledger: entries of every kind appended through ``append``, sequenced."""

from __future__ import annotations

import httpx

from authority.context import Services
from authority.ledger.schemas import LATEST
from authority.management.api_keys import issue_operator_key
from authority.storage.sql.ledger import append
from tests.unit.ledger.records import EXAMPLES, grant


async def populate(services: Services, count: int = 30, every: int = 3) -> int:
    """Append ``count`` entries (grants and every other kind) with a round every ``every``.

    Returns the tree size: the entries plus those the keyring wrote at start-up.
    """
    sequencer = services.sequencer
    assert sequencer is not None
    kinds = sorted(EXAMPLES)
    for n in range(count):
        async with services.engine.begin() as conn:
            if n % 3 == 2:  # every kind once in 3 x len(kinds) entries
                kind = kinds[(n // 3) % len(kinds)]
                record = EXAMPLES[kind]
            else:
                kind, record = "grant", grant(n, "issued" if n % 2 else "denied")
            await append(
                conn, kind=kind, version=LATEST[kind], created_at=services.now() + n, record=record
            )
        if n % every == every - 1:
            await sequencer.run_once()
    await sequencer.run_once()
    latest = await services.ledger_reader.latest_checkpoint()
    assert latest is not None
    return latest.tree_size


async def auditor_headers(services: Services) -> dict[str, str]:
    issued = await issue_operator_key(services, "auditor", "ledger tests")
    return {"Authorization": f"Bearer {issued.secret}"}


async def fetch_export(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/v1/ledger/export", headers=headers)
    assert response.status_code == 200, response.text
    return response.text.splitlines()


async def fetch_checkpoints(client: httpx.AsyncClient, headers: dict[str, str]) -> list[object]:
    items: list[object] = []
    cursor: str | None = None
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/ledger/checkpoints", headers=headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
