"""The storage port of delegations: an owner's grant to one agent, created, read, revoked.

``create`` reads the agent (locked against a kill switch of its owner) and the tools the
scope names, hands them to the flow's ``Grant`` (which checks them, raising the flow's
error to write nothing, and returns the row and its ``delegation_created`` entry) and
writes both, in one transaction. ``revoke`` turns an active delegation ``revoked`` with
its ``delegation_revoked`` entry and its revocation event, in one transaction, for
exactly one of any number of concurrent callers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry
from authority.storage.events import RevocationEvent

#: A page position: (created_at, id) of the last delegation already seen.
Position = tuple[int, str]


@dataclass(frozen=True, slots=True)
class Delegation:
    """A ``delegations`` row. ``scope`` is its JSON text."""

    id: str
    owner_id: str
    agent_id: str
    intent: str
    scope: str
    cnf_jkt: str
    expires_at: int
    max_calls: int | None
    rate_per_minute: int | None
    calls_used: int
    status: str
    revoked_at: int | None
    revoked_by: str | None
    revoked_reason: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class Grantee:
    """The agent a delegation is for, as stored while the delegation is written."""

    status: str
    jwks: str  # JSON text of its public keys


@dataclass(frozen=True, slots=True)
class ScopedTool:
    """A tool a delegation's scope names, as registered now."""

    name: str
    actions: str  # JSON text: the action names it offers
    status: str


@dataclass(frozen=True, slots=True)
class NewDelegation:
    """What ``Grant`` decided to write: the row and its ledger entry."""

    delegation: Delegation
    entry: Entry


#: The flow's decision on the stored agent and the registered tools (by name; a name
#: missing is not registered): the row to write, or an ``AuthorityError`` raised.
Grant = Callable[[Grantee, Mapping[str, ScopedTool]], NewDelegation]


@dataclass(frozen=True, slots=True)
class Revoked:
    """The delegation after a revocation, and the event when this call revoked it."""

    delegation: Delegation
    event: RevocationEvent | None


class DelegationStore(Protocol):
    async def create(
        self, owner_id: str, agent_id: str, tool_names: Sequence[str], grant: Grant
    ) -> Delegation | None:
        """Write what ``grant`` returns for the owner's agent ``agent_id`` and the tools.

        In one transaction that holds the agent's row against a concurrent kill switch
        (FOR SHARE on PostgreSQL): the kill either commits first, and ``grant`` sees the
        agent quarantined, or waits for this delegation and revokes it with the others.
        None, with nothing written, when the owner has no agent ``agent_id``; whatever
        ``grant`` raises propagates, with nothing written.
        """

    async def get(self, delegation_id: str, owner_id: str | None) -> Delegation | None:
        """The delegation, if it exists and is ``owner_id``'s (None: anyone's)."""

    async def page(
        self,
        *,
        owner_id: str | None,
        agent_id: str | None,
        limit: int,
        after: Position | None,
    ) -> tuple[list[Delegation], Position | None]:
        """Up to ``limit`` delegations (of ``owner_id``, of ``agent_id`` where given) in
        (created_at, id) order after ``after``; and the last one's position when more
        follow."""

    async def revoke(
        self,
        delegation_id: str,
        owner_id: str | None,
        *,
        now: int,
        actor: str,
        reason: str | None,
        entry: Entry,
        event_expires_at: int,
    ) -> Revoked | None:
        """Revoke the delegation if it is ``owner_id``'s (None: anyone's) and active.

        In one transaction: status ``revoked`` at ``now`` by ``actor`` for ``reason``,
        ``entry`` appended and a ``delegation`` event (expiring at ``event_expires_at``)
        recorded, for exactly one caller however many race. Every other caller, and
        one for a delegation revoked already, gets the delegation as stored and no
        event, with nothing written. None when no such delegation is visible.
        """
