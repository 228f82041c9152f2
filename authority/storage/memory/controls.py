"""The kill switch's port (``storage.controls``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authority.storage.controls import (
    Batch,
    BatchEntries,
    Cascade,
    Contained,
    KillEntry,
    RevokedDelegation,
)

from . import Tables


def _covered(row: dict[str, Any], owner_id: str, contained_at: int) -> bool:
    return bool(
        row["owner_id"] == owner_id
        and row["status"] == "active"
        and row["created_at"] <= contained_at
    )


class MemoryControlsStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def agent_owner(self, agent_id: str) -> str | None:
        agent = self._tables.agents.get(agent_id)
        return None if agent is None else str(agent["owner_id"])

    async def kill(
        self,
        owner_id: str,
        *,
        actor: str,
        reason: str,
        now: int,
        entry: KillEntry,
        event_expires_at: int,
    ) -> Contained | None:
        tables = self._tables
        owner = tables.owners.get(owner_id)
        if owner is None:
            return None
        agent_count = sum(1 for a in tables.agents.values() if _covered(a, owner_id, now))
        (written,) = tables.entry_rows([entry(agent_count)])
        if owner["status"] == "active":
            owner.update(status="suspended", updated_at=now)
        cascade_id = len(tables.containment_cascades) + 1
        tables.containment_cascades.append(
            {
                "id": cascade_id,
                "owner_id": owner_id,
                "actor": actor,
                "reason": reason,
                "contained_at": now,
                "phase": "agents",
                "cursor": None,
                "quarantined": 0,
                "revoked": 0,
                "finished_at": None,
            }
        )
        tables.ledger_entries.append(written)
        event = tables.record_event(
            kind="owner", now=now, expires_at=event_expires_at, owner_id=owner_id
        )
        return Contained(cascade_id, event)

    async def step(self, cascade_id: int, *, now: int, limit: int, entries: BatchEntries) -> Batch:
        tables = self._tables
        if not 1 <= cascade_id <= len(tables.containment_cascades):
            return Batch(finished=True)
        row = tables.containment_cascades[cascade_id - 1]
        if row["finished_at"] is not None:
            return Batch(finished=True)
        marker = Cascade(
            row["id"], row["owner_id"], row["actor"], row["reason"], row["contained_at"]
        )
        cursor = row["cursor"]
        if row["phase"] == "agents":
            chosen = sorted(
                agent["id"]
                for agent in tables.agents.values()
                if _covered(agent, marker.owner_id, marker.contained_at)
                and (cursor is None or agent["id"] > cursor)
            )[:limit]
            if not chosen:
                row.update(phase="delegations", cursor=None)
                return Batch(finished=False)
            batch = Batch(finished=False, quarantined=tuple(chosen))
            written = tables.entry_rows(entries(marker, batch))
            for agent_id in chosen:
                tables.agents[agent_id].update(
                    status="quarantined",
                    status_reason=marker.reason,
                    quarantined_by=marker.actor,
                    updated_at=now,
                )
            tables.ledger_entries.extend(written)
            row.update(cursor=chosen[-1], quarantined=row["quarantined"] + len(chosen))
            return batch
        if row["phase"] == "delegations":
            found = sorted(
                (
                    d
                    for d in tables.delegations.values()
                    if _covered(d, marker.owner_id, marker.contained_at)
                    and (cursor is None or d["id"] > cursor)
                ),
                key=lambda d: str(d["id"]),
            )[:limit]
            if not found:
                self._finish(row, now)
                return Batch(finished=True)
            batch = Batch(
                finished=False,
                revoked=tuple(RevokedDelegation(d["id"], d["agent_id"]) for d in found),
            )
            written = tables.entry_rows(entries(marker, batch))
            for d in found:
                d.update(
                    status="revoked",
                    revoked_at=marker.contained_at,
                    revoked_by=marker.actor,
                    revoked_reason=marker.reason,
                )
            tables.ledger_entries.extend(written)
            row.update(cursor=found[-1]["id"], revoked=row["revoked"] + len(found))
            return batch
        self._finish(row, now)
        return Batch(finished=True)

    def _finish(self, row: dict[str, Any], now: int) -> None:
        tables = self._tables
        row.update(phase="done", cursor=None, finished_at=now)
        others = any(
            c["owner_id"] == row["owner_id"] and c["finished_at"] is None
            for c in tables.containment_cascades
        )
        owner = tables.owners.get(row["owner_id"])
        if not others and owner is not None and owner["status"] == "suspended":
            owner.update(status="active", updated_at=now)

    async def unfinished(self, owner_id: str | None = None) -> list[int]:
        return [
            int(c["id"])
            for c in self._tables.containment_cascades
            if c["finished_at"] is None and (owner_id is None or c["owner_id"] == owner_id)
        ]

    async def refused_since(self, owner_id: str, since: int, reasons: Sequence[str]) -> int:
        tables = self._tables
        owned = {a["id"] for a in tables.agents.values() if a["owner_id"] == owner_id}
        return sum(
            1
            for g in tables.grants.values()
            if g.get("agent_id") in owned
            and g["created_at"] >= since
            and g["decision"] == "denied"
            and g.get("reason") in reasons
        )
