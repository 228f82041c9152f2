"""The values the federation package trades in: domains, identities, rules.

Verification (``authority.federation.verify``) turns a platform token into a
``WorkloadIdentity`` under one ``TrustDomain``; ``IdentityRule.matches`` decides whether
that identity is the one an agent was registered with. Storage and the exchange see
only these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from authority.federation.patterns import matches


class Preset(StrEnum):
    """The shapes of workload token the authority knows, each with its claim mapping."""

    SPIFFE = "spiffe"  # JWT-SVID: sub is the SPIFFE ID
    KUBERNETES = "kubernetes"  # projected service-account token: kubernetes.io claims
    GITHUB = "github"  # GitHub Actions OIDC: repository, ref, workflow_ref, environment
    GITLAB = "gitlab"  # GitLab CI OIDC: project_path, ref, ref_type, environment
    OIDC = "oidc"  # any OIDC issuer (Entra, Okta workload identities): mapped claims


class KeySource(StrEnum):
    """Where a domain's verification keys come from."""

    DISCOVERY = "discovery"  # OIDC discovery document, then its jwks_uri
    JWKS_URI = "jwks_uri"  # a JWKS fetched from a URL
    STATIC_JWKS = "static_jwks"  # a JWKS held in the domain itself
    SPIFFE_BUNDLE = "spiffe_bundle"  # a SPIFFE trust bundle (JWKS with use=jwt-svid)


@dataclass(frozen=True, slots=True)
class TrustDomain:
    """An issuer of workload tokens the authority trusts, pinned to issuer and audience."""

    id: str
    name: str
    preset: Preset
    issuer: str  # the exact `iss` its tokens carry
    audience: str  # the exact `aud` its tokens must carry for this authority
    key_source: KeySource
    key_location: str | None  # discovery or JWKS URL; None for static keys
    static_jwks: Mapping[str, object] | None  # for STATIC_JWKS and SPIFFE_BUNDLE
    # Extra claims (beyond the preset's) copied into the identity: claim name -> name
    # it is known by in rules, policy and the token.
    claim_mapping: Mapping[str, str] = field(default_factory=dict)
    status: str = "active"  # "active" or "disabled"
    version: int = 1


@dataclass(frozen=True, slots=True)
class WorkloadIdentity:
    """A platform token verified under one domain: who the workload is."""

    domain_id: str
    issuer: str
    subject: str
    # The claims the preset and the domain's mapping keep, by their mapped names, each
    # a string (lists joined are never kept: a rule compares strings).
    claims: Mapping[str, str]
    token_id: str | None  # the platform token's jti, if any (single use where present)
    expires_at: int


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """What an agent's workload must be: a domain and claims, exactly or by pattern.

    Every entry of ``claims`` must hold: a value is matched exactly unless it contains
    ``*``, which matches any run of characters within one segment (not ``/`` or ``:``),
    or ends in ``/**``, which matches any non-empty rest (``authority.federation.patterns``).
    ``subject`` is matched the same way. A claim the identity does not carry never
    matches, whatever the pattern. Rules from outside are made by
    ``authority.federation.rules.parse_rule``, which checks every pattern.
    """

    domain_id: str
    subject: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)

    def matches(self, identity: WorkloadIdentity) -> bool:
        """Whether ``identity`` is the workload this rule describes."""
        if identity.domain_id != self.domain_id:
            return False
        if self.subject is not None and not matches(self.subject, identity.subject):
            return False
        for name, pattern in self.claims.items():
            value = identity.claims.get(name)
            if value is None or not matches(pattern, value):
                return False
        return True
