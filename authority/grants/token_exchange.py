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
   token returned. A denial at any step after 1 is written as a denied grant.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import and_, bindparam, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.errors import AuthorityError
from authority.ledger.entries import append
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
from authority.storage.hot import Claim, Count
from authority.storage.schema import agents, delegations, grants, owners, resource_servers, tools
from authority.tokens.access_token import AT_TYP, access_token_claims, authorization_detail
from authority.tokens.dpop import VerifiedProof, verify_proof
from authority.tokens.inbound import (
    JWTRejected,
    UnverifiedJWT,
    audience_includes,
    peek,
    require_int,
    verify_attestation,
)
from authority.tokens.jose import registry

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


class Denied(Exception):
    """A decision against the request; already written as a denied grant."""

    def __init__(self, reason: Reason, error: AuthorityError) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class _Loaded:
    agent: AgentFacts | None
    agent_jwks: str | None
    delegation: DelegationFacts | None
    delegation_jkt: str | None
    tool: ToolFacts | None


# --- the grant record ---------------------------------------------------------------------
@dataclass
class _Record:
    """What the grant row and ledger entry say; filled in as the request is understood."""

    call: ToolCall
    audience: str
    agent_id: str | None = None
    owner_id: str | None = None
    delegation_id: str | None = None
    intent: str | None = None


async def _write_grant(
    conn: AsyncConnection,
    services: Services,
    record: _Record,
    *,
    now: int,
    decision: str,
    reason: Reason | None = None,
    jti: str | None = None,
    token_digest: str | None = None,
    expires_at: int | None = None,
    jkt: str | None = None,
    single_use: bool = False,
) -> str:
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
    await conn.execute(_INSERT_GRANT, values)
    ledger_record = {k: v for k, v in values.items() if k not in ("id", "created_at")}
    ledger_record["grant_id"] = grant_id
    await append(conn, kind="grant", version=1, created_at=now, record=ledger_record)
    return grant_id


async def _deny(
    services: Services, request: ExchangeRequest, record: _Record, reason: Reason, now: int
) -> Denied:
    """Write the denied grant in its own transaction and return the error to raise."""
    async with services.engine.begin() as conn:
        await _write_grant(conn, services, record, now=now, decision="denied", reason=reason)
    log.info("exchange denied: %s (agent=%s)", reason.value, record.agent_id)
    return Denied(reason, error_for(reason, client_assertion=request.via_client_assertion))


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
_INSERT_GRANT = grants.insert()


