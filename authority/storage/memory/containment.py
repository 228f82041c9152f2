"""Automatic containment's port (``storage.containment``) on ``Tables``."""

from __future__ import annotations

from authority.storage.containment import Account, Decide, History

from . import Tables


class MemoryContainmentStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def agent_status(self, agent_id: str) -> str | None:
        agent = self._tables.agents.get(agent_id)
        return None if agent is None else str(agent["status"])

    async def record(
        self, agent_id: str, *, since: int, now: int, decide: Decide
    ) -> tuple[History, Account] | None:
        tables = self._tables
        agent = tables.agents.get(agent_id)
        if agent is None:
            return None
        earlier = sum(
            1
            for entry in tables.ledger_entries
            if entry["kind"] == "agent_contained"
            and entry["agent_id"] == agent_id
            and entry["created_at"] >= since
        )
        history = History(int(agent["autonomy_level"]), earlier)
        account = decide(history)
        written = tables.entry_rows(account.entries)
        if account.autonomy_level is not None:
            agent.update(autonomy_level=account.autonomy_level, updated_at=now)
        tables.ledger_entries.extend(written)
        return history, account
