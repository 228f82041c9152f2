"""On PostgreSQL no transaction may stay open past the bound the ledger's sequencer
relies on (ledger/sequencer.py: the straggler window)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from authority.context import Services


async def test_postgres_sessions_carry_the_transaction_timeout(
    services: Services, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite transactions are in process and serialised")
    expected = int(services.settings.ledger_straggler_window / 5 * 1000)
    query = text(
        "SELECT setting FROM pg_settings "
        "WHERE name IN ('idle_in_transaction_session_timeout', 'statement_timeout')"
    )
    async with services.engine.connect() as conn:
        settings = [int(value) for value in (await conn.execute(query)).scalars()]
    assert settings == [expected, expected]  # both in milliseconds
