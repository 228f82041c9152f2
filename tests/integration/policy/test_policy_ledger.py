"""The offline verifier on a ledger of old and new entries: grants before and after they
named a policy version, and the policy's own changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from authority.context import Services
from authority.ledger.checkpoints import ledger_keyset
from authority.ledger.verify import verify_export
from authority.storage.sql.ledger import append
from tests.integration.ledger.ledgerdata import auditor_headers, fetch_checkpoints, fetch_export
from tests.unit.ledger.records import EXAMPLES, grant


async def _lines(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_old_and_new_entries_verify(services: Services, client: httpx.AsyncClient) -> None:
    written = [
        ("grant", 1, grant(1)),
        ("grant", 2, grant(2, "issued")),
        ("grant", 3, grant(3)),  # refused before the rules: no version
        ("grant", 3, {**grant(4, "issued"), "policy_version": 0}),
        ("policy_changed", 1, EXAMPLES["policy_changed"]),
        ("grant", 3, {**grant(5), "policy_version": 2}),
    ]
    for n, (kind, version, record) in enumerate(written):
        async with services.engine.begin() as conn:
            await append(
                conn, kind=kind, version=version, created_at=services.now() + n, record=record
            )
    assert services.sequencer is not None
    await services.sequencer.run_once()
    headers = await auditor_headers(services)
    lines = await fetch_export(client, headers)
    checkpoints = await fetch_checkpoints(client, headers)
    jwks = (await client.get("/v1/ledger/keys")).json()
    report = await verify_export(_lines(lines), checkpoints, ledger_keyset(jwks))
    assert report.kinds["grant"] == 5 and report.kinds["policy_changed"] == 1
