"""The storage port of the token exchange (RFC 8693) and the CIBA poll (CIBA Core §7.3, §11).

Both flows load what a request names in one read (``load``) and end in one write that
records the decision: a spend (``spend``: the call spent on the delegation, the issued
grant and its ledger entry, the single uses, and for the poll the approval consumed), a
denial (``deny``), or an approval request (``request_approval``). The poll also reads
its approval (``approval``), notes the poll (``note_poll``), spends its own single uses
(``spend_uses``) and closes an approval a rule refuses (``close_approval``).

The rules stay with the flows. Where a write cannot happen as asked (a use already
spent, a delegation no longer live, a registration changed, the cap reached, too many
approvals open), the port does not decide what to write instead: it hands what it found
to the flow's ``refuse`` (a pure function, called inside the transaction) and writes the
denial it returns, in the same transaction as the uses it claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry

from .replay import SingleUse


@dataclass(frozen=True, slots=True)
class StoredAgent:
    id: str
    owner_id: str
    status: str
    autonomy_level: int
    jwks: str
    owner_status: str | None  # None: the owner row is gone
    workload: str | None = None  # its identity rules, JSON text as stored (grants.workload_auth)


@dataclass(frozen=True, slots=True)
class StoredDelegation:
    id: str
    owner_id: str
    agent_id: str
    status: str
    expires_at: int
    scope: str  # JSON text, as stored
    intent: str
    max_calls: int | None
    rate_per_minute: int | None
    calls_used: int
    cnf_jkt: str


@dataclass(frozen=True, slots=True)
class StoredTool:
    """A tool with its resource server's audience and status (None: the server is gone)."""

    name: str
    status: str
    resource_server_id: str
    actions: str  # JSON text, as stored
    read_actions: str
    risk_tier: int
    approval_required: bool
    single_use: bool
    dpop_required: bool
    max_token_lifetime: int | None
    audience: str | None
    server_status: str | None


@dataclass(frozen=True, slots=True)
class ExchangeFacts:
    """The agent with its owner's status, the delegation, the tool with its resource
    server, as stored now; each None when its row does not exist."""

    agent: StoredAgent | None
    delegation: StoredDelegation | None
    tool: StoredTool | None


@dataclass(frozen=True, slots=True)
class Registered:
    """The registrations a decision read, as stored: the spend finds them unchanged.

    The spend compares each with its row under the same lock that holds the agent and
    owner, so a tool retired or made approval-required, a risk tier raised, an agent key
    removed or an autonomy level lowered while the exchange was being decided refuses it
    (``Reason.REGISTRATION_CHANGED``) instead of issuing under the old rules.
    """

    agent_jwks: str
    autonomy_level: int
    tool: str
    actions: str
    read_actions: str
    risk_tier: int
    approval_required: bool
    single_use: bool
    dpop_required: bool
    max_token_lifetime: int | None
    audience: str


@dataclass(frozen=True, slots=True)
class Spend:
    """One call to spend on ``delegation_id`` for ``agent_id`` at ``now``, if the
    delegation, its agent, owner, tool and resource server are live and as decided."""

    delegation_id: str
    agent_id: str
    now: int
    registered: Registered


@dataclass(frozen=True, slots=True)
class NewGrant:
    """A ``grants`` row as a decision writes it (use and revocation come later)."""

    id: str
    created_at: int
    decision: str  # issued | denied | pending
    reason: str | None
    agent_id: str | None
    owner_id: str | None
    delegation_id: str | None
    tool: str
    resource: str
    action: str
    intent: str | None
    audience: str
    jti: str | None
    token_hash: str | None  # the token's digest, never the token
    expires_at: int | None
    cnf_jkt: str | None
    single_use: bool


@dataclass(frozen=True, slots=True)
class GrantWrite:
    """A grant row and its ledger entry: written together or not at all."""

    grant: NewGrant
    entry: Entry


@dataclass(frozen=True, slots=True)
class SpendState:
    """What a refused spend finds of the delegation's rows, for the flow to name the rule."""

    status: str
    expires_at: int
    max_calls: int | None
    calls_used: int
    agent_status: str
    owner_status: str
    tool_status: str | None  # None: the tool is gone
    server_status: str | None
    as_decided: bool  # every ``Registered`` member still as stored


@dataclass(frozen=True, slots=True)
class NotSpent:
    """Why nothing was spent: a use already spent (``claimed`` has a False), else the rows.

    ``state`` is None when a use was replayed (the rows are not read) or when the
    delegation, or its agent or owner, is gone.
    """

    claimed: tuple[bool, ...]
    state: SpendState | None


