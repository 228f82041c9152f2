"""Issuance: sign the access token (RFC 9068), spend one call and record the grant.

The one place a token is made, for the token exchange (RFC 8693) and the CIBA poll
alike. The token is signed first, then the exchange port's spend (``storage.exchange``)
spends a call on the delegation under a row lock that also holds the agent, owner, tool
and resource server rows, claims the attestation's and proof's single uses, and writes
the grant and its ledger entry, in one transaction; only after the commit does the token
leave (``issue``). A spend that is refused writes the denied grant with the rule that
refused it, which is named here (``_refusal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from authority.approvals import requests as approvals
from authority.context import Services
from authority.domain_events import ExchangeIssued
from authority.errors import InvalidGrant
from authority.federation.model import WorkloadIdentity
from authority.policy.checks import AgentFacts, DelegationFacts, ToolCall, ToolFacts
from authority.policy.reasons import Reason
from authority.secrets import new_id, token_hash
from authority.storage.exchange import ApprovalFacts, Denial, NotSpent, Spend, SpendState
from authority.storage.replay import SingleUse
from authority.tokens.access_token import AT_TYP, access_token_claims, authorization_detail

from . import recording
from .loading import Registered
from .recording import Denied, GrantRecord
from .workload_auth import actor_claims


@dataclass(frozen=True, slots=True)
class Issued:
    access_token: str
    token_type: str  # "Bearer" or "DPoP" (RFC 9449 §5)
    expires_in: int
    authorization_details: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Authorised:
    """One call that every rule allows now (exchange), or that the owner approved (CIBA)."""

    agent: AgentFacts
    delegation: DelegationFacts
    tool: ToolFacts
    call: ToolCall
    lifetime: int
    jkt: str | None  # the DPoP key the token is bound to (RFC 9449 cnf.jkt)
    registered: Registered  # what the decision read, compared again at the spend
    workload: WorkloadIdentity | None = None  # the platform identity, into the token's act


async def issue(
    services: Services,
    record: GrantRecord,
    authorised: Authorised,
    now: int,
    *,
    uses: Sequence[SingleUse] = (),
    approval: ApprovalFacts | None = None,
) -> Issued | Denied:
    """Sign the token, then commit its grant; the token leaves only after the commit.

    The call is spent on the delegation under a row lock that also holds the agent,
    owner, tool and resource server rows, so a revocation, quarantine, kill switch or
    registry change that commits first refuses it (and is written as a denied grant);
    one that commits later revokes it or applies to the next call. ``uses`` (the
    attestation's and the proof's jtis) are spent by the same write: a replay issues
    nothing. With ``approval``, the approval is consumed in the same transaction:
    exactly one poll gets the token (``ApprovalUsed`` for the others), and a refusal here
    ends the approval. A refusal is written as a denied grant and returned (``Denied``).
    """
    settings = services.settings
    agent, delegation, tool = authorised.agent, authorised.delegation, authorised.tool
    jti = new_id("at")
    expires_at = now + authorised.lifetime
    jkt = authorised.jkt
    token = services.keyring.sign(
        access_token_claims(
            issuer=settings.issuer,
            owner_id=agent.owner_id,
            agent_id=agent.id,
            audience=tool.audience,
            delegation_id=delegation.id,
            intent=delegation.intent,
            call=authorised.call,
            issued_at=now,
            expires_at=expires_at,
            jti=jti,
            jkt=jkt,
            workload=actor_claims(authorised.workload) if authorised.workload else None,
        ),
        typ=AT_TYP,
    )
    issued = recording.grant_write(
        record,
        now=now,
        decision="issued",
        jti=jti,
        token_digest=token_hash(token),
        expires_at=expires_at,
        jkt=jkt,
        single_use=tool.single_use,
        approval_id=approval.id if approval is not None else None,
    )

    def refuse(not_spent: NotSpent) -> Denial:
        return _refusal(record, not_spent, now, approval)

    outcome = await services.exchange_store.spend(
        Spend(delegation.id, agent.id, now, authorised.registered),
        issued,
        uses,
        refuse,
        approval_id=approval.id if approval is not None else None,
    )
    if uses:
        record.attestation_claimed = outcome.claimed[0]
    if outcome.approval_taken:
        # Another poll has taken this approval's one token: nothing was written.
        raise ApprovalUsed()
    if outcome.denial is not None:
        reason = recording.reason_of(outcome.denial.grant)
        return await recording.after_denial(services, record, reason, outcome.denial.grant.grant.id)
    await services.events.publish(
        ExchangeIssued(
            agent.id, grant_id=issued.grant.id, delegation_id=delegation.id, tool=tool.name
        )
    )
    return Issued(
        access_token=token,
        token_type="DPoP" if jkt else "Bearer",
        expires_in=authorised.lifetime,
        authorization_details=[authorization_detail(authorised.call, tool.audience)],
    )


class ApprovalUsed(InvalidGrant):
    """CIBA §11 invalid_grant: this approval's one token has been issued already."""

    default_description = "The auth_req_id is invalid, expired or already used."


def replayed(claimed: Sequence[bool]) -> Reason | None:
    """The replay among the uses just claimed (attestation first, then DPoP proof)."""
    if claimed and not claimed[0]:
        return Reason.ATTESTATION_REPLAYED
    if len(claimed) > 1 and not claimed[1]:
        return Reason.DPOP_REPLAYED
    return None


def _refusal(
    record: GrantRecord, not_spent: NotSpent, now: int, approval: ApprovalFacts | None
) -> Denial:
    """The denial of a call that could not be spent, with the rule that refused it: a
    replayed attestation or proof, the delegation, its agent or its owner no longer live,
    the call cap reached, or a registration changed since the decision."""
    refused = replayed(not_spent.claimed) or why_not_spent(not_spent.state, now)
    closed = None
    if approval is not None:
        closed = approvals.closed_at_issue(approval, refused.value, now)
    return Denial(recording.denial(record, refused, now), closed)


def why_not_spent(state: SpendState | None, now: int) -> Reason:
    """After a refused spend: which rule refused it (read in the refusal's transaction)."""
    if state is None:
        return Reason.DELEGATION_INVALID
    if state.agent_status != "active":
        return Reason.AGENT_INACTIVE
    if state.owner_status != "active":
        return Reason.OWNER_INACTIVE
    if state.status != "active":
        return Reason.DELEGATION_REVOKED
    if state.expires_at <= now:
        return Reason.DELEGATION_EXPIRED
    if state.tool_status != "active" or state.server_status != "active":
        return Reason.TOOL_INACTIVE
    if not state.as_decided:
        return Reason.REGISTRATION_CHANGED
    if state.max_calls is not None and state.calls_used >= state.max_calls:
        return Reason.CALL_CAP_EXHAUSTED
    # Nothing refuses it now (PostgreSQL reads each statement's own snapshot): a status
    # that refused the spend has been reversed since, and of the rules the spend checks
    # only statuses are reversible (an agent released from quarantine, mostly).
    return Reason.AGENT_INACTIVE
