"""Agent authentication at the token endpoint (RFC 7523 §2.1, §2.2, §3; RFC 9449 §4.3).

An agent proves who it is with a fresh attestation JWT signed by one of its registered
keys, sent as ``actor_token`` (RFC 8693) or ``client_assertion`` (RFC 7523 §2.2); the
token exchange adds the delegation it holds (the authority's own delegation JWT, bound
to that key), and either grant may add a DPoP proof. The token exchange and the CIBA
poll both authenticate here, in two steps, cheapest and least trusting first:

1. ``claim``: peek at the attestation (nothing verified) for the agent it names;
2. ``authenticate``: load that agent with the delegation and tool the request names (one
   query, ``loading.load``), verify the attestation by the agent's keys, then the
   delegation credential (exchange), then the DPoP proof.

The answer is a value: ``AuthenticatedAgent``, or ``Refusal(reason)`` with what was
known of the agent when it was refused, for the flow to record or render once.

An agent registered with identity rules proves itself with its platform's token instead
(an ``actor_token`` whose ``iss`` is not the ``client_id`` it names), or, when it
requires both, with the attestation as ``client_assertion`` and the platform token as
``actor_token``: ``grants.workload_auth`` verifies and matches it; here only the flow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authority.context import Services
from authority.management.records import valid_id
from authority.policy.checks import AgentFacts, DelegationFacts
from authority.policy.reasons import Reason
from authority.storage import replay
from authority.storage.replay import SingleUse
from authority.tokens.dpop import VerifiedProof, verify_proof
from authority.tokens.inbound import (
    KID_REQUIRED,
    JWTRejected,
    UnverifiedJWT,
    VerifiedAttestation,
    audience_includes,
    peek,
    peek_credential,
    require_int,
    verify_attestation,
)
from authority.tokens.validate import verify_own

from . import loading, workload_auth
from .delegations import DELEGATION_TYP, WORKLOAD_BINDING
from .loading import Loaded
from .workload_auth import Proven

log = logging.getLogger("authority.exchange")


@dataclass(frozen=True, slots=True)
class Presented:
    """What the agent sent to authenticate with: parsed, nothing in it verified."""

    assertion: str  # the attestation JWT
    via_client_assertion: bool  # RFC 7523 §2.2 (else actor_token)
    client_id: str | None
    dpop_proof: str | None
    method: str
    url: str  # the token endpoint URL as the client addressed it (audience, DPoP htu)
    subject_token: str | None = None  # the delegation credential (token exchange only)
    # The platform token as actor_token next to the attestation as client_assertion (an
    # agent that requires both, ``workload_auth``).
    workload_token: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The agent (and delegation) a request names, before anything is verified."""

    agent_id: str
    unverified_attestation: UnverifiedJWT
    unverified_delegation: UnverifiedJWT | None  # None: absent, or not a JWT
    delegation_id: str | None  # the credential's jti, if a well-formed id
    # The platform token (unverified): the whole proof (``workload_only``: then it is
    # also ``unverified_attestation``), or the second one; None if absent or malformed.
    workload: UnverifiedJWT | None = None
    workload_only: bool = False


