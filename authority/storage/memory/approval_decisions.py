"""The owner's side of approvals (``storage.approval_decisions``) on ``Tables``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal

from authority.ledger.entries import Entry
from authority.storage.approval_decisions import Position, Status, StoredApproval

from . import Tables, page

_COLUMNS = tuple(field.name for field in fields(StoredApproval))


def _approval(row: dict[str, Any]) -> StoredApproval:
    values: dict[str, Any] = {name: row.get(name) for name in _COLUMNS}
    return StoredApproval(**values)


def _in_status(row: dict[str, Any], status: Status, now: int) -> bool:
    if status == "all":
        return True
    if status == "expired":
        return row["status"] in ("pending", "approved") and row["expires_at"] <= now
    if status in ("pending", "approved"):
        return bool(row["status"] == status and row["expires_at"] > now)
    return bool(row["status"] == status)


class MemoryApprovalDecisionStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def get(self, approval_id: str, owner_id: str | None) -> StoredApproval | None:
        row = self._tables.approvals.get(approval_id)
        if row is None or (owner_id is not None and row["owner_id"] != owner_id):
            return None
        return _approval(row)

    async def page(
        self,
        *,
        owner_id: str | None,
        status: Status,
        agent_id: str | None,
        now: int,
        limit: int,
        after: Position | None,
    ) -> tuple[list[StoredApproval], Position | None]:
        def where(row: dict[str, Any]) -> bool:
            return (
                (owner_id is None or row["owner_id"] == owner_id)
                and (agent_id is None or row["agent_id"] == agent_id)
                and _in_status(row, status, now)
            )

        rows, last = page(self._tables.approvals.values(), limit=limit, after=after, where=where)
        return [_approval(r) for r in rows], last

    async def decide(
        self,
        approval_id: str,
        *,
        decision: Literal["approved", "denied"],
        now: int,
        actor: str,
        reason: str | None,
        entry: Entry,
    ) -> StoredApproval | None:
        tables = self._tables
        row = tables.approvals.get(approval_id)
        if row is None or row["status"] != "pending" or row["expires_at"] <= now:
            return None
        (written,) = tables.entry_rows([entry])
        row.update(status=decision, decided_at=now, decided_by=actor, decision_reason=reason)
        tables.ledger_entries.append(written)
        return _approval(row)
