"""The ledger tables refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) at the database."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from authority.context import Services
from authority.ledger.sequencer import Sequencer

from .test_sequencer import add

STATEMENTS = [
    "UPDATE ledger_entries SET body = '{}'",
    "DELETE FROM ledger_entries",
    "UPDATE ledger_leaves SET leaf_index = leaf_index + 100",
    "DELETE FROM ledger_leaves",
    "UPDATE ledger_nodes SET hash = hash",
    "DELETE FROM ledger_nodes",
    "UPDATE ledger_checkpoints SET signed = 'x'",
    "DELETE FROM ledger_checkpoints",
]


@pytest.mark.parametrize("statement", STATEMENTS)
async def test_ledger_rows_cannot_change(
    services: Services, sequencer: Sequencer, statement: str
) -> None:
    await add(services, 0, 4)
    await sequencer.run_once()
    with pytest.raises(DBAPIError, match="append-only"):
        async with services.engine.begin() as conn:
            await conn.execute(text(statement))


@pytest.mark.parametrize(
    "table", ["ledger_entries", "ledger_leaves", "ledger_nodes", "ledger_checkpoints"]
)
async def test_ledger_tables_cannot_be_truncated(
    services: Services, sequencer: Sequencer, table: str
) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    await add(services, 0, 4)
    await sequencer.run_once()
    with pytest.raises(DBAPIError, match="append-only"):
        async with services.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {table} CASCADE"))
