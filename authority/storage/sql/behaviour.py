"""Behaviour baselines and promotion proposals (``storage.behaviour``) in SQL, through the engine.

Background work and management reads only: nothing here is on the exchange's path.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.behaviour import (
    Accepting,
    AgentBaseline,
    AgentRecord,
    CallRow,
    Proposal,
    StepUp,
)
from authority.storage.schema import (
    agents,
    approvals,
    behaviour_agents,
    behaviour_calls,
    behaviour_folds,
    grants,
    ledger_entries,
    promotion_proposals,
)
from authority.storage.sql.ledger import append_many

_FOLD_ROW = 1
_P = promotion_proposals.c


def _proposal(row: Any) -> Proposal:
    return Proposal(
        id=row.id,
        agent_id=row.agent_id,
        owner_id=row.owner_id,
        created_at=int(row.created_at),
        status=row.status,
        from_level=int(row.from_level),
        to_level=int(row.to_level),
        rule=row.rule,
        record=row.record,
        decided_at=None if row.decided_at is None else int(row.decided_at),
        decided_by=row.decided_by,
    )


class SqlBehaviourStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def fold(self, *, until: int, start: int) -> int | None:
        try:
            async with self._engine.begin() as conn:
                cursor = (
                    await conn.execute(
                        select(behaviour_folds.c.folded_until).where(
                            behaviour_folds.c.id == _FOLD_ROW
                        )
                    )
                ).scalar()
                if cursor is None:
                    await conn.execute(
                        insert(behaviour_folds).values(id=_FOLD_ROW, folded_until=until)
                    )
                    cursor = start
                elif until <= cursor:
                    return 0
                else:
                    moved = await conn.execute(
                        update(behaviour_folds)
                        .where(
                            behaviour_folds.c.id == _FOLD_ROW,
                            behaviour_folds.c.folded_until == cursor,
                        )
                        .values(folded_until=until)
                    )
                    if moved.rowcount != 1:
                        return None
                return await _fold(conn, int(cursor), until)
        except IntegrityError:  # another instance wrote the first fold row meanwhile
            return None

    async def note(self, entries: Sequence[Entry]) -> None:
        async with self._engine.begin() as conn:
            await append_many(conn, entries)

    async def baselines(self, *, since: int) -> Sequence[AgentBaseline]:
        a, c = behaviour_agents.c, behaviour_calls.c
        async with self._reader.connect() as conn:
            totals = (await conn.execute(select(behaviour_agents).where(a.last_at >= since))).all()
            if not totals:
                return []
            tools: dict[str, set[str]] = {}
            ids = [row.agent_id for row in totals]
            for chunk in range(0, len(ids), 500):
                query = (
                    select(c.agent_id, c.tool)
                    .where(c.agent_id.in_(ids[chunk : chunk + 500]))
                    .distinct()
                )
                for row in (await conn.execute(query)).all():
                    tools.setdefault(row.agent_id, set()).add(row.tool)
        return [_baseline(row, tools.get(row.agent_id, set())) for row in totals]

    async def baseline(
        self, agent_id: str, *, limit: int
    ) -> tuple[AgentBaseline | None, Sequence[CallRow]]:
        a, c = behaviour_agents.c, behaviour_calls.c
        async with self._reader.connect() as conn:
            total = (
                await conn.execute(select(behaviour_agents).where(a.agent_id == agent_id))
            ).first()
            rows = (
                await conn.execute(
                    select(behaviour_calls)
                    .where(c.agent_id == agent_id)
                    .order_by(c.calls.desc(), c.tool, c.action, c.resource)
                    .limit(limit)
                )
            ).all()
            names = (
                await conn.execute(select(c.tool).where(c.agent_id == agent_id).distinct())
            ).scalars()
            tools = {str(name) for name in names}
        calls = [
            CallRow(r.tool, r.resource, r.action, int(r.calls), int(r.first_at), int(r.last_at))
            for r in rows
        ]
        return (None if total is None else _baseline(total, tools)), calls

    async def step_ups(self, agent_id: str, *, reason: str, limit: int) -> Sequence[StepUp]:
        c = approvals.c
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(c.id, c.created_at, c.status, c.request)
                    .where(c.agent_id == agent_id, c.reason == reason)
                    .order_by(c.created_at.desc(), c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [StepUp(r.id, int(r.created_at), r.status, r.request) for r in rows]

    async def record(
        self, agent_id: str, *, violations: Collection[str], step_up: str
    ) -> AgentRecord | None:
        g, e = grants.c, ledger_entries.c
        async with self._reader.connect() as conn:
            agent = (
                await conn.execute(
                    select(agents.c.owner_id, agents.c.status, agents.c.autonomy_level).where(
                        agents.c.id == agent_id
                    )
                )
            ).first()
            if agent is None:
                return None
            changed = (
                await conn.execute(
                    select(func.max(e.created_at)).where(
                        e.kind == "autonomy_changed", e.agent_id == agent_id
                    )
                )
            ).scalar()
            since = int(changed or 0)
            mine = (g.agent_id == agent_id, g.created_at >= since)
            issued = (
                await conn.execute(
                    select(func.count(), func.min(g.created_at)).where(
                        *mine, g.decision == "issued"
                    )
                )
            ).one()
            denied = (
                await conn.execute(
                    select(func.count()).where(
                        *mine, g.decision == "denied", g.reason.in_(sorted(violations))
                    )
                )
            ).scalar_one()
            stepped = (
                await conn.execute(
                    select(func.count()).where(*mine, g.decision == "pending", g.reason == step_up)
                )
            ).scalar_one()
            contained = (
                await conn.execute(
                    select(func.count()).where(
                        e.kind == "agent_contained", e.agent_id == agent_id, e.created_at >= since
                    )
                )
            ).scalar_one()
        return AgentRecord(
            agent_id=agent_id,
            owner_id=agent.owner_id,
            status=agent.status,
            autonomy_level=int(agent.autonomy_level),
            since=since,
            first_call=None if issued[1] is None else int(issued[1]),
            calls=int(issued[0]),
            violations=int(denied) + int(contained),
            step_ups=int(stepped),
        )

    async def propose(self, proposal: Proposal, entry: Entry) -> bool:
        async with self._engine.begin() as conn:
            await conn.execute(
                select(agents.c.id).where(agents.c.id == proposal.agent_id).with_for_update()
            )
            open_one = (
                await conn.execute(
                    select(_P.id).where(_P.agent_id == proposal.agent_id, _P.status == "proposed")
                )
            ).first()
            if open_one is not None:
                return False
            await conn.execute(insert(promotion_proposals).values(**_values(proposal)))
            await append_many(conn, [entry])
        return True

    async def proposals(self, agent_id: str, *, limit: int) -> Sequence[Proposal]:
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(promotion_proposals)
                    .where(_P.agent_id == agent_id)
                    .order_by(_P.created_at.desc(), _P.id.desc())
                    .limit(limit)
                )
            ).all()
        return [_proposal(row) for row in rows]

    async def accept(
        self, proposal_id: str, *, actor: str, now: int, entries: Accepting, holds: bool = True
    ) -> Proposal | str:
        async with self._engine.begin() as conn:
            found = (await conn.execute(select(_P.agent_id).where(_P.id == proposal_id))).first()
            if found is None:
                return "unknown"
            # The agent's row first (as a proposal is written), then the proposal's: two
            # acceptances at once take turns, and the second sees the first's outcome.
            agent = (
                await conn.execute(
                    select(agents.c.status, agents.c.autonomy_level)
                    .where(agents.c.id == found.agent_id)
                    .with_for_update()
                )
            ).first()
            row = (
                await conn.execute(
                    select(promotion_proposals).where(_P.id == proposal_id).with_for_update()
                )
            ).first()
            if row is None or row.status != "proposed":
                return "unknown" if row is None else "stale"
            decided = {"decided_at": now, "decided_by": actor}
            still_open = (_P.id == proposal_id, _P.status == "proposed")
            if (
                not holds
                or agent is None
                or agent.status != "active"
                or agent.autonomy_level != row.from_level
            ):
                await conn.execute(
                    update(promotion_proposals).where(*still_open).values(status="stale", **decided)
                )
                return "stale"
            taken = await conn.execute(
                update(promotion_proposals).where(*still_open).values(status="accepted", **decided)
            )
            if taken.rowcount != 1:  # accepted or made stale meanwhile
                return "stale"
            accepted = Proposal(**{**_values(_proposal(row)), "status": "accepted", **decided})
            await conn.execute(
                update(agents)
                .where(agents.c.id == row.agent_id)
                .values(autonomy_level=row.to_level, updated_at=now)
            )
            await append_many(conn, entries(accepted))
        return accepted


def _values(proposal: Proposal) -> dict[str, Any]:
    return {
        "id": proposal.id,
        "agent_id": proposal.agent_id,
        "owner_id": proposal.owner_id,
        "created_at": proposal.created_at,
        "status": proposal.status,
        "from_level": proposal.from_level,
        "to_level": proposal.to_level,
        "rule": proposal.rule,
        "record": proposal.record,
        "decided_at": proposal.decided_at,
        "decided_by": proposal.decided_by,
    }


def _baseline(row: Any, tools: set[str]) -> AgentBaseline:
    return AgentBaseline(
        agent_id=row.agent_id,
        calls=int(row.calls),
        active_minutes=int(row.active_minutes),
        first_at=int(row.first_at),
        last_at=int(row.last_at),
        tools=frozenset(tools),
    )


async def _fold(conn: AsyncConnection, start: int, until: int) -> int:
    """Add the issued grants created in [start, until) to the tables; how many."""
    g, a, c = grants.c, behaviour_agents.c, behaviour_calls.c
    window = (
        g.decision == "issued",
        g.agent_id.is_not(None),
        g.tool.is_not(None),
        g.action.is_not(None),
        g.resource.is_not(None),
        g.created_at >= start,
        g.created_at < until,
    )
    keys = (g.agent_id, g.tool, g.action, g.resource)
    per_call = (
        await conn.execute(
            select(*keys, func.count(), func.min(g.created_at), func.max(g.created_at))
            .where(*window)
            .group_by(*keys)
        )
    ).all()
    for agent_id, tool, action, resource, n, first, last in per_call:
        key = (
            c.agent_id == agent_id,
            c.tool == tool,
            c.action == action,
            c.resource == resource,
        )
        moved = await conn.execute(
            update(behaviour_calls).where(*key).values(calls=c.calls + n, last_at=last)
        )
        if moved.rowcount == 0:
            await conn.execute(
                insert(behaviour_calls).values(
                    agent_id=agent_id,
                    tool=tool,
                    action=action,
                    resource=resource,
                    calls=n,
                    first_at=first,
                    last_at=last,
                )
            )
    minute = g.created_at // 60
    per_agent = (
        await conn.execute(
            select(
                g.agent_id,
                func.count(),
                func.count(minute.distinct()),
                func.min(g.created_at),
                func.max(g.created_at),
            )
            .where(*window)
            .group_by(g.agent_id)
        )
    ).all()
    total = 0
    for agent_id, n, minutes, first, last in per_agent:
        total += int(n)
        moved = await conn.execute(
            update(behaviour_agents)
            .where(a.agent_id == agent_id)
            .values(calls=a.calls + n, active_minutes=a.active_minutes + minutes, last_at=last)
        )
        if moved.rowcount == 0:
            await conn.execute(
                insert(behaviour_agents).values(
                    agent_id=agent_id,
                    calls=n,
                    active_minutes=minutes,
                    first_at=first,
                    last_at=last,
                )
            )
    return total
