"""Agents proving themselves with a token of the platform they run on (workload identity).

An agent registered with identity rules (``management.agent_workload``) presents a
platform token: a SPIFFE JWT-SVID, a Kubernetes service-account token, a GitHub or
GitLab CI OIDC token, any OIDC issuer's. Where it is carried (``endpoints.token``):

- an agent with rules only sends it as ``actor_token`` (RFC 8693 §2.1: "a security
  token that represents the identity of the acting party"; ``actor_token_type``
  ``urn:ietf:params:oauth:token-type:jwt``) and names itself with ``client_id``;
- an agent that requires both sends its own attestation as ``client_assertion``
  (RFC 7523 §2.2, how the agent authenticates as the client) and the platform token as
  ``actor_token`` (the acting workload).

Which domain: the token's unverified ``iss`` among the active domains the agent's
rules name (a SPIFFE JWT-SVID without ``iss``: the agent's SPIFFE domains), nothing
else; then ``federation.verify.WorkloadVerifier`` verifies it under that domain (issuer,
audience, signature, lifetime, the preset's shape) and any one of the agent's rules
must match the identity. The token's ``jti`` is single use (``storage.replay``, in the
namespace ``workload`` of its domain), or, for a token without one, the token itself
is (its SHA-256): a captured platform token never exchanges twice.

A domain whose keys cannot be had in time answers 503 ``temporarily_unavailable``
(``TemporarilyUnavailable``): nothing is decided or written, and only agents of that
domain are affected.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authority.context import Services
from authority.errors import TemporarilyUnavailable
from authority.federation.errors import IssuerUnavailable, WorkloadRejected
from authority.federation.model import IdentityRule, Preset, TrustDomain, WorkloadIdentity
from authority.federation.presets import spiffe_trust_domain
from authority.federation.verify import WorkloadVerifier
from authority.management.agent_workload import requires_both, rules_of
from authority.management.trust_domains import domain_of
from authority.policy.reasons import Reason
from authority.storage import replay
from authority.storage.replay import SingleUse
from authority.tokens.inbound import UnverifiedJWT

log = logging.getLogger("authority.exchange")

UNAVAILABLE = "The workload identity issuer is unavailable; try again later."


@dataclass(frozen=True, slots=True)
class Workload:
    """The agent's stored identity rules, read with the agent (``loading.Loaded``)."""

    rules: tuple[IdentityRule, ...]
    require_key_and_workload: bool


@dataclass(frozen=True, slots=True)
class Proven:
    """A platform token verified and matched: the identity, the rules it matched, and
    the single use the request spends."""

    identity: WorkloadIdentity
    matched: tuple[IdentityRule, ...]
    use: SingleUse


def workload_of(text: str | None) -> Workload | None:
    """The stored column's rules; None for an agent that proves itself by key only."""
    if text is None:
        return None
    document: Mapping[str, Any] = json.loads(text)
    rules = rules_of(document)
    if not rules:
        return None
    return Workload(rules, requires_both(document))


def names_workload(unverified: UnverifiedJWT, client_id: str | None) -> bool:
    """Whether an actor_token is a platform token rather than the agent's attestation:
    an attestation's ``iss`` is the agent (RFC 7523 §3 item 1), named by ``client_id``."""
    return client_id is not None and unverified.claims.get("iss") != client_id


def verifier(services: Services) -> WorkloadVerifier:
    """The process's verifier (its key caches), made on first use."""
    if services.workload_verifier is None:
        services.workload_verifier = WorkloadVerifier.from_settings(
            services.settings, clock=services.clock
        )
    return services.workload_verifier


def _candidates(domains: Sequence[TrustDomain], unverified: UnverifiedJWT) -> list[TrustDomain]:
    """The active domains the token's unverified ``iss`` names."""
    iss = unverified.claims.get("iss")
    if iss is None:
        # JWT-SVID §3: iss is optional; a SPIFFE domain pinned to a trust domain ID.
        return [
            d
            for d in domains
            if d.preset is Preset.SPIFFE and spiffe_trust_domain(d.issuer) is not None
        ]
    return [d for d in domains if d.issuer == iss]


