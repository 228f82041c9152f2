"""The delegations port (``storage.delegations``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from authority.ledger.entries import Entry
from authority.storage.delegations import (
    Delegation,
    Grant,
    Grantee,
    Position,
    Revoked,
    ScopedTool,
)

from . import Tables, page

_COLUMNS = tuple(field.name for field in fields(Delegation))


def _delegation(row: dict[str, Any]) -> Delegation:
    values: dict[str, Any] = {name: row.get(name) for name in _COLUMNS}
    return Delegation(**values)


def _visible(row: dict[str, Any] | None, owner_id: str | None) -> bool:
    return row is not None and (owner_id is None or row.get("owner_id") == owner_id)


class MemoryDelegationStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def create(
        self, owner_id: str, agent_id: str, tool_names: Sequence[str], grant: Grant
    ) -> Delegation | None:
        tables = self._tables
        agent = tables.agents.get(agent_id)
        if agent is None or agent.get("owner_id") != owner_id:
            return None
        known: dict[str, ScopedTool] = {}
        for name in tool_names:
            tool = tables.tool_named(name)
            if tool is not None:
                known[name] = ScopedTool(name, tool["actions"], tool["status"])
        new = grant(Grantee(agent["status"], agent["jwks"]), known)
        (entry,) = tables.entry_rows([new.entry])
        tables.delegations[new.delegation.id] = asdict(new.delegation)
        tables.ledger_entries.append(entry)
        return new.delegation

    async def get(self, delegation_id: str, owner_id: str | None) -> Delegation | None:
        row = self._tables.delegations.get(delegation_id)
        return _delegation(row) if row is not None and _visible(row, owner_id) else None

    async def page(
        self,
        *,
        owner_id: str | None,
        agent_id: str | None,
        limit: int,
        after: Position | None,
    ) -> tuple[list[Delegation], Position | None]:
        def where(row: dict[str, Any]) -> bool:
            return _visible(row, owner_id) and (agent_id is None or row["agent_id"] == agent_id)

        rows, last = page(self._tables.delegations.values(), limit=limit, after=after, where=where)
        return [_delegation(r) for r in rows], last

    async def revoke(
        self,
        delegation_id: str,
        owner_id: str | None,
        *,
        now: int,
        actor: str,
        reason: str | None,
        entry: Entry,
        event_expires_at: int,
    ) -> Revoked | None:
        tables = self._tables
        row = tables.delegations.get(delegation_id)
        if row is None or not _visible(row, owner_id):
            return None
        if row["status"] != "active":
            return Revoked(_delegation(row), None)
        (written,) = tables.entry_rows([entry])
        row.update(status="revoked", revoked_at=now, revoked_by=actor, revoked_reason=reason)
        tables.ledger_entries.append(written)
        event = tables.record_event(
            kind="delegation",
            now=now,
            expires_at=event_expires_at,
            delegation_id=delegation_id,
            owner_id=row["owner_id"],
            agent_id=row["agent_id"],
        )
        return Revoked(_delegation(row), event)
