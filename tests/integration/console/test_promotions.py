"""The owner's console shows the promotions proposed for its agents, and accepting one
needs a fresh passkey, as approving a call does."""

from __future__ import annotations

import json

from sqlalchemy import select

from authority.storage.behaviour import Proposal
from authority.storage.schema import agents

from .conftest import Console


async def _propose(console: Console) -> str:
    world = console.world
    now = world.services.now()
    proposal = Proposal(
        id="prm_" + "1" * 32,
        agent_id=world.agent_id,
        owner_id=world.owner_id,
        created_at=now,
        status="proposed",
        from_level=2,
        to_level=3,
        rule="days >= 30 and calls >= 1000 and violations == 0",
        record=json.dumps({"calls": 1200, "days": 31, "step_ups": 0, "violations": 0}),
        decided_at=None,
        decided_by=None,
    )
    entry = (
        "promotion_proposed",
        1,
        now,
        {
            "proposal_id": proposal.id,
            "agent_id": world.agent_id,
            "owner_id": world.owner_id,
            "from_level": 2,
            "to_level": 3,
            "rule": proposal.rule,
            "days": 31,
            "calls": 1200,
            "violations": 0,
            "step_ups": 0,
        },
    )
    assert await world.services.behaviour_store.propose(proposal, entry)
    return proposal.id


async def _level(console: Console) -> int:
    async with console.world.services.engine.connect() as conn:
        level = (
            await conn.execute(
                select(agents.c.autonomy_level).where(agents.c.id == console.world.agent_id)
            )
        ).scalar_one()
    return int(level)


async def test_the_owner_accepts_a_promotion_with_a_passkey(console: Console) -> None:
    proposal_id = await _propose(console)
    owner = await console.owner()
    listing = await owner.open("/console/owner/approvals")
    assert proposal_id in listing.text and "autonomy level 2 to 3" in listing.text
    assert "calls 1200, days 31, step_ups 0, violations 0" in listing.text
    path = f"/console/owner/agents/{console.world.agent_id}/promotions/{proposal_id}/accept"
    # Without a fresh passkey confirmation nothing changes.
    refused = await owner.submit(path)
    assert refused.status_code == 403, refused.text
    assert await _level(console) == 2
    confirmation = await owner.confirm("promote", proposal_id)
    accepted = await owner.submit(path, passkey=confirmation)
    assert accepted.status_code == 303, accepted.text
    assert await _level(console) == 3
    after = await owner.open("/console/owner/approvals")
    assert proposal_id not in after.text
