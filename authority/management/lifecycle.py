"""An agent's lifecycle state changes, by an actor: quarantine and release.

Each is one transaction that makes the change and writes its ledger entry (``actor``:
who did it, an API key's id or ``authority:containment``; the reason given), plus the
revocation event when tokens stop being good; the feed is woken once it commits
(``domain_events.Revoked``). No role is checked here: the owner's controls
(``management.controls``) check the caller's role and scope first and pass what it
permits; automatic containment (``authority.containment``) acts as the authority itself.
The agent's row, its entry and its event are written by one ``replace`` of the agents
port (``authority.storage.agents``).
"""

from __future__ import annotations

from dataclasses import replace

from authority.context import Services
from authority.domain_events import Revoked
from authority.errors import Conflict, InsufficientScope
from authority.revocations import events
from authority.storage.agents import AgentRow
from authority.storage.registry import NewEvent, Stale, Taken, Written

from . import records
from .agents import NOT_FOUND, RETIRED, found


async def quarantine(
    services: Services,
    agent_id: str,
    *,
    actor: str,
    reason: str,
    overrides: bool,
    scope: str | None = None,
) -> AgentRow:
    """Quarantine now; the agent's row afterwards.

    Quarantining a quarantined agent changes nothing, except that an ``overrides`` actor
    (an admin) takes over a quarantine no admin made, so that only an admin can lift it.
    ``scope``: the owner whose agents the actor may see (another owner's agent is 404);
    None for every owner's (``agents.scope``).
    """

    async def attempt() -> Written[AgentRow] | Stale:
        row = await found(services, agent_id, scope)
        if row.status == "retired":
            raise Conflict(RETIRED)
        was_active = row.status == "active"
        takes_over = (
            row.status == "quarantined"
            and overrides
            and not await quarantined_by_admin(services, row.quarantined_by)
        )
        if not (was_active or takes_over):
            return Written(row)
        now = services.now()
        record = {"agent_id": agent_id, "owner_id": row.owner_id, "actor": actor, "reason": reason}
        revoked = NewEvent(
            kind="agent",
            time=now,
            expires_at=events.cascade_expiry(services.settings, now),
            agent_id=agent_id,
            owner_id=row.owner_id,
        )
        written = await services.agent_store.replace(
            row,
            replace(
                row,
                status="quarantined",
                status_reason=reason,
                quarantined_by=actor,
                updated_at=now,
            ),
            entries=[("agent_quarantined", 1, now, record)],
            # Tokens stop being good when the agent stops being active, not on a takeover.
            events=[revoked] if was_active else [],
        )
        if isinstance(written, Taken):  # the name is unchanged: cannot happen
            raise Conflict(NOT_FOUND)
        return written

    written = await records.until_written(attempt)
    if written.events:
        await services.events.publish(Revoked(written.events))
    return written.row


async def release(
    services: Services,
    agent_id: str,
    *,
    actor: str,
    reason: str | None,
    lifts_admin_quarantine: bool,
    scope: str | None = None,
) -> AgentRow:
    """Lift a quarantine; releasing an active agent changes nothing. The row afterwards.

    An admin's quarantine is lifted only when ``lifts_admin_quarantine`` (an admin).
    ``scope`` as for ``quarantine``.
    """

    async def attempt() -> Written[AgentRow] | Stale:
        row = await found(services, agent_id, scope)
        if row.status == "retired":
            raise Conflict(RETIRED)
        if row.status != "quarantined":
            return Written(row)
        if not lifts_admin_quarantine and await quarantined_by_admin(services, row.quarantined_by):
            raise InsufficientScope("An administrator's quarantine is lifted by an admin.")
        now = services.now()
        record = {"agent_id": agent_id, "owner_id": row.owner_id, "actor": actor, "reason": reason}
        written = await services.agent_store.replace(
            row,
            replace(row, status="active", status_reason=None, quarantined_by=None, updated_at=now),
            entries=[("agent_released", 1, now, record)],
        )
        if isinstance(written, Taken):  # the name is unchanged: cannot happen
            raise Conflict(NOT_FOUND)
        return written

    return (await records.until_written(attempt)).row


async def quarantined_by_admin(services: Services, key_id: str | None) -> bool:
    """Whether the quarantine's author is an admin's API key (a key's role never changes)."""
    if key_id is None:
        return False
    return await services.api_key_store.role_of(key_id) == "admin"
