"""OAuth 2.0 Token Exchange (RFC 8693) of a delegation for one per-call access token.

The agent presents its delegation as ``subject_token`` and proves possession of its key
with a fresh attestation (RFC 7523) as ``actor_token`` or ``client_assertion``; it names
the one call with ``resource`` (RFC 8707) and ``authorization_details`` (RFC 9396).

Order of work, cheapest and least trusting first, each step a unit of its own:
1. parse (``endpoints.token``; no decision yet: malformed requests leave no grant row);
2. authenticate (``agent_auth``): load agent, owner, delegation and tool in one query,
   verify the attestation, then the delegation credential, then the DPoP proof;
3. decide (``decision``): the built-in checks (policy.checks), then Cedar;
4. count the rate window, in one hot-state trip; then weigh the call against the agent's
   baseline (``authority.baselines``, in process): far outside it, the owner is asked
   (``BEHAVIOUR_STEP_UP``) with the explanation they will see;
5. issue (``issuance``): one write of the exchange port (``storage.exchange``) claims
   the attestation and proof jtis, spends a call on the delegation under a row lock that
   also holds the agent and owner rows, writes the grant and its ledger entry, commits;
   only then is the token returned.

A refusal at any step after 1 is a value (a ``Reason``), written once as a denied grant
at the edge of the flow (``recording.deny``) and answered as ``Denied``.

A call that needs the owner's approval (step 3 answers ``NeedsApproval``) is neither
issued nor denied: ``request_approval`` writes an approval request and a ``pending``
grant instead, and the answer is the CIBA acknowledgement (``Pending``). The agent then
polls (``grants.ciba``), and once the owner has approved, ``issuance.issue`` makes that
one token, under the same rules, as here.

Every denial of an authenticated agent is also reported to automatic containment
(``authority.containment``), which decides whether it counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authority import behaviour
from authority.approvals import requests as approvals
from authority.baselines import Deviation
from authority.context import Services
from authority.domain_events import ApprovalRequested, ExchangePending
from authority.errors import TemporarilyUnavailable
from authority.policy.checks import Deny, NeedsApproval, ToolCall
from authority.policy.reasons import Reason
from authority.storage.exchange import GrantWrite, NotRequested
from authority.storage.hot import Count
from authority.storage.replay import SingleUse

from . import agent_auth, recording, workload_auth
from .agent_auth import AuthenticatedAgent, Presented, Refusal
from .decision import decide, facts
from .issuance import Authorised, Issued, issue, replayed
from .recording import Denied, GrantRecord, after_denial, deny


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """A well-formed exchange request: parsed and typed, nothing in it verified."""

    presented: Presented  # the attestation, the delegation (subject_token), the proof
    resource: str
    call: ToolCall
    lifetime: int | None


@dataclass(frozen=True, slots=True)
class Pending:
    """The call awaits the owner's approval: the CIBA §7.3 acknowledgement."""

    auth_req_id: str
    expires_in: int
    interval: int


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A call every rule allows, or one the owner may allow (``approval`` says why)."""

    authorised: Authorised
    uses: list[SingleUse]
    approval: Reason | None
    deviation: Deviation | None = None  # why the agent's baseline asks (BEHAVIOUR_STEP_UP)


async def exchange(services: Services, request: ExchangeRequest) -> Issued | Pending | Denied:
    """Decide one exchange: the token, a pending approval, or the (recorded) denial."""
    now = services.now()
    record = GrantRecord(
        call=request.call,
        audience=request.resource,
        client_assertion=request.presented.via_client_assertion,
    )
    accepted = await _accept(services, request, record, now)
    if isinstance(accepted, Reason):
        return await deny(services, record, accepted, now)
    if accepted.approval is not None:
        return await request_approval(
            services,
            record,
            accepted.authorised,
            accepted.approval,
            now,
            accepted.uses,
            deviation=accepted.deviation,
        )
    return await issue(services, record, accepted.authorised, now, uses=accepted.uses)


def _attribute(record: GrantRecord, known: AuthenticatedAgent | Refusal) -> None:
    """What the grant row says of the agent: once authenticated, denials are its own."""
    if known.agent is not None:
        record.agent_id = known.agent.id
        record.owner_id = known.agent.owner_id
    if known.attestation_use is not None:
        record.attestation_claim = known.attestation_use
    if known.delegation is not None:
        record.delegation_id = known.delegation.id
        record.intent = known.delegation.intent
    if isinstance(known, AuthenticatedAgent) and known.workload is not None:
        record.workload = workload_auth.record_of(known.workload)


async def _accept(
    services: Services, request: ExchangeRequest, record: GrantRecord, now: int
) -> _Accepted | Reason:
    """Every step before the write; the reason of the first that refuses."""
    settings = services.settings
    # -- who is asking, what it holds, how it will hold the token ------------------------------
    claimed = agent_auth.claim(request.presented)
    if isinstance(claimed, Refusal):
        return claimed.reason
    authenticated = await agent_auth.authenticate(
        services,
        request.presented,
        claimed,
        now,
        delegation_id=claimed.delegation_id,
        tool=request.call.tool,
    )
    _attribute(record, authenticated)
    if isinstance(authenticated, Refusal):
        return authenticated.reason
    loaded, delegation = authenticated.loaded, authenticated.delegation
    if delegation is None:  # a subject_token was presented, so it was verified: cannot happen
        return Reason.DELEGATION_INVALID

    # -- the rules -----------------------------------------------------------------------------
    tool = loaded.tool
    lifetime = request.lifetime or settings.access_token_lifetime
    if request.lifetime is None and tool is not None and tool.max_token_lifetime is not None:
        lifetime = min(lifetime, tool.max_token_lifetime)
    proof = authenticated.proof
    call_facts = facts(
        services,
        loaded,
        request.call,
        audience=request.resource,
        lifetime=lifetime,
        dpop_bound=proof is not None,
        now=now,
        workload=authenticated.workload,
    )
    if call_facts is None:  # the agent and delegation were found: cannot happen
        return Reason.DELEGATION_INVALID
    active = await services.policy.current()
    record.policy_version = active.version
    decided = decide(services, call_facts, active.policy)
    if isinstance(decided, Deny):
        return decided.reason
    if tool is None:  # the checks have denied this already; kept explicit for the reader
        return Reason.TOOL_UNKNOWN

    # -- rate: one round trip to shared hot state -------------------------------------------------
    # Single use of the attestation and the proof is not decided here but by the write
    # that records the decision (the exchange port, storage.exchange).
    uses = authenticated.uses(services, now)
    if delegation.rate_per_minute is not None:
        window = Count(f"rate:delegation:{delegation.id}:{now // 60}", 60)
        (count,) = (await services.hot.apply([], [window])).counts
        if count > delegation.rate_per_minute:
            return Reason.RATE_LIMITED
    if loaded.registered is None:  # found with the agent and the tool: cannot happen
        return Reason.TOOL_UNKNOWN

    authorised = Authorised(
        agent=authenticated.agent,
        delegation=delegation,
        tool=tool,
        call=request.call,
        lifetime=lifetime,
        jkt=proof.jkt if proof is not None else None,
        registered=loaded.registered,
        workload=authenticated.workload.identity if authenticated.workload else None,
    )
    approval = decided.reason if isinstance(decided, NeedsApproval) else None
    # -- behaviour: a call every rule allows, far outside what this agent does, asks its owner
    # (in process: authority.baselines; no round trip)
    deviation = None
    if approval is None and settings.behaviour_enabled:
        if not services.baselines.loaded:  # unknown baselines would call everyone learning
            raise TemporarilyUnavailable(behaviour.NOT_LOADED)
        deviation = behaviour.deviation(services, authenticated.agent.id, tool.name, now)
        if deviation is not None:
            approval = Reason.BEHAVIOUR_STEP_UP
    return _Accepted(authorised, uses, approval, deviation)


async def request_approval(
    services: Services,
    record: GrantRecord,
    authorised: Authorised,
    reason: Reason,
    now: int,
    uses: Sequence[SingleUse] = (),
    *,
    deviation: Deviation | None = None,
) -> Pending | Denied:
    """Write the approval request and its ``pending`` grant; tell the owner; acknowledge.

    ``uses`` are spent in the same transaction: a replayed attestation or proof asks the
    owner for nothing.
    """
    settings = services.settings
    agent, delegation, tool = authorised.agent, authorised.delegation, authorised.tool
    auth_req_id = approvals.new_auth_req_id()
    row_id = approvals.approval_id(services, auth_req_id)
    if row_id is None:  # cannot happen for an id made above; kept explicit
        raise RuntimeError("generated auth_req_id does not parse")
    call = approvals.CallRequest(
        tool=authorised.call.tool,
        resource=authorised.call.resource,
        action=authorised.call.action,
        audience=tool.audience,
        intent=delegation.intent,
        lifetime=authorised.lifetime,
        jkt=authorised.jkt,
        arguments_digest=authorised.call.arguments_digest,
        arguments=authorised.call.arguments,
        explanation=deviation.explanation if deviation is not None else None,
    )
    approval = approvals.new_approval(
        settings,
        row_id=row_id,
        now=now,
        owner_id=agent.owner_id,
        agent_id=agent.id,
        delegation_id=delegation.id,
        call=call,
        reason=reason.value,
    )
    pending = recording.grant_write(
        record, now=now, decision="pending", reason=reason, approval_id=row_id
    )

    def refuse(not_requested: NotRequested) -> GrantWrite:
        refused = replayed(not_requested.claimed) or Reason.APPROVAL_LIMIT
        return recording.denial(record, refused, now)

    outcome = await services.exchange_store.request_approval(
        approval, pending, uses, refuse, max_pending=settings.approval_max_pending
    )
    record.attestation_claimed = bool(outcome.claimed) and outcome.claimed[0]
    if outcome.denial is not None:
        return await after_denial(
            services, record, recording.reason_of(outcome.denial), outcome.denial.grant.id
        )
    await services.events.publish(ExchangePending(agent.id))
    await services.events.publish(
        ApprovalRequested(
            owner_id=agent.owner_id,
            approval_id=row_id,
            agent_id=agent.id,
            delegation_id=delegation.id,
            intent=delegation.intent,
            tool=call.tool,
            resource=call.resource,
            action=call.action,
            audience=call.audience,
            reason=reason.value,
            expires_at=now + settings.approval_lifetime,
            arguments_digest=call.arguments_digest,
            arguments=call.arguments,
            deviation=deviation.kind if deviation is not None else None,
            explanation=call.explanation,
        )
    )
    return Pending(
        auth_req_id=auth_req_id,
        expires_in=settings.approval_lifetime,
        interval=settings.approval_poll_interval,
    )