@dataclass(frozen=True, slots=True)
class AuthenticatedAgent:
    """An agent whose attestation verified (and, in the exchange, whose delegation did)."""

    loaded: Loaded
    agent: AgentFacts
    attestation: VerifiedAttestation
    attestation_use: SingleUse  # RFC 7523 §3 item 7: spent by whatever records the request
    delegation: DelegationFacts | None  # verified against the credential, in the exchange
    proof: VerifiedProof | None
    workload: Proven | None = None  # the platform token verified and matched, if any

    def uses(self, services: Services, now: int) -> list[SingleUse]:
        """The single uses this request spends: the attestation, then the DPoP proof."""
        uses = [self.attestation_use]
        if self.proof is not None:
            uses.append(dpop_claim(services, self.proof, now))
        return uses


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the agent is not authenticated, with what was known of it by then.

    ``agent`` is set once the attestation verified: from there on a denial is the
    agent's (attributed to it, and spending its attestation); ``delegation`` once its
    credential did.
    """

    reason: Reason
    agent: AgentFacts | None = None
    attestation_use: SingleUse | None = None
    delegation: DelegationFacts | None = None


def claim(presented: Presented) -> Claim | Refusal:
    """The agent the attestation names, if it can name one; no verification yet."""
    try:
        unverified_attestation = peek(presented.assertion)
    except JWTRejected:
        return Refusal(Reason.ATTESTATION_INVALID)
    workload_only = not presented.via_client_assertion and workload_auth.names_workload(
        unverified_attestation, presented.client_id
    )
    claimed_agent = (
        presented.client_id if workload_only else unverified_attestation.claims.get("iss")
    )
    # Only a well-formed id can name an agent; anything else is never sent to SQL.
    if (
        not isinstance(claimed_agent, str)
        or not valid_id(claimed_agent)
        or (presented.client_id is not None and presented.client_id != claimed_agent)
    ):
        return Refusal(Reason.ATTESTATION_INVALID)
    unverified_delegation: UnverifiedJWT | None = None
    if presented.subject_token is not None:
        try:
            unverified_delegation = peek_credential(presented.subject_token)
        except JWTRejected:
            unverified_delegation = None
    claimed_delegation = (
        unverified_delegation.claims.get("jti") if unverified_delegation is not None else None
    )
    workload = unverified_attestation if workload_only else None
    if presented.workload_token is not None:
        try:
            workload = peek(presented.workload_token)
        except JWTRejected:
            workload = None
    return Claim(
        agent_id=claimed_agent,
        unverified_attestation=unverified_attestation,
        unverified_delegation=unverified_delegation,
        delegation_id=claimed_delegation
        if isinstance(claimed_delegation, str) and valid_id(claimed_delegation)
        else None,
        workload=workload,
        workload_only=workload_only,
    )


async def authenticate(
    services: Services,
    presented: Presented,
    claimed: Claim,
    now: int,
    *,
    delegation_id: str | None,
    tool: str,
) -> AuthenticatedAgent | Refusal:
    """Load the claimed agent with ``delegation_id`` and ``tool``; verify what it sent.

    The delegation credential is verified when one was presented (the exchange); the
    CIBA poll presents none, and checks the delegation's key binding with its rules.
    """
    settings = services.settings
    loaded = await loading.load(services, claimed.agent_id, delegation_id, tool)
    if loaded.agent is None or loaded.agent_jwks is None:
        return Refusal(Reason.AGENT_UNKNOWN)
    if claimed.workload_only:
        return await _by_workload(services, presented, claimed, loaded, now)
    try:
        attestation = verify_attestation(
            claimed.unverified_attestation,
            agent_id=loaded.agent.id,
            jwks_json=loaded.agent_jwks,
            audiences=(settings.issuer, presented.url),
            now=now,
            skew=settings.clock_skew,
            max_lifetime=settings.assertion_max_lifetime,
            max_keys_without_kid=settings.assertion_max_keys_without_kid,
        )
    except JWTRejected as exc:
        log.info("attestation rejected: %s", exc.reason)
        kid_required = exc.reason == KID_REQUIRED
        return Refusal(
            Reason.ATTESTATION_KID_REQUIRED if kid_required else Reason.ATTESTATION_INVALID
        )
    # From here on the agent is authenticated, and refusals are attributed to it.
    agent = loaded.agent
    use = attestation_claim(services, attestation, now)
    proven: Proven | None = None
    if loaded.agent_workload is not None or presented.workload_token is not None:
        second = await workload_auth.second_proof(
            services, loaded.agent_workload, presented.workload_token, claimed.workload, now
        )
        if isinstance(second, Reason):
            return Refusal(second, agent, use)
        proven = second
    delegation: DelegationFacts | None = None
    if presented.subject_token is not None:
        held = _held_delegation(services, loaded, claimed, agent.id, attestation, now)
        if isinstance(held, Reason):
            return Refusal(held, agent, use)
        delegation = held
    proof = _proof(services, presented, now)
    if isinstance(proof, Reason):
        return Refusal(proof, agent, use, delegation)
    return AuthenticatedAgent(loaded, agent, attestation, use, delegation, proof, proven)


async def _by_workload(
    services: Services, presented: Presented, claimed: Claim, loaded: Loaded, now: int
) -> AuthenticatedAgent | Refusal:
    """An agent without keys: its platform token is the proof, its delegation bound to
    its workload (``WORKLOAD_BINDING``); then the DPoP proof, as for any agent."""
    workload = workload_auth.workload_of(loaded.agent_workload)
    if workload is None or loaded.agent is None or claimed.workload is None:
        return Refusal(Reason.AGENT_UNKNOWN)
    if workload.require_key_and_workload:
        return Refusal(Reason.ATTESTATION_REQUIRED)
    proven = await workload_auth.prove(
        services, workload, presented.assertion, claimed.workload, now
    )
    if isinstance(proven, Reason):
        return Refusal(proven)
    agent, use = loaded.agent, proven.use
    # Stands for the attestation: the binding the delegation and the CIBA recheck compare.
    bound = VerifiedAttestation(agent.id, use.key, proven.identity.expires_at, WORKLOAD_BINDING)
    delegation: DelegationFacts | None = None
    if presented.subject_token is not None:
        held = _held_delegation(services, loaded, claimed, agent.id, bound, now)
        if isinstance(held, Reason):
            return Refusal(held, agent, use)
        delegation = held
    proof = _proof(services, presented, now)
    if isinstance(proof, Reason):
        return Refusal(proof, agent, use, delegation)
    return AuthenticatedAgent(loaded, agent, bound, use, delegation, proof, proven)


def _proof(services: Services, presented: Presented, now: int) -> VerifiedProof | Reason | None:
    """The request's DPoP proof verified (RFC 9449 §4.3), None without one."""
    if presented.dpop_proof is None:
        return None
    try:
        return verify_dpop(services, presented.dpop_proof, presented.method, presented.url, now)
    except JWTRejected as exc:
        log.info("dpop proof rejected: %s", exc.reason)
        return Reason.DPOP_INVALID


