"""Automatic containment's port (``storage.containment``) in SQL, through the engine."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.storage.containment import Account, Decide, History, NotRecorded
from authority.storage.schema import agents, ledger_entries
from authority.storage.sql.ledger import append_many


class SqlContainmentStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def agent_status(self, agent_id: str) -> str | None:
        async with self._reader.connect() as conn:
            status = (
                await conn.execute(select(agents.c.status).where(agents.c.id == agent_id))
            ).scalar()
        return None if status is None else str(status)

    async def record(
        self, agent_id: str, *, since: int, now: int, decide: Decide
    ) -> tuple[History, Account] | None:
        try:
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(agents.c.autonomy_level)
                        .where(agents.c.id == agent_id)
                        .with_for_update()
                    )
                ).first()
                if row is None:
                    return None
                earlier = (
                    await conn.execute(
                        select(func.count()).where(
                            ledger_entries.c.kind == "agent_contained",
                            ledger_entries.c.agent_id == agent_id,
                            ledger_entries.c.created_at >= since,
                        )
                    )
                ).scalar_one()
                history = History(int(row.autonomy_level), int(earlier))
                account = decide(history)
                if account.autonomy_level is not None:
                    await conn.execute(
                        update(agents)
                        .where(agents.c.id == agent_id)
                        .values(autonomy_level=account.autonomy_level, updated_at=now)
                    )
                await append_many(conn, account.entries)
        except (SQLAlchemyError, OSError) as exc:
            raise NotRecorded(str(exc)) from exc
        return history, account
