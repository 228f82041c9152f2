"""The storage port of the owner's side of approvals: read them, decide one.

``decide`` is one conditional UPDATE (only a request still pending and unexpired can be
decided) with the decision's ledger entry, in one transaction: of any number of
concurrent decisions of one approval exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from authority.ledger.entries import Entry

#: A page position: (created_at, id) of the last approval already seen.
Position = tuple[int, str]

#: Which approvals a page holds. "pending" and "approved" are the unexpired ones;
#: "expired" the pending or approved ones past ``expires_at``; "all" every one.
Status = Literal["pending", "approved", "denied", "used", "expired", "all"]


@dataclass(frozen=True, slots=True)
class StoredApproval:
    """An ``approvals`` row, as the owner's side reads it. ``request`` is its JSON text
    (``approvals.requests.CallRequest``); ``status`` is what is stored, expired or not."""

    id: str
    status: str
    owner_id: str
    agent_id: str
    delegation_id: str
    request: str
    reason: str
    created_at: int
    expires_at: int
    decided_at: int | None
    decided_by: str | None
    decision_reason: str | None


class ApprovalDecisionStore(Protocol):
    async def get(self, approval_id: str, owner_id: str | None) -> StoredApproval | None:
        """The approval, if it exists and is ``owner_id``'s (None: anyone's)."""

    async def page(
        self,
        *,
        owner_id: str | None,
        status: Status,
        agent_id: str | None,
        now: int,
        limit: int,
        after: Position | None,
    ) -> tuple[list[StoredApproval], Position | None]:
        """Up to ``limit`` approvals (of ``owner_id`` and ``agent_id`` where given, in
        ``status`` at ``now``) in (created_at, id) order after ``after``; and the last
        one's position when more follow."""

    async def decide(
        self,
        approval_id: str,
        *,
        decision: Literal["approved", "denied"],
        now: int,
        actor: str,
        reason: str | None,
        entry: Entry,
    ) -> StoredApproval | None:
        """Decide the approval if it is still pending and unexpired at ``now``.

        In one transaction: ``status`` is ``decision``, decided at ``now`` by ``actor``
        for ``reason``, and ``entry`` is appended. The approval afterwards, for exactly
        one caller however many race; None, with nothing written, for every other and
        for an approval decided, used, expired or unknown.
        """
