"""OAuth 2.0 Token Exchange (RFC 8693) of a delegation for one per-call access token.

The agent presents its delegation as ``subject_token`` and proves possession of its key
with a fresh attestation (RFC 7523) as ``actor_token`` or ``client_assertion``; it names
the one call with ``resource`` (RFC 8707) and ``authorization_details`` (RFC 9396).

Order of work, cheapest and least trusting first:
1. parse (no decision yet: malformed requests leave no grant row);
2. load agent, owner, delegation and tool in one query;
3. verify the attestation, then the delegation credential, then the DPoP proof;
4. the built-in checks (policy.checks), then Cedar;
5. claim the attestation and proof jtis and count the rate window, in one hot-state trip;
6. one transaction: spend a call on the delegation under a row lock that also holds the
   agent and owner rows, write the grant and its ledger entry, commit; only then is the
   token returned (``issue``). A denial at any step after 1 is written as a denied grant.

A call that needs the owner's approval (step 4 answers ``NeedsApproval``, or a Cedar
``forbid`` annotated ``@approval("owner")``) is neither issued nor denied: step 6 writes
an approval request and a ``pending`` grant instead, and the answer is the CIBA
acknowledgement (``Pending``). The agent then polls (``grants.ciba``), and once the owner
has approved, ``issue`` makes that one token, under the same rules, as here.

Every denial of an authenticated agent is also reported to automatic containment
(``authority.containment``), which decides whether it counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Integer, and_, bindparam, literal, select, update

from authority import containment, metrics
from authority.approvals import requests as approvals
from authority.approvals import webhooks
from authority.context import Services
from authority.errors import AuthorityError, InvalidGrant
from authority.ledger.entries import COLUMNS as ENTRY_COLUMNS
from authority.ledger.entries import INSERT as INSERT_ENTRY
from authority.ledger.entries import entry_row
from authority.management.records import valid_id
from authority.policy.checks import (
    AgentFacts,
    DelegationFacts,
    Deny,
    Facts,
    NeedsApproval,
    ToolCall,
    ToolFacts,
    evaluate,
)
from authority.policy.reasons import Reason, error_for
from authority.secrets import new_id, token_hash
from authority.storage import replay
from authority.storage.driver import Executes, Transaction
from authority.storage.hot import Count
from authority.storage.replay import SingleUse
from authority.storage.schema import (
    agents,
    delegations,
    grants,
    ledger_entries,
    owners,
    resource_servers,
    tools,
)
from authority.tokens.access_token import AT_TYP, access_token_claims, authorization_detail
from authority.tokens.dpop import VerifiedProof, verify_proof
from authority.tokens.inbound import (
    KID_REQUIRED,
    JWTRejected,
    UnverifiedJWT,
    VerifiedAttestation,
    audience_includes,
    peek,
    require_int,
    verify_attestation,
)
from authority.tokens.validate import OwnToken, verify_own

from .delegations import DELEGATION_TYP, scope_from_json

log = logging.getLogger("authority.exchange")


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """A well-formed exchange request: parsed and typed, nothing in it verified."""

    subject_token: str
    assertion: str
    via_client_assertion: bool
    client_id: str | None
    resource: str
    call: ToolCall
    lifetime: int | None
    dpop_proof: str | None
    method: str
    url: str  # the token endpoint URL as the client addressed it (DPoP htu)


@dataclass(frozen=True, slots=True)
class Issued:
    access_token: str
    token_type: str  # "Bearer" or "DPoP" (RFC 9449 §5)
    expires_in: int
    authorization_details: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Pending:
    """The call awaits the owner's approval: the CIBA §7.3 acknowledgement."""

    auth_req_id: str
    expires_in: int
    interval: int


class Denied(Exception):
    """A decision against the request; already written as a denied grant."""

    def __init__(self, reason: Reason, error: AuthorityError) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class Registered:
    """The registrations a decision read, as stored: the spend finds them unchanged.

    The spend statement compares each with its row under the same lock that holds the
    agent and owner, so a tool retired or made approval-required, a risk tier raised, an
    agent key removed or an autonomy level lowered while the exchange was being decided
    refuses it (``Reason.REGISTRATION_CHANGED``) instead of issuing under the old rules.
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

    def parameters(self) -> dict[str, Any]:
        return {f"r_{name}": getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Loaded:
    agent: AgentFacts | None
    agent_jwks: str | None
    delegation: DelegationFacts | None
    delegation_jkt: str | None
    tool: ToolFacts | None
    registered: Registered | None  # None unless both agent and tool were found


# --- the grant record ---------------------------------------------------------------------
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


@dataclass(frozen=True, slots=True)
class GrantRows:
    """One grant row and its ledger entry's row, written together or not at all."""

    grant: dict[str, Any]
    entry: dict[str, Any]

    @property
    def grant_id(self) -> str:
        return str(self.grant["id"])

    def prefixed(self) -> dict[str, Any]:
        """Both rows as the parameters of the one-statement writes (``_pg_record``)."""
        params = {f"g_{name}": value for name, value in self.grant.items()}
        params.update({f"e_{name}": value for name, value in self.entry.items()})
        return params


