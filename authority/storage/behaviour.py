"""The storage port of behaviour baselines and promotion proposals (``authority.behaviour``).

The baseline is learned from the issued grants, never from the exchange itself: ``fold``
adds the grants issued since the last fold to the per-agent tables, in one transaction
that also moves the fold's cursor (compare-and-set: two instances folding at once fold
each grant once). Proposals are written with their ledger entry, and accepted with the
agent's new level and its entries, in one transaction each.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry


@dataclass(frozen=True, slots=True)
class AgentBaseline:
    """An agent's totals, and the tools it was ever issued tokens for."""

    agent_id: str
    calls: int
    active_minutes: int
    first_at: int
    last_at: int
    tools: frozenset[str]


@dataclass(frozen=True, slots=True)
class CallRow:
    """One (tool, resource, action) of an agent's baseline."""

    tool: str
    resource: str
    action: str
    calls: int
    first_at: int
    last_at: int


@dataclass(frozen=True, slots=True)
class StepUp:
    """An approval request its baseline made: the request's JSON carries the explanation."""

    approval_id: str
    created_at: int
    status: str
    request: str


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent as the promotion rule sees it, counted from ``since``."""

    agent_id: str
    owner_id: str
    status: str
    autonomy_level: int
    since: int  # the last change of its level, or 0
    first_call: int | None  # its first issued call at or after ``since``
    calls: int
    violations: int
    step_ups: int


@dataclass(frozen=True, slots=True)
class Proposal:
    id: str
    agent_id: str
    owner_id: str
    created_at: int
    status: str  # proposed | accepted | stale
    from_level: int
    to_level: int
    rule: str
    record: str  # JSON
    decided_at: int | None
    decided_by: str | None


#: What an acceptance writes, given the proposal: the ledger entries.
Accepting = Callable[[Proposal], Sequence[Entry]]


class BehaviourStore(Protocol):
    async def fold(self, *, until: int, start: int) -> int | None:
        """Fold the grants issued before ``until`` and not folded yet (from ``start`` on
        a first fold) into the baselines; how many, or None when another fold moved the
        cursor meanwhile (nothing written)."""

    async def note(self, entries: Sequence[Entry]) -> None:
        """Append ledger entries of the baselines' own (a step-up's), in one transaction."""

    async def baselines(self, *, since: int) -> Sequence[AgentBaseline]:
        """Every agent with an issued call at or after ``since``, as the tables hold it."""

    async def baseline(
        self, agent_id: str, *, limit: int
    ) -> tuple[AgentBaseline | None, Sequence[CallRow]]:
        """One agent's totals and its ``limit`` most used calls."""

    async def step_ups(self, agent_id: str, *, reason: str, limit: int) -> Sequence[StepUp]:
        """The agent's latest approval requests of ``reason``, newest first."""

    async def record(
        self, agent_id: str, *, violations: Collection[str], step_up: str
    ) -> AgentRecord | None:
        """The agent's record since its level last changed (an ``autonomy_changed``
        entry): issued calls, denials of a reason in ``violations`` and containments,
        and pending grants of reason ``step_up``. None: no such agent."""

    async def propose(self, proposal: Proposal, entry: Entry) -> bool:
        """Write ``proposal`` and its entry unless the agent has one ``proposed`` already."""

    async def proposals(self, agent_id: str, *, limit: int) -> Sequence[Proposal]:
        """The agent's proposals, newest first."""

    async def accept(
        self, proposal_id: str, *, actor: str, now: int, entries: Accepting, holds: bool = True
    ) -> Proposal | str:
        """Accept a ``proposed`` proposal whose agent is still active at ``from_level``
        and whose rule still ``holds`` on the agent's record:
        the level set, the proposal accepted, ``entries`` appended, in one transaction
        that holds the agent's row. Otherwise nothing but the reason: ``"unknown"``, or
        ``"stale"`` (the proposal is marked so when the agent moved on or the rule no longer
        holds; one accepted meanwhile stays accepted)."""
