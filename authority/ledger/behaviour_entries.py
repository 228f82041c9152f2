"""Ledger records of trust earned and lost: calls an agent's baseline sent to its owner,
and the proposals to raise its autonomy level (``authority.behaviour``, ``authority.promotion``).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .record import Actor, Id, Level, Name, Record, Text

Count = Annotated[int, Field(ge=0, lt=2**53)]


class BehaviourStepUpV1(Record):
    """A call far outside the agent's baseline, sent to its owner instead of issued: the
    approval request it made (its ``grant`` entry is ``pending``) and what the owner saw."""

    kind: ClassVar[str] = "behaviour_step_up"
    version: ClassVar[int] = 1

    approval_id: Id
    agent_id: Id
    owner_id: Id
    tool: Name
    deviation: Literal["new_tool", "burst"]
    explanation: Text


class PromotionProposedV1(Record):
    """The promotion rule held on the agent's record: one level up, proposed to its owner."""

    kind: ClassVar[str] = "promotion_proposed"
    version: ClassVar[int] = 1

    proposal_id: Id
    agent_id: Id
    owner_id: Id
    from_level: Level
    to_level: Level
    rule: Text
    days: Count
    calls: Count
    violations: Count
    step_ups: Count


class PromotionAcceptedV1(Record):
    """The owner (or an admin) accepted a proposal; its ``autonomy_changed`` entry follows."""

    kind: ClassVar[str] = "promotion_accepted"
    version: ClassVar[int] = 1

    proposal_id: Id
    agent_id: Id
    owner_id: Id
    from_level: Level
    to_level: Level
    actor: Actor