def grant_rows(
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
) -> GrantRows:
    grant_id = new_id("grt")
    values = {
        "id": grant_id,
        "created_at": now,
        "decision": decision,
        "reason": reason.value if reason else None,
        "agent_id": record.agent_id,
        "owner_id": record.owner_id,
        "delegation_id": record.delegation_id,
        "tool": record.call.tool,
        "resource": record.call.resource,
        "action": record.call.action,
        "intent": record.intent,
        "audience": record.audience,
        "jti": jti,
        "token_hash": token_digest,
        "expires_at": expires_at,
        "cnf_jkt": jkt,
        "single_use": single_use,
    }
    ledger_record = {k: v for k, v in values.items() if k not in ("id", "created_at")}
    ledger_record["grant_id"] = grant_id
    if approval_id is not None:
        ledger_record["approval_id"] = approval_id
    entry = entry_row(kind="grant", version=1, created_at=now, record=ledger_record)
    return GrantRows(values, entry)


async def insert_grant(conn: Executes, rows: GrantRows) -> None:
    """Both rows, in the caller's transaction."""
    await conn.execute(_INSERT_GRANT, rows.grant)
    await conn.execute(INSERT_ENTRY, rows.entry)


async def write_grant(
    conn: Executes,
    record: GrantRecord,
    *,
    now: int,
    decision: str,
    reason: Reason | None = None,
    approval_id: str | None = None,
) -> str:
    """A grant row that issues nothing (denied, pending), in the caller's transaction."""
    rows = grant_rows(record, now=now, decision=decision, reason=reason, approval_id=approval_id)
    await insert_grant(conn, rows)
    return rows.grant_id


async def deny(services: Services, record: GrantRecord, reason: Reason, now: int) -> Denied:
    """Write the denied grant in its own transaction and return the error to raise.

    RFC 7523 §3 item 7: the attestation's jti is single use, also when the request it
    came with is refused, so a captured attestation cannot be replayed for another call;
    it is spent with the denial. One that was spent already is refused as replayed,
    whatever else was wrong with the request.
    """
    claim = record.attestation_claim
    uses = [claim] if claim is not None and not record.attestation_claimed else []
    rows = grant_rows(record, now=now, decision="denied", reason=reason)
    if services.sql.dialect == "postgresql":
        # One statement, so one round trip: it commits alone, the use and both rows, or
        # (a replay) the use alone.
        if not uses:
            await services.sql.commit_one(_PG_RECORD, rows.prefixed())
        else:
            params = {**replay.parameters(uses), **rows.prefixed()}
            record.attestation_claimed = (
                await services.sql.commit_one(_PG_CLAIM_AND_RECORD, params) is not None
            )
            if not record.attestation_claimed:
                reason = Reason.ATTESTATION_REPLAYED
                rows = grant_rows(record, now=now, decision="denied", reason=reason)
                await services.sql.commit_one(_PG_RECORD, rows.prefixed())
    else:
        async with services.sql.transaction() as tx:
            if uses:
                (record.attestation_claimed,) = await replay.spend(tx, "sqlite", uses)
                if not record.attestation_claimed:
                    reason = Reason.ATTESTATION_REPLAYED
                    rows = grant_rows(record, now=now, decision="denied", reason=reason)
            await insert_grant(tx, rows)
    return await after_denial(services, record, reason)


async def after_denial(services: Services, record: GrantRecord, reason: Reason) -> Denied:
    """Once a denied grant is committed: count it, and let containment weigh it."""
    log.info("exchange denied: %s (agent=%s)", reason.value, record.agent_id)
    metrics.of(services).exchange("denied", record.agent_id)
    if record.attestation_claimed and record.agent_id is not None and record.owner_id is not None:
        # Only an attestation's first use counts against its agent (containment).
        await containment.note_denial(
            services,
            agent_id=record.agent_id,
            owner_id=record.owner_id,
            reason=reason,
            first_use=None,
        )
    return Denied(reason, error_for(reason, client_assertion=record.client_assertion))


