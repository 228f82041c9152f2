"""The CIBA grant (OpenID Connect CIBA Core 1.0, poll mode §7.3, §10.1, §11): an agent
collects the token for a call its owner approved.

``grant_type=urn:openid:params:grant-type:ciba`` with the ``auth_req_id`` the exchange
answered, at the token endpoint, authenticated exactly as the exchange is: a fresh,
single-use attestation of the agent as ``client_assertion`` (RFC 7523 §2.2) or
``actor_token``. Answers, in the order they are decided:

=====================  ===================================================================
``invalid_client``     the attestation does not verify (nothing else is looked at)
``invalid_grant``      no such auth_req_id, or another agent's (CIBA §11: "invalid or was
                       issued to another Client"), or its one token was issued already
``expired_token``      past ``expires_in`` and not used (CIBA §11)
``access_denied``      the owner denied it, or a rule refused it at issue (CIBA §11)
``slow_down``          pending, and polled sooner than ``interval`` after the last poll;
                       the interval grows by 5 s (CIBA §11)
``authorization_pending``  pending (CIBA §11)
the token              approved: the very RFC 9068 token the exchange would have issued,
                       by the same code (``issuance.issue``), after every rule is
                       checked again as of now, with the grant committed before it leaves
=====================  ===================================================================

A second poll after the token was issued gets ``invalid_grant``: the approval was for
one call, and the auth_req_id is spent, like an authorization code used twice (RFC 6749
§4.1.2, §5.2). ``expired_token`` would tell the client to start over, which is wrong for
a call that succeeded.

Re-checked at issue, because anything may have changed while the owner looked: the
agent, its owner and the delegation are live (under the same row locks as an exchange),
the tool and its resource server are active, the call is still inside the delegation,
Cedar does not forbid it, and the attestation is signed by the key the delegation is
bound to. The one thing the owner's approval stands for is the approval itself. The
delegation's per-minute rate was counted when the call was asked for; its call cap is
spent here, at issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from authority.approvals import requests as approvals
from authority.context import Services
from authority.domain_events import ApprovalRedeemed
from authority.errors import (
    AccessDenied,
    AuthorityError,
    AuthorizationPending,
    ExpiredToken,
    InvalidDPoPProof,
    InvalidGrant,
    SlowDown,
)
from authority.policy.checks import Deny
from authority.policy.reasons import Reason, error_for
from authority.storage.exchange import ApprovalFacts, Denial

from . import agent_auth, recording, workload_auth
from .agent_auth import Presented, Refusal
from .decision import decide, facts
from .issuance import ApprovalUsed, Authorised, Issued, issue
from .loading import Loaded
from .recording import Denied, GrantRecord, after_denial
from .workload_auth import Proven


@dataclass(frozen=True, slots=True)
class PollRequest:
    """A well-formed CIBA token request: parsed and typed, nothing in it verified."""

    auth_req_id: str
    presented: Presented  # the attestation and the proof; no delegation credential


def _unknown() -> InvalidGrant:
    return InvalidGrant("The auth_req_id is invalid, expired or already used.")


def _unauthenticated(request: PollRequest, refusal: Refusal) -> AuthorityError:
    """The agent did not authenticate: rendered, not recorded (there is no grant yet)."""
    return error_for(refusal.reason, client_assertion=request.presented.via_client_assertion)


async def poll(services: Services, request: PollRequest) -> Issued:
    """Answer one poll: the token, or raise the CIBA §11 error that says why not yet."""
    now = services.now()
    presented = request.presented

    # -- the agent must prove who it is before anything about the request is revealed ----------
    claimed = agent_auth.claim(presented)
    if isinstance(claimed, Refusal):
        raise _unauthenticated(request, claimed)
    store = services.exchange_store
    row_id = approvals.approval_id(services, request.auth_req_id)
    row = await store.approval(row_id) if row_id is not None else None
    call = approvals.CallRequest.from_json(row.request) if row is not None else None
    authenticated = await agent_auth.authenticate(
        services,
        presented,
        claimed,
        now,
        delegation_id=row.delegation_id if row is not None else None,
        tool=call.tool if call is not None else "",
    )
    if isinstance(authenticated, Refusal):
        raise _unauthenticated(request, authenticated)
    loaded, proof = authenticated.loaded, authenticated.proof
    # Attestations are single use here as everywhere (RFC 7523 §3 item 7), and so are
    # proofs (RFC 9449 §11.1): spent before anything about the request is answered.
    uses = authenticated.uses(services, now)
    claimed_uses = await store.spend_uses(uses)
    if not claimed_uses[0]:
        raise error_for(
            Reason.ATTESTATION_REPLAYED, client_assertion=presented.via_client_assertion
        )
    if proof is not None and not claimed_uses[1]:
        raise error_for(Reason.DPOP_REPLAYED)

    # -- the request: the agent's own, still open -------------------------------------------
    if row is None or call is None or row.agent_id != authenticated.agent.id:
        raise _unknown()
    if row.status == "used":
        raise _unknown()
    if row.expires_at <= now:
        raise ExpiredToken("The auth_req_id has expired.")
    if row.status == "denied":
        raise AccessDenied()
    if row.status == "pending":
        if not await store.note_poll(row.id, now, slow_down_step=approvals.SLOW_DOWN_STEP):
            raise SlowDown()
        raise AuthorizationPending()

    # -- approved: every rule again, as of now, then the one token ---------------------------
    if call.jkt is not None and (proof is None or proof.jkt != call.jkt):
        # RFC 9449 §10: the token is bound as asked; a poll without that key's proof is a
        # malformed poll (the approval stays open), not a refusal.
        raise InvalidDPoPProof("Send a DPoP proof by the key the token was asked for with.")
    record = GrantRecord(
        call=call.tool_call(),
        audience=call.audience,
        client_assertion=presented.via_client_assertion,
        agent_id=authenticated.agent.id,
        owner_id=authenticated.agent.owner_id,
        delegation_id=row.delegation_id,
        intent=call.intent,
        attestation_claim=uses[0],
        attestation_claimed=True,
    )
    workload = authenticated.workload
    if workload is not None:
        record.workload = workload_auth.record_of(workload)
    refusal = await _recheck(
        services, record, loaded, authenticated.attestation.jkt, call, now, workload
    )
    if refusal is not None:
        await _refuse(services, record, row, refusal, now)
    delegation, tool = loaded.delegation, loaded.tool
    if delegation is None or tool is None or loaded.registered is None:
        raise _unknown()  # _recheck has refused these already
    authorised = Authorised(
        agent=authenticated.agent,
        delegation=delegation,
        tool=tool,
        call=record.call,
        lifetime=call.lifetime,
        jkt=call.jkt,
        registered=loaded.registered,
        workload=workload.identity if workload is not None else None,
    )
    try:
        issued = await issue(services, record, authorised, now, approval=row)
    except ApprovalUsed:
        raise _unknown() from None
    if isinstance(issued, Denied):  # refused under the row locks; the approval closed with it
        await services.events.publish(ApprovalRedeemed(record.agent_id, issued=False))
        raise _denied_at_issue()
    await services.events.publish(ApprovalRedeemed(record.agent_id, issued=True))
    return issued


def _denied_at_issue() -> AccessDenied:
    return AccessDenied("The approved call is no longer allowed.")


async def _recheck(
    services: Services,
    record: GrantRecord,
    loaded: Loaded,
    jkt: str,
    call: approvals.CallRequest,
    now: int,
    workload: Proven | None = None,
) -> Reason | None:
    """The first rule that refuses the approved call now, or None."""
    # The attestation is signed by the key the delegation is bound to, as in the exchange.
    if loaded.delegation is None:
        return Reason.DELEGATION_INVALID
    if loaded.delegation_jkt != jkt:
        return Reason.DELEGATION_KEY_MISMATCH
    call_facts = facts(
        services,
        loaded,
        call.tool_call(),
        audience=call.audience,
        lifetime=call.lifetime,
        # What the token will be bound to, not whether this poll carried a proof: a call
        # asked for without DPoP stays unbound, and a tool that now requires DPoP refuses it.
        dpop_bound=call.jkt is not None,
        now=now,
        workload=workload,
    )
    if call_facts is None:
        return Reason.DELEGATION_INVALID
    active = await services.policy.current()
    record.policy_version = active.version
    decided = decide(services, call_facts, active.policy)
    # NeedsApproval is what the owner has just given; a Deny is a rule that refuses it now.
    return decided.reason if isinstance(decided, Deny) else None


async def _refuse(
    services: Services, record: GrantRecord, row: ApprovalFacts, reason: Reason, now: int
) -> None:
    """A rule refuses the approved call: a denied grant, the approval closed, access_denied."""
    closed = approvals.closed_at_issue(row, reason.value, now)
    written = recording.denial(record, reason, now)
    await services.exchange_store.close_approval(Denial(written, closed))
    await after_denial(services, record, reason, written.grant.id)
    await services.events.publish(ApprovalRedeemed(record.agent_id, issued=False))
    raise _denied_at_issue()