async def prove(
    services: Services,
    workload: Workload,
    token: str,
    unverified: UnverifiedJWT,
    now: int,
) -> Proven | Reason:
    """Verify ``token`` under the agent's domains and match its rules.

    Raises ``TemporarilyUnavailable`` when no domain verified it and one of them could
    not have its keys in time (never a token, never a decision).
    """
    wanted = {rule.domain_id for rule in workload.rules}
    rows = await services.trust_domain_store.many(wanted)
    domains = [domain_of(row) for row in rows if row.status == "active"]
    candidates = _candidates(domains, unverified)
    if not candidates:
        return Reason.WORKLOAD_INVALID
    unavailable: IssuerUnavailable | None = None
    refusal = Reason.WORKLOAD_INVALID
    for domain in candidates:
        try:
            identity = await verifier(services).verify(domain, token, now)
        except WorkloadRejected as exc:
            log.info("workload token rejected by %s: %s", domain.id, exc.reason)
            continue
        except IssuerUnavailable as exc:
            log.warning("trust domain %s unavailable: %s", exc.domain_id, exc.reason)
            unavailable = exc
            continue
        matched = tuple(rule for rule in workload.rules if rule.matches(identity))
        if matched:
            return Proven(identity, matched, workload_use(services, identity, token, now))
        refusal = Reason.WORKLOAD_NOT_MATCHED
    if unavailable is not None and refusal is Reason.WORKLOAD_INVALID:
        raise TemporarilyUnavailable(UNAVAILABLE)
    return refusal


async def second_proof(
    services: Services,
    stored: str | None,
    token: str | None,
    unverified: UnverifiedJWT | None,
    now: int,
) -> Proven | Reason:
    """For an agent that requires both, once its attestation verified: the platform
    token too. Its single use is spent here, in a write of its own (the exchange's write
    records two uses, the attestation's and the DPoP proof's)."""
    workload = workload_of(stored)
    if workload is None:  # a platform token for an agent that has no identity rules
        return Reason.WORKLOAD_NOT_MATCHED
    if token is None:
        return Reason.WORKLOAD_REQUIRED
    if unverified is None:
        return Reason.WORKLOAD_INVALID
    proven = await prove(services, workload, token, unverified, now)
    if isinstance(proven, Reason):
        return proven
    (spent,) = await services.exchange_store.spend_uses([proven.use])
    return proven if spent else Reason.WORKLOAD_REPLAYED


def workload_use(services: Services, identity: WorkloadIdentity, token: str, now: int) -> SingleUse:
    """The platform token's single use while it could pass: by jti, else by what its
    signature covers (header and claims). Never by the whole token: an ECDSA signature
    has a second valid form (s and n - s), so the same token can be written twice."""
    signed = token.rsplit(".", 1)[0]
    once = identity.token_id or hashlib.sha256(signed.encode()).hexdigest()
    return replay.single_use(
        "workload",
        identity.domain_id,
        once,
        expires_at=max(identity.expires_at, now) + services.settings.clock_skew,
    )


def record_of(proven: Proven) -> dict[str, Any]:
    """What the grant's ledger entry says of the workload (``GrantV3.workload``): the
    domain, issuer, subject, and the claims the matched rules named."""
    identity = proven.identity
    named = {name for rule in proven.matched for name in rule.claims}
    return {
        "domain_id": identity.domain_id,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "claims": {name: identity.claims[name] for name in sorted(named)},
    }


def actor_claims(identity: WorkloadIdentity) -> dict[str, Any]:
    """The workload inside the token's ``act`` (RFC 8693 §4.1: claims identifying the
    current actor): the platform's issuer and subject, the domain and its claims."""
    return {
        "iss": identity.issuer,
        "sub": identity.subject,
        "domain_id": identity.domain_id,
        "claims": dict(identity.claims),
    }


def policy_context(identity: WorkloadIdentity) -> dict[str, str]:
    """Cedar's ``context.workload``: the identity's claims, with its domain, issuer and
    subject (``domain_id``, ``issuer``, ``subject``: names no preset maps a claim to)."""
    return {
        **identity.claims,
        "domain_id": identity.domain_id,
        "issuer": identity.issuer,
        "subject": identity.subject,
    }