@dataclass(frozen=True, slots=True)
class ClosedApproval:
    """An approved request a rule refuses at issue: denied by ``decided_by``, with the
    rule's code, and ``entry`` (its ``approval_decided``) written if it was still approved."""

    approval_id: str
    reason: str
    decided_by: str
    decided_at: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class Denial:
    """What a refusal writes: the denied grant, and for a poll the approval it closes."""

    grant: GrantWrite
    approval: ClosedApproval | None = None


@dataclass(frozen=True, slots=True)
class SpendOutcome:
    """``denial`` is what was written instead of the grant (None: issued). With
    ``approval_taken`` another poll consumed the approval first, and nothing was written."""

    claimed: tuple[bool, ...]
    denial: Denial | None = None
    approval_taken: bool = False


@dataclass(frozen=True, slots=True)
class NewApproval:
    """An ``approvals`` row as an exchange asks for it (pending, never polled)."""

    id: str
    created_at: int
    expires_at: int
    owner_id: str
    agent_id: str
    delegation_id: str
    request: str  # the call asked for, JSON (``approvals.requests.CallRequest``)
    reason: str  # why it needs approval (a reason code)
    poll_interval: int


@dataclass(frozen=True, slots=True)
class NotRequested:
    """Why no approval was asked for: a use already spent, or ``at_limit`` approvals of
    the agent already open (read only when every use was new)."""

    claimed: tuple[bool, ...]
    at_limit: bool


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """``denial`` is what was written instead of the request (None: requested)."""

    claimed: tuple[bool, ...]
    denial: GrantWrite | None = None


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """An approval request as stored."""

    id: str
    status: str  # pending | approved | denied | used
    created_at: int
    expires_at: int
    owner_id: str
    agent_id: str
    delegation_id: str
    request: str
    reason: str


class ExchangeStore(Protocol):
    async def load(self, agent_id: str, delegation_id: str, tool: str) -> ExchangeFacts:
        """The facts for the agent, delegation and tool (by name) a request names: one
        read, one consistent snapshot."""

    async def spend(
        self,
        spend: Spend,
        issued: GrantWrite,
        uses: Sequence[SingleUse],
        refuse: Callable[[NotSpent], Denial],
        *,
        approval_id: str | None = None,
    ) -> SpendOutcome:
        """Claim ``uses`` and spend one call; write ``issued`` if both succeed.

        In one transaction: each use is claimed (first use wins, across instances); if
        every one was new and ``spend`` holds (the delegation, its agent and owner live,
        the tool and its server active and as ``spend.registered`` says, the call cap not
        reached) the call is spent and ``issued`` written. With ``approval_id``, that
        approved, unexpired request is consumed by the same transaction; if another
        poll consumed it first, nothing at all is written (``approval_taken``).
        Otherwise nothing is spent, and ``refuse``'s ``Denial`` is written instead, with
        the uses that were new. The spend holds the agent, owner, tool and resource server
        rows and updates the delegation's, so a change to any of them commits either
        before (and refuses this) or after this grant.
        """

    async def deny(
        self, denial: GrantWrite, use: SingleUse | None, replayed: Callable[[], GrantWrite]
    ) -> bool | None:
        """Write ``denial`` and claim ``use``, together; if ``use`` was spent already,
        write ``replayed()`` instead. Whether ``use`` was new; None without one."""

    async def request_approval(
        self,
        approval: NewApproval,
        pending: GrantWrite,
        uses: Sequence[SingleUse],
        refuse: Callable[[NotRequested], GrantWrite],
        *,
        max_pending: int,
    ) -> ApprovalOutcome:
        """Claim ``uses``; if all were new and the agent has fewer than ``max_pending``
        pending unexpired requests, write ``approval`` and its ``pending`` grant, else
        ``refuse``'s denial; in one transaction with the uses that were new."""

    async def approval(self, approval_id: str) -> ApprovalFacts | None:
        """The approval request ``approval_id``; None when there is none."""

    async def note_poll(self, approval_id: str, now: int, *, slow_down_step: int) -> bool:
        """Note a poll of a pending request at ``now``; False when it came sooner than
        its interval after the last noted one, which then grows by ``slow_down_step``.

        True for exactly one of concurrent polls within one interval.
        """

    async def spend_uses(self, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
        """Claim ``uses`` in a transaction of their own; for each, whether it was new."""

    async def close_approval(self, denial: Denial) -> None:
        """Write ``denial``'s grant and close its approval (if still approved), together."""
