"""Promotion of an agent's autonomy level by a written rule, proposed to its owner.

The rule (``promotion_rule``, ``authority.promotion_rule``) is weighed over the agent's
record since its level last changed: days since its first call in that period, issued
calls, violations (denials that count towards containment, and containments) and
step-ups of its baseline. When it holds, and the agent is active below
``promotion_max_level`` with no open proposal, a proposal of one level up is written
with its ``promotion_proposed`` ledger entry. Nothing changes until the owner (or an
admin) accepts it: then the level is set, with ``promotion_accepted`` and
``autonomy_changed`` entries, in one transaction. A proposal whose agent has moved on
meanwhile (another level, quarantined), or that was denied, contained (released or
not) or stepped up since the proposal, is stale and cannot be accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from authority import containment, promotion_rule
from authority.context import Services
from authority.errors import Conflict, NotFound
from authority.ledger.entries import Entry
from authority.management import agents, autonomy
from authority.management.auth import READERS, WRITERS, Principal, require_role
from authority.policy.reasons import Reason
from authority.secrets import new_id
from authority.storage.behaviour import AgentRecord, Proposal

#: Who proposes, in the ledger.
ACTOR: Final = "authority:promotion"
NOT_FOUND: Final = "No such promotion proposal."
LIST_LIMIT: Final = 100


@dataclass(frozen=True, slots=True)
class ProposalView:
    id: str
    agent_id: str
    owner_id: str
    created_at: int
    status: str  # proposed | accepted | stale
    from_level: int
    to_level: int
    rule: str
    record: dict[str, Any]  # the figures the rule held on
    decided_at: int | None
    decided_by: str | None


def _view(proposal: Proposal) -> ProposalView:
    return ProposalView(
        id=proposal.id,
        agent_id=proposal.agent_id,
        owner_id=proposal.owner_id,
        created_at=proposal.created_at,
        status=proposal.status,
        from_level=proposal.from_level,
        to_level=proposal.to_level,
        rule=proposal.rule,
        record=json.loads(proposal.record),
        decided_at=proposal.decided_at,
        decided_by=proposal.decided_by,
    )


async def _weigh(services: Services, agent_id: str) -> tuple[AgentRecord, dict[str, float]] | None:
    """The agent's record and the figures the rule is weighed on, for an active agent
    that has called (None otherwise)."""
    record = await services.behaviour_store.record(
        agent_id,
        violations={reason.value for reason in containment.VIOLATIONS},
        step_up=Reason.BEHAVIOUR_STEP_UP.value,
    )
    if record is None or record.status != "active" or record.first_call is None:
        return None
    figures: dict[str, float] = {
        "days": round((services.now() - record.first_call) / 86400, 2),
        "calls": record.calls,
        "violations": record.violations,
        "step_ups": record.step_ups,
    }
    return record, figures


async def _still_holds(services: Services, proposal: Proposal) -> bool:
    """At acceptance: the agent has not been denied, contained (a quarantine and its
    release included) or stepped up since the proposal; its calls and days only grew."""
    record = await services.behaviour_store.record(
        proposal.agent_id,
        violations={reason.value for reason in containment.VIOLATIONS},
        step_up=Reason.BEHAVIOUR_STEP_UP.value,
    )
    if record is None:
        return False
    proposed = json.loads(proposal.record)
    return record.violations <= int(proposed.get("violations", 0)) and record.step_ups <= int(
        proposed.get("step_ups", 0)
    )


async def consider(services: Services, agent_id: str) -> Proposal | None:
    """Weigh the rule on the agent's record; the proposal written, if one was."""
    settings = services.settings
    rule = settings.promotion_rule
    if not promotion_rule.parse(rule):
        return None
    weighed = await _weigh(services, agent_id)
    if weighed is None:
        return None
    record, figures = weighed
    if record.autonomy_level >= settings.promotion_max_level:
        return None
    now = services.now()
    if not promotion_rule.holds(rule, figures):
        return None
    proposal = Proposal(
        id=new_id("prm"),
        agent_id=agent_id,
        owner_id=record.owner_id,
        created_at=now,
        status="proposed",
        from_level=record.autonomy_level,
        to_level=record.autonomy_level + 1,
        rule=rule,
        record=json.dumps(figures, sort_keys=True),
        decided_at=None,
        decided_by=None,
    )
    entry: Entry = (
        "promotion_proposed",
        1,
        now,
        {
            "proposal_id": proposal.id,
            "agent_id": agent_id,
            "owner_id": record.owner_id,
            "from_level": proposal.from_level,
            "to_level": proposal.to_level,
            "rule": rule,
            "days": int(figures["days"]),
            "calls": record.calls,
            "violations": record.violations,
            "step_ups": record.step_ups,
        },
    )
    return proposal if await services.behaviour_store.propose(proposal, entry) else None


async def list_proposals(
    services: Services, principal: Principal, agent_id: str
) -> list[ProposalView]:
    require_role(principal, *READERS)
    await agents.found(services, agent_id, agents.scope(principal))
    found = await services.behaviour_store.proposals(agent_id, limit=LIST_LIMIT)
    return [_view(p) for p in found]


async def accept(
    services: Services, principal: Principal, agent_id: str, proposal_id: str
) -> ProposalView:
    """The owner's (or an admin's) acceptance: the level is set, all of it in the ledger."""
    require_role(principal, *WRITERS)
    await agents.found(services, agent_id, agents.scope(principal))
    mine = await services.behaviour_store.proposals(agent_id, limit=LIST_LIMIT)
    proposal = next((p for p in mine if p.id == proposal_id), None)
    if proposal is None:
        raise NotFound(NOT_FOUND)
    holds = proposal.status != "proposed" or await _still_holds(services, proposal)
    now = services.now()

    def entries(proposal: Proposal) -> list[Entry]:
        accepted: Entry = (
            "promotion_accepted",
            1,
            now,
            {
                "proposal_id": proposal.id,
                "agent_id": proposal.agent_id,
                "owner_id": proposal.owner_id,
                "from_level": proposal.from_level,
                "to_level": proposal.to_level,
                "actor": principal.key_id,
            },
        )
        changed = autonomy.change_entry(
            agent_id=proposal.agent_id,
            owner_id=proposal.owner_id,
            previous=proposal.from_level,
            level=proposal.to_level,
            actor=principal.key_id,
            reason=f"promotion {proposal.id} accepted",
            now=now,
        )
        return [accepted, changed]

    outcome = await services.behaviour_store.accept(
        proposal_id, actor=principal.key_id, now=now, entries=entries, holds=holds
    )
    if isinstance(outcome, str):
        if outcome == "unknown":
            raise NotFound(NOT_FOUND)
        raise Conflict(
            "The proposal is no longer open: the agent's level or status changed, or its "
            "record worsened since it was proposed."
        )
    return _view(outcome)