# --- loading ----------------------------------------------------------------------------------
# Built once: a statement object reused with bind parameters costs no cache-key work.
_LOAD = select(
    agents.c.id.label("agent_id"),
    agents.c.owner_id.label("agent_owner_id"),
    agents.c.status.label("agent_status"),
    agents.c.autonomy_level,
    agents.c.jwks,
    owners.c.status.label("owner_status"),
    delegations.c.id.label("delegation_id"),
    delegations.c.owner_id.label("delegation_owner_id"),
    delegations.c.agent_id.label("delegation_agent_id"),
    delegations.c.status.label("delegation_status"),
    delegations.c.expires_at.label("delegation_expires_at"),
    delegations.c.scope,
    delegations.c.intent,
    delegations.c.max_calls,
    delegations.c.rate_per_minute,
    delegations.c.calls_used,
    delegations.c.cnf_jkt,
    tools.c.name.label("tool_name"),
    tools.c.status.label("tool_status"),
    tools.c.resource_server_id,
    tools.c.actions,
    tools.c.read_actions,
    tools.c.risk_tier,
    tools.c.approval_required,
    tools.c.single_use,
    tools.c.dpop_required,
    tools.c.max_token_lifetime,
    resource_servers.c.audience,
    resource_servers.c.status.label("server_status"),
).select_from(
    select(literal(1).label("one"))
    .subquery("one")
    .outerjoin(agents, agents.c.id == bindparam("agent_id"))
    .outerjoin(owners, owners.c.id == agents.c.owner_id)
    .outerjoin(delegations, delegations.c.id == bindparam("delegation_id"))
    .outerjoin(tools, tools.c.name == bindparam("tool"))
    .outerjoin(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
)
# Columns a new grant row leaves to their defaults (NULL): set later, by use or revocation.
_UNSET = ("consumed_at", "revoked_at")
_GRANT_COLUMNS = tuple(column.name for column in grants.c if column.name not in _UNSET)
_INSERT_GRANT = grants.insert().values({name: bindparam(name) for name in _GRANT_COLUMNS})


async def load(
    services: Services, agent_id: str | None, delegation_id: str | None, tool_name: str
) -> Loaded:
    """Agent with owner status, delegation and tool with its audience: one round trip."""
    params = {"agent_id": agent_id or "", "delegation_id": delegation_id or "", "tool": tool_name}
    row = await services.sql.fetchrow(_LOAD, params)
    if row is None:  # the query is built on a one-row subquery: cannot happen
        raise RuntimeError("the exchange's load query returned no row")
    return Loaded(
        agent=_agent_facts(row),
        agent_jwks=row.jwks,
        delegation=_delegation_facts(row),
        delegation_jkt=row.cnf_jkt,
        tool=_tool_facts(row),
        registered=_registered(row),
    )


def _registered(row: Any) -> Registered | None:
    if row.agent_id is None or row.tool_name is None or row.audience is None:
        return None
    return Registered(
        agent_jwks=row.jwks,
        autonomy_level=row.autonomy_level,
        tool=row.tool_name,
        actions=row.actions,
        read_actions=row.read_actions,
        risk_tier=row.risk_tier,
        approval_required=bool(row.approval_required),
        single_use=bool(row.single_use),
        dpop_required=bool(row.dpop_required),
        max_token_lifetime=row.max_token_lifetime,
        audience=row.audience,
    )


def _agent_facts(row: Any) -> AgentFacts | None:
    if row.agent_id is None:
        return None
    return AgentFacts(
        id=row.agent_id,
        owner_id=row.agent_owner_id,
        status=row.agent_status,
        autonomy_level=row.autonomy_level,
        owner_status=row.owner_status or "retired",
    )


def _delegation_facts(row: Any) -> DelegationFacts | None:
    if row.delegation_id is None:
        return None
    return DelegationFacts(
        id=row.delegation_id,
        owner_id=row.delegation_owner_id,
        agent_id=row.delegation_agent_id,
        status=row.delegation_status,
        expires_at=row.delegation_expires_at,
        scope=scope_from_json(row.scope),
        intent=row.intent,
        max_calls=row.max_calls,
        rate_per_minute=row.rate_per_minute,
        calls_used=row.calls_used,
    )


def _tool_facts(row: Any) -> ToolFacts | None:
    if row.tool_name is None:
        return None
    # A tool on a retired resource server is as unusable as a retired tool.
    status = row.tool_status if row.server_status == "active" else "retired"
    return ToolFacts(
        name=row.tool_name,
        status=status,
        audience=row.audience,
        resource_server_id=row.resource_server_id,
        actions=tuple(json.loads(row.actions)),
        read_actions=tuple(json.loads(row.read_actions)),
        risk_tier=row.risk_tier,
        approval_required=bool(row.approval_required),
        single_use=bool(row.single_use),
        dpop_required=bool(row.dpop_required),
        max_token_lifetime=row.max_token_lifetime,
    )


# --- the delegation credential ---------------------------------------------------------------
def verify_delegation_credential(
    services: Services, unverified: UnverifiedJWT, *, agent_id: str, jkt: str, now: int
) -> str:
    """Verify the authority's own delegation JWT; return the delegation id.

    Checked: our key by kid, the algorithm we sign with, ``typ: delegation+jwt`` (so an
    access token can never pass as a delegation), iss and aud (this issuer), client_id
    (the authenticated agent), cnf.jkt (the key that signed the attestation) and exp.
    Signature checks of identical credentials are cached (tokens.validate.verify_own).
    """
    claims = _verified_delegation_claims(services, unverified)  # typ, key, alg, iss
    issuer = services.settings.issuer
    if not audience_includes(claims, (issuer,)):
        raise JWTRejected("delegation_wrong_issuer")
    if claims.get("client_id") != agent_id:
        raise JWTRejected("delegation_wrong_agent")
    cnf = claims.get("cnf")
    if not isinstance(cnf, Mapping) or cnf.get("jkt") != jkt:
        raise JWTRejected("delegation_key_mismatch")
    if require_int(claims, "exp") <= now:
        raise JWTRejected("delegation_expired")
    delegation_id = claims.get("jti")
    if not isinstance(delegation_id, str):
        raise JWTRejected("delegation_malformed")
    return delegation_id


def _verified_delegation_claims(services: Services, unverified: UnverifiedJWT) -> Mapping[str, Any]:
    cache: dict[str, OwnToken] = services.extras.setdefault("delegation_cache", {})
    try:
        return verify_own(services, unverified, DELEGATION_TYP, cache=cache).claims
    except JWTRejected as exc:
        raise JWTRejected(exc.reason.replace("own_", "delegation_")) from None


# --- the exchange ----------------------------------------------------------------------------
def _map_delegation_rejection(exc: JWTRejected) -> Reason:
    if exc.reason == "delegation_wrong_agent":
        return Reason.DELEGATION_WRONG_AGENT
    if exc.reason == "delegation_key_mismatch":
        return Reason.DELEGATION_KEY_MISMATCH
    if exc.reason == "delegation_expired":
        return Reason.DELEGATION_EXPIRED
    return Reason.DELEGATION_INVALID


async def exchange(services: Services, request: ExchangeRequest) -> Issued | Pending:
    """Decide one exchange: the token, or a pending approval; raise ``Denied`` (recorded)."""
    settings = services.settings
    now = services.now()
    record = GrantRecord(
        call=request.call, audience=request.resource, client_assertion=request.via_client_assertion
    )

    # -- who is asking: the attestation, and the agent it names ---------------------------------
    try:
        unverified_attestation = peek(request.assertion)
    except JWTRejected:
        raise await deny(services, record, Reason.ATTESTATION_INVALID, now) from None
    claimed_agent = unverified_attestation.claims.get("iss")
    # Only a well-formed id can name an agent; anything else is never sent to SQL.
    if (
        not isinstance(claimed_agent, str)
        or not valid_id(claimed_agent)
        or (request.client_id is not None and request.client_id != claimed_agent)
    ):
        raise await deny(services, record, Reason.ATTESTATION_INVALID, now)
    try:
        unverified_delegation: UnverifiedJWT | None = peek(request.subject_token)
    except JWTRejected:
        unverified_delegation = None
    claimed_delegation = (
        unverified_delegation.claims.get("jti") if unverified_delegation is not None else None
    )
    loaded = await load(
        services,
        claimed_agent,
        claimed_delegation
        if isinstance(claimed_delegation, str) and valid_id(claimed_delegation)
        else None,
        request.call.tool,
    )
    if loaded.agent is None or loaded.agent_jwks is None:
        raise await deny(services, record, Reason.AGENT_UNKNOWN, now)
    try:
        attestation = verify_attestation(
            unverified_attestation,
            agent_id=loaded.agent.id,
            jwks_json=loaded.agent_jwks,
            audiences=(settings.issuer, request.url),
            now=now,
            skew=settings.clock_skew,
            max_lifetime=settings.assertion_max_lifetime,
            max_keys_without_kid=settings.assertion_max_keys_without_kid,
        )
    except JWTRejected as exc:
        log.info("attestation rejected: %s", exc.reason)
        reason = (
            Reason.ATTESTATION_KID_REQUIRED
            if exc.reason == KID_REQUIRED
            else Reason.ATTESTATION_INVALID
        )
        raise await deny(services, record, reason, now) from None
    # From here on the agent is authenticated, and denials are attributed to it.
    record.agent_id = loaded.agent.id
    record.owner_id = loaded.agent.owner_id
    spent_attestation = attestation_claim(services, attestation, now)
    record.attestation_claim = spent_attestation

    # -- what it holds: the delegation -----------------------------------------------------------
    if unverified_delegation is None:
        raise await deny(services, record, Reason.DELEGATION_INVALID, now)
    try:
        delegation_id = verify_delegation_credential(
            services, unverified_delegation, agent_id=loaded.agent.id, jkt=attestation.jkt, now=now
        )
    except JWTRejected as exc:
        reason = _map_delegation_rejection(exc)
        raise await deny(services, record, reason, now) from None
    delegation = loaded.delegation
    if delegation is None or delegation.id != delegation_id:
        raise await deny(services, record, Reason.DELEGATION_INVALID, now)
    if loaded.delegation_jkt != attestation.jkt:
        raise await deny(services, record, Reason.DELEGATION_KEY_MISMATCH, now)
    record.delegation_id = delegation.id
    record.intent = delegation.intent

    # -- how it will hold the token: DPoP ------------------------------------------------------
    proof: VerifiedProof | None = None
    if request.dpop_proof is not None:
        try:
            proof = verify_dpop(services, request.dpop_proof, request.method, request.url, now)
        except JWTRejected as exc:
            log.info("dpop proof rejected: %s", exc.reason)
            raise await deny(services, record, Reason.DPOP_INVALID, now) from None

    # -- the rules -----------------------------------------------------------------------------
    tool = loaded.tool
    lifetime = request.lifetime or settings.access_token_lifetime
    if request.lifetime is None and tool is not None and tool.max_token_lifetime is not None:
        lifetime = min(lifetime, tool.max_token_lifetime)
    facts = Facts(
        now=now,
        agent=loaded.agent,
        delegation=delegation,
        tool=tool,
        call=request.call,
        audience=request.resource,
        lifetime=lifetime,
        server_max_lifetime=settings.access_token_max_lifetime,
        dpop_bound=proof is not None,
    )
    decision = evaluate(facts)
    if isinstance(decision, Deny):
        raise await deny(services, record, decision.reason, now)
    verdict = services.policy.evaluate(facts)
    if not verdict.allowed and not verdict.needs_approval:
        # A plain forbid refuses even a call the owner could otherwise have approved.
        raise await deny(services, record, Reason.POLICY_DENIED, now)
    approval: Reason | None = None
    if isinstance(decision, NeedsApproval):
        approval = decision.reason
    elif not verdict.allowed:
        approval = Reason.APPROVAL_REQUIRED
    if tool is None:  # evaluate() has denied this already; kept explicit for the reader
        raise await deny(services, record, Reason.TOOL_UNKNOWN, now)

    # -- rate: one round trip to shared hot state -------------------------------------------------
    # Single use of the attestation and the proof is not decided here but by the write
    # that records the decision (storage.replay), in SQL.
    uses = [spent_attestation]
    if proof is not None:
        uses.append(dpop_claim(services, proof, now))
    if delegation.rate_per_minute is not None:
        window = Count(f"rate:delegation:{delegation.id}:{now // 60}", 60)
        (count,) = (await services.hot.apply([], [window])).counts
        if count > delegation.rate_per_minute:
            raise await deny(services, record, Reason.RATE_LIMITED, now)
    if loaded.registered is None:  # found with the agent and the tool: cannot happen
        raise await deny(services, record, Reason.TOOL_UNKNOWN, now)

    authorised = Authorised(
        agent=loaded.agent,
        delegation=delegation,
        tool=tool,
        call=request.call,
        lifetime=lifetime,
        jkt=proof.jkt if proof is not None else None,
        registered=loaded.registered,
    )
    if approval is not None:
        return await request_approval(services, record, authorised, approval, now, uses)
    return await issue(services, record, authorised, now, uses=uses)


# --- the pieces the exchange and the CIBA poll share ----------------------------------------------
def attestation_claim(services: Services, attestation: VerifiedAttestation, now: int) -> SingleUse:
    """The attestation's single use (RFC 7523 §3 item 7), remembered while it could pass."""
    return replay.single_use(
        "attestation",
        attestation.agent_id,
        attestation.jti,
        expires_at=max(attestation.exp, now) + services.settings.clock_skew,
    )


def dpop_claim(services: Services, proof: VerifiedProof, now: int) -> SingleUse:
    """RFC 9449 §11.1: a proof's jti is single use while its iat is acceptable."""
    settings = services.settings
    return replay.single_use(
        "dpop",
        proof.jkt,
        proof.jti,
        expires_at=now + settings.dpop_proof_max_age + 2 * settings.clock_skew,
    )


def verify_dpop(services: Services, raw: str, method: str, url: str, now: int) -> VerifiedProof:
    settings = services.settings
    return verify_proof(
        raw,
        method=method,
        url=url,
        now=now,
        skew=settings.clock_skew,
        max_age=settings.dpop_proof_max_age,
    )


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


async def issue(
    services: Services,
    record: GrantRecord,
    authorised: Authorised,
    now: int,
    *,
    uses: Sequence[SingleUse] = (),
    approval_row: Any = None,
) -> Issued:
    """Sign the token, then commit its grant; the token leaves only after the commit.

    The call is spent on the delegation under a row lock that also holds the agent,
    owner, tool and resource server rows, so a revocation, quarantine, kill switch or
    registry change that commits first refuses it (and is written as a denied grant);
    one that commits later revokes it or applies to the next call. ``uses`` (the
    attestation's and the proof's jtis) are spent by the same write: a replay issues
    nothing. With ``approval_row``, the approval is consumed in the same transaction:
    exactly one poll gets the token, and a refusal here ends the approval.
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
        ),
        typ=AT_TYP,
    )
    rows = grant_rows(
        record,
        now=now,
        decision="issued",
        jti=jti,
        token_digest=token_hash(token),
        expires_at=expires_at,
        jkt=jkt,
        single_use=tool.single_use,
        approval_id=approval_row.id if approval_row is not None else None,
    )
    spend = {
        "p_delegation": delegation.id,
        "p_agent": agent.id,
        "p_now": now,
        **authorised.registered.parameters(),
    }
    refused = await _spend_and_record(services, record, spend, rows, uses, approval_row)
    if refused is not None:
        raise await after_denial(services, record, refused)
    metrics.of(services).exchange("issued", agent.id)
    return Issued(
        access_token=token,
        token_type="DPoP" if jkt else "Bearer",
        expires_in=authorised.lifetime,
        authorization_details=[authorization_detail(authorised.call, tool.audience)],
    )


class ApprovalUsed(InvalidGrant):
    """CIBA §11 invalid_grant: this approval's one token has been issued already."""

    default_description = "The auth_req_id is invalid, expired or already used."


async def request_approval(
    services: Services,
    record: GrantRecord,
    authorised: Authorised,
    reason: Reason,
    now: int,
    uses: Sequence[SingleUse] = (),
) -> Pending:
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
    )
    refused: Reason | None = None
    async with services.sql.transaction() as tx:
        spent = await replay.spend(tx, services.sql.dialect, uses)
        record.attestation_claimed = bool(spent) and spent[0]
        refused = _replayed(spent)
        if refused is None and (
            await approvals.pending_count(tx, agent.id, now) >= settings.approval_max_pending
        ):
            refused = Reason.APPROVAL_LIMIT
        if refused is not None:
            await write_grant(tx, record, now=now, decision="denied", reason=refused)
        else:
            await approvals.insert(
                tx,
                services,
                row_id=row_id,
                now=now,
                owner_id=agent.owner_id,
                agent_id=agent.id,
                delegation_id=delegation.id,
                call=call,
                reason=reason.value,
            )
            await write_grant(
                tx,
                record,
                now=now,
                decision="pending",
                reason=reason,
                approval_id=row_id,
            )
    if refused is not None:
        raise await after_denial(services, record, refused)
    metrics.of(services).exchange("pending", agent.id)
    metrics.of(services).approvals.labels("requested").inc()
    webhooks.notify(
        services,
        agent.owner_id,
        webhooks.APPROVAL_REQUESTED,
        {
            "approval_id": row_id,
            "agent_id": agent.id,
            "delegation_id": delegation.id,
            "intent": delegation.intent,
            "tool": call.tool,
            "resource": call.resource,
            "action": call.action,
            "audience": call.audience,
            "reason": reason.value,
            "expires_at": now + settings.approval_lifetime,
        },
    )
    return Pending(
        auth_req_id=auth_req_id,
        expires_in=settings.approval_lifetime,
        interval=settings.approval_poll_interval,
    )


