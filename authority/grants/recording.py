"""The grant row and its ledger entry: what every decision on a token request writes.

An issued, denied or pending grant is one row in ``grants`` and one ``grant`` entry in
the ledger, written together or not at all (no token without its ledger entry). A
denial is a value (``Denied``), written once, at the edge of the flow that refused
(``deny``), then counted and weighed by containment (``after_denial``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authority.context import Services
from authority.domain_events import ExchangeDenied
from authority.errors import AuthorityError
from authority.policy.checks import ToolCall
from authority.policy.reasons import Reason, error_for
from authority.secrets import new_id
from authority.storage.exchange import GrantWrite, NewGrant
from authority.storage.replay import SingleUse


@dataclass(frozen=True, slots=True)
class Denied:
    """A decision against the request, already written as a denied grant."""

    reason: Reason
    error: AuthorityError


@dataclass
class GrantRecord:
    """What the grant row and ledger entry say; filled in as the request is understood."""

    call: ToolCall
    audience: str
    client_assertion: bool = False  # how the agent authenticated (for the error code)
    agent_id: str | None = None
    owner_id: str | None = None
    delegation_id: str | None = None
    intent: str | None = None
    # The verified attestation's single use (storage.replay), and whether this request
    # has spent it: a denial counts against the agent only on the attestation's first use.
    attestation_claim: SingleUse | None = None
    attestation_claimed: bool = False
    # The policy version the rules decided on (policy.active); None before the rules ran.
    policy_version: int | None = None
    # The workload identity the agent proved itself with (``workload_auth.record_of``):
    # in the entry (``grant`` version 3) once verified, whatever the decision.
    workload: dict[str, Any] | None = None


def grant_write(
    record: GrantRecord,
    *,
    now: int,
    decision: str,
    reason: Reason | None = None,
    jti: str | None = None,
    token_digest: str | None = None,
    expires_at: int | None = None,
    jkt: str | None = None,
    single_use: bool = False,
    approval_id: str | None = None,
) -> GrantWrite:
    """The grant row of a decision and its ``grant`` ledger entry, for the port to write."""
    grant = NewGrant(
        id=new_id("grt"),
        created_at=now,
        decision=decision,
        reason=reason.value if reason else None,
        agent_id=record.agent_id,
        owner_id=record.owner_id,
        delegation_id=record.delegation_id,
        tool=record.call.tool,
        resource=record.call.resource,
        action=record.call.action,
        intent=record.intent,
        audience=record.audience,
        jti=jti,
        token_hash=token_digest,
        expires_at=expires_at,
        cnf_jkt=jkt,
        single_use=single_use,
    )
    ledger_record: dict[str, Any] = {
        "decision": decision,
        "reason": grant.reason,
        "agent_id": record.agent_id,
        "owner_id": record.owner_id,
        "delegation_id": record.delegation_id,
        "tool": grant.tool,
        "resource": grant.resource,
        "action": grant.action,
        "intent": record.intent,
        "audience": record.audience,
        "jti": jti,
        "token_hash": token_digest,
        "expires_at": expires_at,
        "cnf_jkt": jkt,
        "single_use": single_use,
        "grant_id": grant.id,
    }
    if approval_id is not None:
        ledger_record["approval_id"] = approval_id
    if record.call.arguments_digest is not None:
        ledger_record["arguments_digest"] = record.call.arguments_digest
    if record.policy_version is not None:
        ledger_record["policy_version"] = record.policy_version
    if record.workload is not None:
        ledger_record["workload"] = record.workload
    return GrantWrite(grant, ("grant", 3, now, ledger_record))


def denial(record: GrantRecord, reason: Reason, now: int) -> GrantWrite:
    """A denied grant (and its entry) with the rule that refused."""
    return grant_write(record, now=now, decision="denied", reason=reason)


def reason_of(write: GrantWrite) -> Reason:
    """The rule a denied grant this module built names."""
    return Reason(write.grant.reason or "")


async def deny(services: Services, record: GrantRecord, reason: Reason, now: int) -> Denied:
    """Write the denied grant in its own transaction; the denial, to answer with.

    RFC 7523 §3 item 7: the attestation's jti is single use, also when the request it
    came with is refused, so a captured attestation cannot be replayed for another call;
    it is spent with the denial. One that was spent already is refused as replayed,
    whatever else was wrong with the request.
    """
    claim = record.attestation_claim
    use = claim if claim is not None and not record.attestation_claimed else None
    written = denial(record, reason, now)
    replay: list[GrantWrite] = []

    def replayed() -> GrantWrite:
        replay.append(denial(record, Reason.ATTESTATION_REPLAYED, now))
        return replay[-1]

    claimed = await services.exchange_store.deny(written, use, replayed)
    if claimed is not None:
        record.attestation_claimed = claimed
        if not claimed:
            reason = Reason.ATTESTATION_REPLAYED
            written = replay[-1] if replay else written
    return await after_denial(services, record, reason, written.grant.id)


async def after_denial(
    services: Services, record: GrantRecord, reason: Reason, grant_id: str | None = None
) -> Denied:
    """Once a denied grant (``grant_id``) is committed: tell who counts it (metrics,
    containment) and who logs it."""
    # Only an attestation's first use counts against its agent (containment).
    attributable = (
        record.attestation_claimed and record.agent_id is not None and record.owner_id is not None
    )
    await services.events.publish(
        ExchangeDenied(
            record.agent_id,
            record.owner_id,
            reason,
            attributable=attributable,
            grant_id=grant_id,
            delegation_id=record.delegation_id,
        )
    )
    error = error_for(reason, client_assertion=record.client_assertion, now=services.now())
    return Denied(reason, error)
