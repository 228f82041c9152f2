"""Behaviour baselines and promotion proposals (``storage.behaviour``) on ``Tables``."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from authority.ledger.entries import Entry
from authority.storage.behaviour import (
    Accepting,
    AgentBaseline,
    AgentRecord,
    CallRow,
    Proposal,
    StepUp,
)

from . import Tables


class MemoryBehaviourStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def fold(self, *, until: int, start: int) -> int | None:
        t = self._tables
        cursor = start if t.behaviour_folded_until is None else t.behaviour_folded_until
        if until <= cursor:
            return 0
        t.behaviour_folded_until = until
        chosen = [
            g
            for g in t.grants.values()
            if g["decision"] == "issued"
            and g.get("agent_id") is not None
            and g.get("tool") is not None
            and g.get("action") is not None
            and g.get("resource") is not None
            and cursor <= g["created_at"] < until
        ]
        minutes: dict[str, set[int]] = {}
        for g in chosen:
            key = (g["agent_id"], g["tool"], g["action"], g["resource"])
            at = int(g["created_at"])
            row = t.behaviour_calls.setdefault(key, {"calls": 0, "first_at": at, "last_at": at})
            row.update(calls=row["calls"] + 1, last_at=max(row["last_at"], at))
            minutes.setdefault(g["agent_id"], set()).add(at // 60)
            total = t.behaviour_agents.setdefault(
                g["agent_id"],
                {"agent_id": g["agent_id"], "calls": 0, "active_minutes": 0, "first_at": at},
            )
            total.update(calls=total["calls"] + 1, last_at=max(total.get("last_at", at), at))
        for agent_id, seen in minutes.items():
            t.behaviour_agents[agent_id]["active_minutes"] += len(seen)
        return len(chosen)

    def _baseline(self, row: dict[str, Any]) -> AgentBaseline:
        tools = {key[1] for key in self._tables.behaviour_calls if key[0] == row["agent_id"]}
        return AgentBaseline(
            row["agent_id"],
            row["calls"],
            row["active_minutes"],
            row["first_at"],
            row["last_at"],
            frozenset(tools),
        )

    async def note(self, entries: Sequence[Entry]) -> None:
        t = self._tables
        t.ledger_entries.extend(t.entry_rows(entries))

    async def baselines(self, *, since: int) -> Sequence[AgentBaseline]:
        rows = self._tables.behaviour_agents.values()
        return [self._baseline(row) for row in rows if row["last_at"] >= since]

    async def baseline(
        self, agent_id: str, *, limit: int
    ) -> tuple[AgentBaseline | None, Sequence[CallRow]]:
        t = self._tables
        row = t.behaviour_agents.get(agent_id)
        calls = [
            CallRow(key[1], key[3], key[2], v["calls"], v["first_at"], v["last_at"])
            for key, v in t.behaviour_calls.items()
            if key[0] == agent_id
        ]
        calls.sort(key=lambda c: (-c.calls, c.tool, c.action, c.resource))
        return (None if row is None else self._baseline(row)), calls[:limit]

    async def step_ups(self, agent_id: str, *, reason: str, limit: int) -> Sequence[StepUp]:
        rows = [
            a
            for a in self._tables.approvals.values()
            if a["agent_id"] == agent_id and a["reason"] == reason
        ]
        rows.sort(key=lambda a: (a["created_at"], a["id"]), reverse=True)
        return [StepUp(a["id"], a["created_at"], a["status"], a["request"]) for a in rows[:limit]]

    async def record(
        self, agent_id: str, *, violations: Collection[str], step_up: str
    ) -> AgentRecord | None:
        t = self._tables
        agent = t.agents.get(agent_id)
        if agent is None:
            return None
        changes = [
            e["created_at"]
            for e in t.ledger_entries
            if e["kind"] == "autonomy_changed" and e["agent_id"] == agent_id
        ]
        since = max(changes, default=0)
        mine = [
            g
            for g in t.grants.values()
            if g.get("agent_id") == agent_id and g["created_at"] >= since
        ]
        issued = [g["created_at"] for g in mine if g["decision"] == "issued"]
        contained = sum(
            1
            for e in t.ledger_entries
            if e["kind"] == "agent_contained"
            and e["agent_id"] == agent_id
            and e["created_at"] >= since
        )
        return AgentRecord(
            agent_id=agent_id,
            owner_id=agent["owner_id"],
            status=agent["status"],
            autonomy_level=int(agent["autonomy_level"]),
            since=since,
            first_call=min(issued, default=None),
            calls=len(issued),
            violations=contained
            + sum(1 for g in mine if g["decision"] == "denied" and g["reason"] in violations),
            step_ups=sum(1 for g in mine if g["decision"] == "pending" and g["reason"] == step_up),
        )

    async def propose(self, proposal: Proposal, entry: Entry) -> bool:
        t = self._tables
        rows = t.promotion_proposals.values()
        if any(p["agent_id"] == proposal.agent_id and p["status"] == "proposed" for p in rows):
            return False
        written = t.entry_rows([entry])
        t.promotion_proposals[proposal.id] = dataclasses.asdict(proposal)
        t.ledger_entries.extend(written)
        return True

    async def proposals(self, agent_id: str, *, limit: int) -> Sequence[Proposal]:
        rows = [p for p in self._tables.promotion_proposals.values() if p["agent_id"] == agent_id]
        rows.sort(key=lambda p: (p["created_at"], p["id"]), reverse=True)
        return [Proposal(**p) for p in rows[:limit]]

    async def accept(
        self, proposal_id: str, *, actor: str, now: int, entries: Accepting, holds: bool = True
    ) -> Proposal | str:
        t = self._tables
        row = t.promotion_proposals.get(proposal_id)
        if row is None or row["status"] != "proposed":
            return "unknown" if row is None else "stale"
        agent = t.agents.get(row["agent_id"])
        decided = {"decided_at": now, "decided_by": actor}
        if (
            not holds
            or agent is None
            or agent["status"] != "active"
            or agent["autonomy_level"] != row["from_level"]
        ):
            row.update(status="stale", **decided)
            return "stale"
        accepted = Proposal(**{**row, "status": "accepted", **decided})
        written = t.entry_rows(entries(accepted))
        agent.update(autonomy_level=row["to_level"], updated_at=now)
        row.update(status="accepted", **decided)
        t.ledger_entries.extend(written)
        return accepted