async def _load(
    services: Services, agent_id: str | None, delegation_id: str | None, tool_name: str
) -> _Loaded:
    """Agent with owner status, delegation and tool with its audience: one round trip."""
    params = {"agent_id": agent_id or "", "delegation_id": delegation_id or "", "tool": tool_name}
    async with services.reader.connect() as conn:
        row = (await conn.execute(_LOAD, params)).one()
    return _Loaded(
        agent=_agent_facts(row),
        agent_jwks=row.jwks,
        delegation=_delegation_facts(row),
        delegation_jkt=row.cnf_jkt,
        tool=_tool_facts(row),
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
    Signature checks of identical credentials are cached by the keyring's verifier.
    """
    header = unverified.header
    if header.get("typ") != DELEGATION_TYP:
        raise JWTRejected("delegation_wrong_typ")
    claims = _verified_delegation_claims(services, unverified)
    issuer = services.settings.issuer
    if claims.get("iss") != issuer or not audience_includes(claims, (issuer,)):
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


def _verified_delegation_claims(services: Services, unverified: UnverifiedJWT) -> dict[str, Any]:
    kid = unverified.header.get("kid")
    alg = unverified.header.get("alg")
    key = services.keyring.public_key(kid, "token") if isinstance(kid, str) else None
    # The algorithm is the one the key itself was made for (RFC 8725 §3.1), so tokens
    # signed before a change of settings.signing_alg keep verifying with their old key.
    if key is None or alg != key.alg:
        raise JWTRejected("delegation_unknown_key")
    cache: dict[str, dict[str, Any]] = services.extras.setdefault("delegation_cache", {})
    digest = hashlib.sha256(unverified.raw.encode()).hexdigest()
    cached = cache.get(digest)
    if cached is not None:
        return cached
    try:
        obj = jws.deserialize_compact(unverified.raw, key, registry=registry([alg]))
    except JoseError:
        raise JWTRejected("delegation_bad_signature") from None
    claims = json.loads(obj.payload)
    if not isinstance(claims, dict):
        raise JWTRejected("delegation_malformed")
    if len(cache) > 10_000:
        cache.clear()
    cache[digest] = claims
    return claims


# --- the exchange ----------------------------------------------------------------------------
def _map_delegation_rejection(exc: JWTRejected) -> Reason:
    if exc.reason == "delegation_wrong_agent":
        return Reason.DELEGATION_WRONG_AGENT
    if exc.reason == "delegation_key_mismatch":
        return Reason.DELEGATION_KEY_MISMATCH
    if exc.reason == "delegation_expired":
        return Reason.DELEGATION_EXPIRED
    return Reason.DELEGATION_INVALID


async def exchange(services: Services, request: ExchangeRequest) -> Issued:
    """Decide one exchange; raise ``Denied`` (already recorded) or return the token."""
    settings = services.settings
    now = services.now()
    record = _Record(call=request.call, audience=request.resource)

    # -- who is asking: the attestation, and the agent it names ---------------------------------
    try:
        unverified_attestation = peek(request.assertion)
    except JWTRejected:
        raise await _deny(services, request, record, Reason.ATTESTATION_INVALID, now) from None
    claimed_agent = unverified_attestation.claims.get("iss")
    if not isinstance(claimed_agent, str) or (
        request.client_id is not None and request.client_id != claimed_agent
    ):
        raise await _deny(services, request, record, Reason.ATTESTATION_INVALID, now)
    try:
        unverified_delegation: UnverifiedJWT | None = peek(request.subject_token)
    except JWTRejected:
        unverified_delegation = None
    claimed_delegation = (
        unverified_delegation.claims.get("jti") if unverified_delegation is not None else None
    )
    loaded = await _load(
        services,
        claimed_agent,
        claimed_delegation if isinstance(claimed_delegation, str) else None,
        request.call.tool,
    )
    if loaded.agent is None or loaded.agent_jwks is None:
        raise await _deny(services, request, record, Reason.AGENT_UNKNOWN, now)
    try:
        attestation = verify_attestation(
            unverified_attestation,
            agent_id=loaded.agent.id,
            jwks_json=loaded.agent_jwks,
            audiences=(settings.issuer, request.url),
            now=now,
            skew=settings.clock_skew,
            max_lifetime=settings.assertion_max_lifetime,
        )
    except JWTRejected as exc:
        log.info("attestation rejected: %s", exc.reason)
        raise await _deny(services, request, record, Reason.ATTESTATION_INVALID, now) from None
    # From here on the agent is authenticated, and denials are attributed to it.
    record.agent_id = loaded.agent.id
    record.owner_id = loaded.agent.owner_id

    # -- what it holds: the delegation -----------------------------------------------------------
    if unverified_delegation is None:
        raise await _deny(services, request, record, Reason.DELEGATION_INVALID, now)
    try:
        delegation_id = verify_delegation_credential(
            services, unverified_delegation, agent_id=loaded.agent.id, jkt=attestation.jkt, now=now
        )
    except JWTRejected as exc:
        reason = _map_delegation_rejection(exc)
        raise await _deny(services, request, record, reason, now) from None
    delegation = loaded.delegation
    if delegation is None or delegation.id != delegation_id:
        raise await _deny(services, request, record, Reason.DELEGATION_INVALID, now)
    if loaded.delegation_jkt != attestation.jkt:
        raise await _deny(services, request, record, Reason.DELEGATION_KEY_MISMATCH, now)
    record.delegation_id = delegation.id
    record.intent = delegation.intent

    # -- how it will hold the token: DPoP ------------------------------------------------------
    proof: VerifiedProof | None = None
    if request.dpop_proof is not None:
        try:
            proof = verify_proof(
                request.dpop_proof,
                method=request.method,
                url=request.url,
                now=now,
                skew=settings.clock_skew,
                max_age=settings.dpop_proof_max_age,
            )
        except JWTRejected as exc:
            log.info("dpop proof rejected: %s", exc.reason)
            raise await _deny(services, request, record, Reason.DPOP_INVALID, now) from None

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
    if isinstance(decision, Deny | NeedsApproval):
        raise await _deny(services, request, record, decision.reason, now)
    verdict = services.policy.evaluate(facts)
    if not verdict.allowed:
        reason = Reason.APPROVAL_REQUIRED if verdict.needs_approval else Reason.POLICY_DENIED
        raise await _deny(services, request, record, reason, now)
    if tool is None:  # evaluate() has denied this already; kept explicit for the reader
        raise await _deny(services, request, record, Reason.TOOL_UNKNOWN, now)

    # -- replay and rate: one round trip to shared hot state ---------------------------------------
    claims = [
        Claim(
            f"jti:attestation:{attestation.agent_id}:{attestation.jti}",
            max(1, attestation.exp - now + settings.clock_skew),
        )
    ]
    if proof is not None:
        claims.append(
            Claim(
                f"jti:dpop:{proof.jkt}:{proof.jti}",
                settings.dpop_proof_max_age + 2 * settings.clock_skew,
            )
        )
    counts = []
    if delegation.rate_per_minute is not None:
        counts.append(Count(f"rate:delegation:{delegation.id}:{now // 60}", 60))
    outcome = await services.hot.apply(claims, counts)
    if not outcome.claimed[0]:
        raise await _deny(services, request, record, Reason.ATTESTATION_REPLAYED, now)
    if proof is not None and not outcome.claimed[1]:
        raise await _deny(services, request, record, Reason.DPOP_REPLAYED, now)
    if delegation.rate_per_minute is not None and outcome.counts[0] > delegation.rate_per_minute:
        raise await _deny(services, request, record, Reason.RATE_LIMITED, now)

    # -- issue: sign, then commit the grant; the token leaves only after the commit -------------
    jti = new_id("at")
    expires_at = now + lifetime
    jkt = proof.jkt if proof is not None else None
    token = services.keyring.sign(
        access_token_claims(
            issuer=settings.issuer,
            owner_id=loaded.agent.owner_id,
            agent_id=loaded.agent.id,
            audience=tool.audience,
            delegation_id=delegation.id,
            intent=delegation.intent,
            call=request.call,
            issued_at=now,
            expires_at=expires_at,
            jti=jti,
            jkt=jkt,
        ),
        typ=AT_TYP,
    )
    async with services.engine.begin() as conn:
        spent = await _spend_call(conn, delegation.id, loaded.agent.id, now)
        if spent is None:
            reason = await _why_not_spent(conn, delegation.id, loaded.agent.id, now)
            await _write_grant(conn, services, record, now=now, decision="denied", reason=reason)
            error = error_for(reason, client_assertion=request.via_client_assertion)
            denied: Denied | None = Denied(reason, error)
        else:
            await _write_grant(
                conn,
                services,
                record,
                now=now,
                decision="issued",
                jti=jti,
                token_digest=token_hash(token),
                expires_at=expires_at,
                jkt=jkt,
                single_use=tool.single_use,
            )
            denied = None
    if denied is not None:
        raise denied
    return Issued(
        access_token=token,
        token_type="DPoP" if jkt else "Bearer",
        expires_in=lifetime,
        authorization_details=[authorization_detail(request.call, tool.audience)],
    )


def _spend_statement() -> Any:
    live = (
        select(delegations.c.id)
        .join(agents, agents.c.id == delegations.c.agent_id)
        .join(owners, owners.c.id == delegations.c.owner_id)
        .where(
            delegations.c.id == bindparam("p_delegation"),
            delegations.c.agent_id == bindparam("p_agent"),
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            agents.c.status == "active",
            owners.c.status == "active",
        )
        .with_for_update(read=True, of=[agents, owners])
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
        )
        .values(calls_used=delegations.c.calls_used + 1)
        .returning(delegations.c.calls_used)
    )


_SPEND = _spend_statement()


async def _spend_call(
    conn: AsyncConnection, delegation_id: str, agent_id: str, now: int
) -> int | None:
    """Count one call against the delegation if it, its agent and its owner are all live.

    On PostgreSQL the agent and owner rows are held FOR SHARE and the delegation row is
    updated, so a concurrent revocation, quarantine or kill switch either commits first
    (and this finds nothing to spend) or waits for this grant to commit (and then revokes
    it too). SQLite serialises writers (BEGIN IMMEDIATE), which gives the same order.
    """
    params = {"p_delegation": delegation_id, "p_agent": agent_id, "p_now": now}
    row = (await conn.execute(_SPEND, params)).first()
    return None if row is None else int(row.calls_used)


async def _why_not_spent(
    conn: AsyncConnection, delegation_id: str, agent_id: str, now: int
) -> Reason:
    """After a refused spend, inside the same transaction: which rule refused it."""
    row = (
        await conn.execute(
            select(
                delegations.c.status,
                delegations.c.expires_at,
                delegations.c.max_calls,
                delegations.c.calls_used,
                agents.c.status.label("agent_status"),
                owners.c.status.label("owner_status"),
            )
            .join(agents, and_(agents.c.id == delegations.c.agent_id, agents.c.id == agent_id))
            .join(owners, owners.c.id == delegations.c.owner_id)
            .where(delegations.c.id == delegation_id)
        )
    ).first()
    if row is None:
        return Reason.DELEGATION_INVALID
    if row.agent_status != "active":
        return Reason.AGENT_INACTIVE
    if row.owner_status != "active":
        return Reason.OWNER_INACTIVE
    if row.status != "active":
        return Reason.DELEGATION_REVOKED
    if row.expires_at <= now:
        return Reason.DELEGATION_EXPIRED
    return Reason.CALL_CAP_EXHAUSTED
