"""The owner's controls: quarantine and release an agent, and the kill switch.

Each is one transaction that makes the change, writes its ledger entry (who: the API
key; why: the reason given) and its revocation event, and commits; then the revocation
feed is notified. Exchange and introspection read the agent, delegation and owner rows on
every request, so the change holds on every instance from the commit on.

* **Quarantine** pauses an agent: no exchange succeeds for it, and every token it holds
  is inactive (introspection checks the agent's status). Its delegations are untouched,
  so a **release** resumes them. Release is only ever explicit; an admin's quarantine is
  lifted only by an admin, so an owner (or a stolen owner key) cannot undo a security
  team's decision.
* **Kill switch**: an owner's stop of all their agents at once, contained in one small
  commit whatever the owner's size: the owner turns ``suspended`` (refused by every
  exchange, CIBA poll and introspection), with the ``kill_switch`` entry and the owner's
  revocation event. Then, in bounded batches (``authority.management.cascade``), every
  active delegation of the owner is revoked (final: delegations are never reinstated)
  and every active agent quarantined, each with its ledger entry; once done, the owner is
  ``active`` again. Quarantine as well as revocation, so that nothing the owner does
  afterwards by mistake (a new delegation, a script still running) brings an agent back
  without an explicit release; the owner must still be able to sign in, look at what
  happened and release agents one by one.

Who: an owner for their own agents (another owner's are 404), an admin for anyone's;
auditors never.

Lock order on PostgreSQL: the kill switch's containment locks only the owner row (and
inserts its marker); see ``storage.sql.controls`` for the batches. An exchange holds its
agent and owner rows FOR SHARE and then updates its delegation row, so neither can wait
for the other in a cycle, and the containment waits at most for the exchanges already
spending.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

from pydantic import StringConstraints

from authority import metrics
from authority.context import Services
from authority.errors import NotFound
from authority.ledger.entries import Entry
from authority.revocations import events

from . import cascade, lifecycle, records
from .agents import NOT_FOUND, Agent
from .agents import _agent as agent_view
from .auth import WRITERS, Principal, may_see_owner, require_role, sees_all
from .inputs import Body, Description

Reason = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=2000,
        # Like Description, and not blank: the ledger says why.
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$",
    ),
]


class QuarantineBody(Body):
    reason: Reason


class ReleaseBody(Body):
    reason: Description | None = None


class KillBody(Body):
    reason: Reason


@dataclass(frozen=True, slots=True)
class Killed:
    owner_id: str
    time: int
    revoked_delegations: list[str]
    quarantined_agents: list[str]
    event_id: int
    #: When every instance began refusing the owner's calls (the containment's commit).
    contained_at: int
    #: The owner's calls refused for the containment from then until this answer.
    refused_since: int


async def _check_visible(services: Services, principal: Principal, agent_id: str) -> None:
    """Another owner's agent does not exist for an owner (404); whose an agent is never
    changes, so this holds for the change that follows."""
    if sees_all(principal):
        return
    owner_id = None
    if records.valid_id(agent_id):
        owner_id = await services.controls_store.agent_owner(agent_id)
    if owner_id is None or owner_id != principal.owner_id:
        raise NotFound(NOT_FOUND)


async def quarantine(
    services: Services, principal: Principal, agent_id: str, body: QuarantineBody
) -> Agent:
    """Quarantine now. Quarantining a quarantined agent changes nothing, except that an
    admin takes over an owner's quarantine, so that only an admin can lift it."""
    require_role(principal, *WRITERS)
    await _check_visible(services, principal, agent_id)
    row = await lifecycle.quarantine(
        services,
        agent_id,
        actor=principal.key_id,
        reason=body.reason,
        overrides=principal.role == "admin",
    )
    return agent_view(row)


async def release(
    services: Services, principal: Principal, agent_id: str, body: ReleaseBody
) -> Agent:
    """Lift a quarantine; releasing an active agent changes nothing."""
    require_role(principal, *WRITERS)
    await _check_visible(services, principal, agent_id)
    row = await lifecycle.release(
        services,
        agent_id,
        actor=principal.key_id,
        reason=body.reason,
        lifts_admin_quarantine=principal.role == "admin",
    )
    return agent_view(row)


async def kill(services: Services, principal: Principal, owner_id: str, body: KillBody) -> Killed:
    """Contain the owner in one small commit, then stop each agent and delegation.

    The first transaction suspends the owner (``ControlsStore.kill``), writes the
    ``kill_switch`` entry and the owner's revocation event: from its commit every
    instance refuses the owner's next call. The cascade then revokes every active
    delegation and quarantines every active agent in bounded batches; the kill waits for
    it (shielded: a client that goes away does not stop it), together with any cascade
    of the owner a crash left unfinished, and answers with what it stopped.
    """
    require_role(principal, *WRITERS)
    if not may_see_owner(principal, owner_id) or not records.valid_id(owner_id):
        raise NotFound("No such owner.")
    now = services.now()

    def entry(agent_count: int) -> Entry:
        return (
            "kill_switch",
            1,
            now,
            {
                "owner_id": owner_id,
                "actor": principal.key_id,
                "reason": body.reason,
                "agent_count": agent_count,
            },
        )

    contained = await services.controls_store.kill(
        owner_id,
        actor=principal.key_id,
        reason=body.reason,
        now=now,
        entry=entry,
        event_expires_at=events.cascade_expiry(services.settings, now),
    )
    if contained is None:
        raise NotFound("No such owner.")
    event = contained.event
    services.metrics.kill_time_to_contain.observe(time.perf_counter() - metrics.request_started())
    await events.publish(services, [event])
    # One entry per object as well (written by the cascade), so that an auditor
    # following one delegation or one agent through the ledger sees how it ended.
    pending = await cascade.unfinished(services, owner_id)
    stopped = await asyncio.shield(cascade.start(services, pending or [contained.cascade_id]))
    return Killed(
        owner_id=owner_id,
        time=now,
        revoked_delegations=sorted(stopped.revoked),
        quarantined_agents=sorted(stopped.quarantined),
        event_id=event.id,
        contained_at=now,
        refused_since=await cascade.refused_since(services, owner_id, now),
    )