def _spend_statement(gates: Sequence[Any] = ()) -> Any:
    """Spend one call, if the delegation, its agent, owner and tool are as decided.

    ``gates``: further conditions (the single-use claims of a one-statement write).
    """
    live = (
        select(delegations.c.id)
        .join(agents, agents.c.id == delegations.c.agent_id)
        .join(owners, owners.c.id == delegations.c.owner_id)
        .join(tools, tools.c.name == bindparam("r_tool"))
        .join(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
        .where(
            delegations.c.id == bindparam("p_delegation"),
            delegations.c.agent_id == bindparam("p_agent"),
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            agents.c.status == "active",
            owners.c.status == "active",
            *_REGISTERED_AS_DECIDED,
        )
        # FOR SHARE: a change to any of these rows waits for this grant's commit, and
        # one that committed first is seen here (PostgreSQL re-reads a locked row's
        # newest version and checks these conditions again on it).
        .with_for_update(read=True, of=[agents, owners, tools, resource_servers])
        .cte("live")
    )
    return (
        update(delegations)
        .where(
            delegations.c.id.in_(select(live.c.id)),
            # Repeated on the updated row itself: if a revocation committed while this
            # waited for the row lock, PostgreSQL re-checks these conditions on the new
            # version (READ COMMITTED), but not the CTE's, which keeps its snapshot.
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            (delegations.c.max_calls.is_(None))
            | (delegations.c.calls_used < delegations.c.max_calls),
            *gates,
        )
        .values(calls_used=delegations.c.calls_used + 1)
        .returning(delegations.c.calls_used)
    )


#: The registrations the decision read (``Registered``), still as they were.
_REGISTERED_AS_DECIDED = (
    agents.c.jwks == bindparam("r_agent_jwks"),
    agents.c.autonomy_level == bindparam("r_autonomy_level"),
    tools.c.status == "active",
    tools.c.actions == bindparam("r_actions"),
    tools.c.read_actions == bindparam("r_read_actions"),
    tools.c.risk_tier == bindparam("r_risk_tier"),
    tools.c.approval_required == bindparam("r_approval_required", type_=Boolean),
    tools.c.single_use == bindparam("r_single_use", type_=Boolean),
    tools.c.dpop_required == bindparam("r_dpop_required", type_=Boolean),
    tools.c.max_token_lifetime.is_not_distinct_from(
        bindparam("r_max_token_lifetime", type_=Integer)
    ),
    resource_servers.c.status == "active",
    resource_servers.c.audience == bindparam("r_audience"),
)

_SPEND = _spend_statement()


#: What an issued or denied exchange writes: (table, parameter prefix, columns, CTE name).
RECORDED = (
    (grants, "g_", _GRANT_COLUMNS, "granted"),
    (ledger_entries, "e_", ENTRY_COLUMNS, "entered"),
)


def _pg_record(source: Any = None, *, inserts: Sequence[Any] = RECORDED, result: Any = None) -> Any:
    """PostgreSQL: the grant and its ledger entry inserted by one statement.

    The rows' values are parameters ``g_<column>`` and ``e_<column>``
    (``GrantRows.prefixed``). With ``source`` (a CTE), both are inserted once per row it
    yields, so not at all when it yields none; the statement returns ``source``'s rows,
    or ``result`` when given.
    """
    inserted = []
    for table, prefix, columns, name in inserts:
        values = select(*(bindparam(prefix + c, type_=table.c[c].type) for c in columns))
        if source is not None:
            values = values.select_from(source)
        inserted.append(table.insert().from_select(columns, values).cte(name))
    if result is None:
        result = select(*source.c) if source is not None else select(literal(1).label("one"))
    return result.add_cte(*inserted)


def _pg_spend_and_record(claims: int, *, inserts: Sequence[Any] = RECORDED) -> Any:
    """PostgreSQL: claim the uses, spend the call and write the grant, in one statement.

    The spend waits for every claim (a replay spends nothing); the uses are recorded
    whether or not the call is spent. It returns one row: ``calls_used`` (NULL when
    nothing was spent) and ``claimed_<i>`` for each use.
    """
    ctes = replay.pg_claims(claims)
    spent = _spend_statement(replay.all_claimed(ctes)).cte("spent")
    result = select(
        select(spent.c.calls_used).scalar_subquery().label("calls_used"),
        *replay.claimed_flags(ctes),
    )
    return _pg_record(spent, inserts=inserts, result=result)


_PG_RECORD = _pg_record()
#: Both rows of a denial, inserted only if the attestation's use is new (else no row).
_PG_CLAIM_AND_RECORD = _pg_record(replay.pg_claims(1)[0])
_PG_SPEND_AND_RECORD = tuple(_pg_spend_and_record(n) for n in range(replay.MOST + 1))


def _replayed(claimed: Sequence[bool]) -> Reason | None:
    """The replay among the uses just claimed (attestation first, then DPoP proof)."""
    if claimed and not claimed[0]:
        return Reason.ATTESTATION_REPLAYED
    if len(claimed) > 1 and not claimed[1]:
        return Reason.DPOP_REPLAYED
    return None


async def _spend_and_record(
    services: Services,
    record: GrantRecord,
    spend: dict[str, Any],
    rows: GrantRows,
    uses: Sequence[SingleUse],
    approval_row: Any,
) -> Reason | None:
    """Spend one call on the delegation and write the issued grant with its entry.

    None when issued. Otherwise nothing is spent or issued, and the denied grant is
    written with the rule that refused it (returned): a replayed attestation or proof,
    the delegation, its agent or its owner no longer live, the call cap reached, or a
    registration changed since the decision. On PostgreSQL the spend holds the agent,
    owner, tool and resource server rows FOR SHARE and updates the delegation row, so a
    concurrent revocation, quarantine, kill switch or registry change either commits
    first (and nothing is spent) or waits for this grant to commit (and then revokes it
    too). SQLite serialises writers (BEGIN IMMEDIATE), which gives the same order. With
    ``approval_row``, the approval is consumed in the same transaction: exactly one poll
    gets its token.
    """
    now = spend["p_now"]
    if approval_row is None and services.sql.dialect == "postgresql":
        # Claims, spend and both inserts as one statement: one round trip instead of
        # seven. A refusal, rare, is explained and written in a transaction of its own.
        params = {**spend, **replay.parameters(uses), **rows.prefixed()}
        row = await services.sql.commit_one(_PG_SPEND_AND_RECORD[len(uses)], params)
        if row is None:  # the statement always returns its one row
            raise RuntimeError("the spend statement returned no row")
        claimed = tuple(bool(row[f"claimed_{i}"]) for i in range(len(uses)))
        if uses:
            record.attestation_claimed = claimed[0]
        if row.calls_used is not None:
            return None
        async with services.sql.transaction() as tx:
            return await _write_refusal(tx, services, record, spend, approval_row, claimed)
    async with services.sql.transaction() as tx:
        claimed = await replay.spend(tx, services.sql.dialect, uses)
        if uses:
            record.attestation_claimed = claimed[0]
        if _replayed(claimed) is not None or await tx.fetchrow(_SPEND, spend) is None:
            return await _write_refusal(tx, services, record, spend, approval_row, claimed)
        if approval_row is not None and not await approvals.consume(tx, approval_row.id, now):
            # Another poll has taken this approval's one token: roll everything back.
            raise ApprovalUsed()
        await insert_grant(tx, rows)
    return None


async def _write_refusal(
    tx: Transaction,
    services: Services,
    record: GrantRecord,
    spend: dict[str, Any],
    approval_row: Any,
    claimed: Sequence[bool] = (),
) -> Reason:
    """The denial of a call that could not be spent, with the rule that refused it."""
    now = spend["p_now"]
    refused = _replayed(claimed) or await _why_not_spent(tx, spend)
    await write_grant(tx, record, now=now, decision="denied", reason=refused)
    if approval_row is not None:
        await approvals.refuse_at_issue(tx, approval_row, refused.value, now)
    return refused


_WHY_NOT_SPENT = (
    select(
        delegations.c.status,
        delegations.c.expires_at,
        delegations.c.max_calls,
        delegations.c.calls_used,
        agents.c.status.label("agent_status"),
        owners.c.status.label("owner_status"),
        tools.c.status.label("tool_status"),
        resource_servers.c.status.label("server_status"),
        and_(*_REGISTERED_AS_DECIDED).label("as_decided"),
    )
    .join(
        agents,
        and_(agents.c.id == delegations.c.agent_id, agents.c.id == bindparam("p_agent")),
    )
    .join(owners, owners.c.id == delegations.c.owner_id)
    .outerjoin(tools, tools.c.name == bindparam("r_tool"))
    .outerjoin(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
    .where(delegations.c.id == bindparam("p_delegation"))
)


async def _why_not_spent(tx: Transaction, spend: Mapping[str, Any]) -> Reason:
    """After a refused spend: which rule refused it (in the same transaction on SQLite)."""
    row = await tx.fetchrow(_WHY_NOT_SPENT, spend)
    if row is None:
        return Reason.DELEGATION_INVALID
    if row.agent_status != "active":
        return Reason.AGENT_INACTIVE
    if row.owner_status != "active":
        return Reason.OWNER_INACTIVE
    if row.status != "active":
        return Reason.DELEGATION_REVOKED
    if row.expires_at <= spend["p_now"]:
        return Reason.DELEGATION_EXPIRED
    if row.tool_status != "active" or row.server_status != "active":
        return Reason.TOOL_INACTIVE
    if not row.as_decided:
        return Reason.REGISTRATION_CHANGED
    if row.max_calls is not None and row.calls_used >= row.max_calls:
        return Reason.CALL_CAP_EXHAUSTED
    # Nothing refuses it now (PostgreSQL reads each statement's own snapshot): a status
    # that refused the spend has been reversed since, and of the rules the spend checks
    # only statuses are reversible (an agent released from quarantine, mostly).
    return Reason.AGENT_INACTIVE