def _held_delegation(
    services: Services,
    loaded: Loaded,
    claimed: Claim,
    agent_id: str,
    attestation: VerifiedAttestation,
    now: int,
) -> DelegationFacts | Reason:
    """RFC 8693 §2.1 subject_token: the delegation the agent holds, bound to its key."""
    if claimed.unverified_delegation is None:
        return Reason.DELEGATION_INVALID
    try:
        delegation_id = verify_delegation_credential(
            services,
            claimed.unverified_delegation,
            agent_id=agent_id,
            jkt=attestation.jkt,
            now=now,
        )
    except JWTRejected as exc:
        return _map_delegation_rejection(exc)
    delegation = loaded.delegation
    if delegation is None or delegation.id != delegation_id:
        return Reason.DELEGATION_INVALID
    if loaded.delegation_jkt != attestation.jkt:
        return Reason.DELEGATION_KEY_MISMATCH
    return delegation


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
    if not isinstance(cnf, Mapping) or (
        cnf.get("jkt") != jkt and not _workload_bound(cnf, agent_id, jkt)
    ):
        raise JWTRejected("delegation_key_mismatch")
    if require_int(claims, "exp") <= now:
        raise JWTRejected("delegation_expired")
    delegation_id = claims.get("jti")
    if not isinstance(delegation_id, str):
        raise JWTRejected("delegation_malformed")
    return delegation_id


def _workload_bound(cnf: Mapping[str, Any], agent_id: str, binding: str) -> bool:
    """A credential of an agent without keys (``delegations.confirmation``)."""
    return binding == WORKLOAD_BINDING and "jkt" not in cnf and cnf.get("workload") == agent_id


def _verified_delegation_claims(services: Services, unverified: UnverifiedJWT) -> Mapping[str, Any]:
    cache = services.delegation_cache
    try:
        return verify_own(services, unverified, DELEGATION_TYP, cache=cache).claims
    except JWTRejected as exc:
        raise JWTRejected(exc.reason.replace("own_", "delegation_")) from None


def _map_delegation_rejection(exc: JWTRejected) -> Reason:
    if exc.reason == "delegation_wrong_agent":
        return Reason.DELEGATION_WRONG_AGENT
    if exc.reason == "delegation_key_mismatch":
        return Reason.DELEGATION_KEY_MISMATCH
    if exc.reason == "delegation_expired":
        return Reason.DELEGATION_EXPIRED
    return Reason.DELEGATION_INVALID


# --- single uses and the proof ---------------------------------------------------------------
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
