"""Autonomy levels 0-3: how much an agent may do without asking its owner.

Level 0 reads only; above that, tools up to the agent's level of risk need no approval
(``policy.checks.autonomy_covers_risk``). An owner (or an admin) sets the level
explicitly, and the authority lowers it after repeated containments
(``authority.containment``); every change is an ``autonomy_changed`` ledger entry naming
who and why, written in the transaction that makes it (``change_entry`` builds it for
``agents.set_autonomy_level``, ``agents.update_agent`` and the containment).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from authority.ledger.entries import Entry

from .inputs import Body, Description

Level = Annotated[int, Field(ge=0, le=3)]


class AutonomyBody(Body):
    level: Level
    reason: Description | None = None


def change_entry(
    *,
    agent_id: str,
    owner_id: str,
    previous: int,
    level: int,
    actor: str,
    reason: str | None,
    now: int,
) -> Entry:
    """The ``autonomy_changed`` entry of one change of level."""
    return (
        "autonomy_changed",
        2,
        now,
        {
            "agent_id": agent_id,
            "owner_id": owner_id,
            "previous_level": previous,
            "level": level,
            "actor": actor,
            "reason": reason,
        },
    )
