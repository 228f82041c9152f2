"""The owner's side of approvals: see what an agent asked for, approve or deny it.

An owner sees and decides its own agents' approval requests (another owner's do not
exist for it: 404); an admin and an auditor see every owner's. Approving is the owner's
alone, as delegating is: an approval grants a call, and an admin cannot grant on an
owner's behalf. An admin may deny (taking away is always safe); an auditor only reads.

Each decision is one conditional UPDATE (only a request still pending and unexpired can
be decided, so two decisions cannot both win) with its ``approval_decided`` ledger entry
naming the API key that decided, in one transaction (``storage.approval_decisions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.management import paging, records
from authority.management.auth import READERS, Principal, Role, require_role, sees_all
from authority.management.inputs import Body as InputBody
from authority.management.inputs import Description
from authority.storage.approval_decisions import Status, StoredApproval

from .requests import CallRequest, decision_entry

KIND: Final = "approvals"
NOT_FOUND: Final = "No such approval."
#: Only an owner approves; an admin may deny.
APPROVERS: Final[tuple[Role, ...]] = ("owner",)
DENIERS: Final[tuple[Role, ...]] = ("owner", "admin")
STATUSES: Final = frozenset({"pending", "approved", "denied", "used", "expired", "all"})


class Decision(InputBody):
    reason: Description | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    """One approval request, with everything the agent asked for."""

    id: str
    status: str  # pending | approved | denied | used | expired
    owner_id: str
    agent_id: str
    delegation_id: str
    intent: str
    tool: str
    resource: str
    action: str
    audience: str
    reason: str  # why the call needed approval (a reason code)
    created_at: int
    expires_at: int
    decided_at: int | None
    decided_by: str | None
    decision_reason: str | None
    # The exact arguments the call will be sent with (JSON, as the agent sent them) and
    # the digest the token will carry; both None for a call that bound no arguments.
    arguments: dict[str, Any] | None = None
    arguments_digest: str | None = None
    # Why the agent's baseline asked (reason ``behaviour_step_up``): plain text.
    explanation: str | None = None


def view(row: StoredApproval, now: int) -> Approval:
    call = CallRequest.from_json(row.request)
    status = row.status
    if status in ("pending", "approved") and row.expires_at <= now:
        status = "expired"
    return Approval(
        id=row.id,
        status=status,
        owner_id=row.owner_id,
        agent_id=row.agent_id,
        delegation_id=row.delegation_id,
        intent=call.intent,
        tool=call.tool,
        resource=call.resource,
        action=call.action,
        audience=call.audience,
        reason=row.reason,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        arguments=dict(call.arguments) if call.arguments is not None else None,
        arguments_digest=call.arguments_digest,
        explanation=call.explanation,
    )


def _visible(principal: Principal) -> str | None:
    """The owner whose approvals the principal sees; None: every owner's."""
    return None if sees_all(principal) else principal.owner_id


async def list_approvals(
    services: Services,
    principal: Principal,
    request: paging.PageRequest,
    *,
    status: str | None = None,
    agent_id: str | None = None,
) -> paging.Page[Approval]:
    """The principal's approvals, oldest first; by default those still waiting."""
    require_role(principal, *READERS)
    status = status or "pending"
    if status not in STATUSES:
        raise InvalidRequest(f"The status parameter must be one of {', '.join(sorted(STATUSES))}.")
    if agent_id is not None and not records.valid_id(agent_id):
        raise InvalidRequest(
            "The agent_id parameter must be an id: 1 to 40 letters, digits, _ or -."
        )
    now = services.now()
    rows, last = await services.approval_decision_store.page(
        owner_id=_visible(principal),
        status=cast(Status, status),
        agent_id=agent_id,
        now=now,
        limit=request.limit,
        after=request.after,
    )
    cursor = None if last is None else paging.encode_cursor(services, KIND, *last)
    return paging.Page([view(r, now) for r in rows], cursor)


async def _find(services: Services, principal: Principal, approval_id: str) -> StoredApproval:
    row = None
    if records.valid_id(approval_id):
        row = await services.approval_decision_store.get(approval_id, _visible(principal))
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


async def get(services: Services, principal: Principal, approval_id: str) -> Approval:
    require_role(principal, *READERS)
    row = await _find(services, principal, approval_id)
    return view(row, services.now())


async def approve(
    services: Services, principal: Principal, approval_id: str, body: Decision
) -> Approval:
    require_role(principal, *APPROVERS)
    return await _decide(services, principal, approval_id, "approved", body.reason)


async def deny(
    services: Services, principal: Principal, approval_id: str, body: Decision
) -> Approval:
    require_role(principal, *DENIERS)
    return await _decide(services, principal, approval_id, "denied", body.reason)


async def _decide(
    services: Services,
    principal: Principal,
    approval_id: str,
    decision: Literal["approved", "denied"],
    reason: str | None,
) -> Approval:
    now = services.now()
    # What the entry names (the owner, agent, delegation and call) never changes.
    row = await _find(services, principal, approval_id)
    decided = await services.approval_decision_store.decide(
        approval_id,
        decision=decision,
        now=now,
        actor=principal.key_id,
        reason=reason,
        entry=decision_entry(
            row, decision=decision, actor=principal.key_id, reason=reason, now=now
        ),
    )
    if decided is None:
        raise Conflict("The approval is no longer pending.")
    services.metrics.approvals.labels(decision).inc()
    return view(decided, now)
