"""Verifying a workload token under one trust domain: the only producer of a
``WorkloadIdentity``.

A token is checked against the one domain the caller names, never against "whichever
domain it claims": the issuer and the audience are the domain's, pinned, so a token of
one domain can never satisfy another (RFC 8725 §3.8, §3.9). In order, and nothing is
fetched for a token refused by the cheap checks:

1. at most ``MAX_TOKEN_BYTES``, three strict base64url segments, JSON objects, no
   ``crit`` (``authority.sdk.jws.peek``);
2. ``alg`` on the asymmetric allowlist (``WORKLOAD_ALGORITHMS``: RS*, PS*, ES256,
   ES384, EdDSA; never ``none``, never HS*: RFC 8725 §3.1-3.2), ``typ`` absent or a
   JWT's (never a DPoP proof's or another kind's, RFC 8725 §3.11);
3. the unverified ``iss`` is the domain's (so a stranger's token fetches nothing);
4. the key named by ``kid`` in the domain's keys (``authority.federation.keys``), which
   a key is never taken from the token itself (``jwk``, ``jku``, ``x5u``, ``x5c``
   ignored: RFC 8725 §3.10), and the signature under an algorithm of that key;
5. on the verified claims: ``iss`` equal to the domain's issuer exactly, ``aud`` holding
   the domain's audience, ``exp`` required and not passed, ``nbf`` and ``iat`` (when
   present) not in the future, each with ``skew`` seconds of leeway (RFC 7519 §4.1),
   and ``exp`` at most ``max_lifetime`` after ``iat`` (or after now, without ``iat``):
   a token valid for a year is a long-lived secret, whatever its issuer thinks;
6. the preset's shape (``authority.federation.presets``).

SPIFFE JWT-SVIDs need not carry ``iss`` (JWT-SVID §3: only ``sub``, ``aud`` and ``exp``
are required, and SPIRE writes ``iss`` only when configured to): a SPIFFE domain whose
issuer is a trust domain ID (``spiffe://example.org``) accepts tokens without ``iss``,
and pins the trust domain of the token's SPIFFE ID instead; a token that has one must
still carry the domain's issuer exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from authority.clock import Clock, SystemClock
from authority.federation.errors import IssuerUnavailable, WorkloadRejected
from authority.federation.keys import WORKLOAD_ALGORITHMS, IssuerKey, IssuerKeys, KeyLimits
from authority.federation.model import Preset, TrustDomain, WorkloadIdentity
from authority.federation.presets import shape, spiffe_trust_domain
from authority.sdk.jws import (
    MAX_NUMERIC_DATE,
    JWTRejected,
    UnverifiedJWT,
    audience_includes,
    peek,
    verify_signature,
)
from authority.settings_tokens import TokenSettings

__all__ = [
    "MAX_TOKEN_BYTES",
    "WORKLOAD_ALGORITHMS",
    "IssuerUnavailable",
    "KeyLimits",
    "WorkloadRejected",
    "WorkloadVerifier",
]

#: The longest workload token read (``authority.sdk.jws.MAX_JWT_BYTES``): GitHub's and
#: GitLab's are under 2 KiB, a Kubernetes token with pod and node under 1.5 KiB.
MAX_TOKEN_BYTES = 8192
MAX_JTI_LENGTH = 256
#: The longest validity a workload token may have, by default (a day): GitHub's and
#: GitLab's tokens last minutes, Kubernetes projected tokens an hour by default (the
#: pod asks for up to its cluster's max, which some clusters extend to a year).
MAX_LIFETIME = 24 * 3600
#: ``typ`` values a workload token may carry (RFC 7519 §5.1; JWT-SVID §2.2 allows JWT
#: and JOSE), compared without case and without an ``application/`` prefix.
_TYPES = frozenset({"jwt", "jose"})


def _reason(exc: JWTRejected) -> str:
    return "workload_" + exc.reason.removeprefix("jwt_")


def _numeric(value: object, name: str) -> int:
    """A NumericDate (RFC 7519 §2): a finite JSON number, possibly non-integer."""
    # bool is an int subclass; true is not a time. NaN fails the comparison below.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadRejected(f"workload_bad_{name}")
    if not -MAX_NUMERIC_DATE < value < MAX_NUMERIC_DATE:
        raise WorkloadRejected(f"workload_bad_{name}")
    return int(value)


def _optional_time(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    return None if value is None else _numeric(value, name)


def _issuer_allows(domain: TrustDomain, claims: Mapping[str, Any]) -> bool:
    iss = claims.get("iss")
    if iss is None and domain.preset is Preset.SPIFFE:
        return spiffe_trust_domain(domain.issuer) is not None
    return isinstance(iss, str) and iss == domain.issuer


class WorkloadVerifier:
    """Verifies workload tokens, holding every trust domain's key cache.

    One per process (the key caches are its state); ``aclose`` at shutdown.
    """

    def __init__(
        self,
        *,
        skew: int = 5,
        max_lifetime: int = MAX_LIFETIME,
        limits: KeyLimits | None = None,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.skew = skew
        self.max_lifetime = max_lifetime
        self.keys = IssuerKeys(limits or KeyLimits(), clock or SystemClock(), http)

    @classmethod
    def from_settings(
        cls,
        settings: TokenSettings,
        *,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> WorkloadVerifier:
        limits = KeyLimits(
            max_age=settings.federation_jwks_max_age,
            refresh_min_interval=settings.federation_refresh_min_interval,
            fetch_timeout=settings.federation_fetch_timeout,
            allow_insecure_loopback=settings.federation_allow_insecure_loopback,
        )
        return cls(
            skew=settings.clock_skew,
            max_lifetime=settings.federation_max_token_lifetime,
            limits=limits,
            clock=clock,
            http=http,
        )

    async def aclose(self) -> None:
        await self.keys.aclose()

    def forget(self, domain_id: str) -> None:
        """Drop a domain's cached keys: call when the domain is changed or removed."""
        self.keys.forget(domain_id)

    async def verify(self, domain: TrustDomain, token: str, now: int) -> WorkloadIdentity:
        """The workload ``token`` proves to be under ``domain`` at ``now`` (Unix seconds).

        ``WorkloadRejected`` when it is not a valid token of this domain;
        ``IssuerUnavailable`` when the domain's keys cannot be had in time.
        """
        if domain.status != "active":
            raise WorkloadRejected("workload_domain_disabled")
        if len(token) > MAX_TOKEN_BYTES:
            raise WorkloadRejected("workload_too_large")
        try:
            unverified = peek(token)
        except JWTRejected as exc:
            raise WorkloadRejected(_reason(exc)) from None
        self._check_header(unverified)
        if not _issuer_allows(domain, unverified.claims):
            raise WorkloadRejected("workload_wrong_issuer")
        kid = unverified.header.get("kid")
        alg = unverified.header["alg"]
        candidates = await self.keys.keys_for(domain, kid, alg)
        claims = self._verified_claims(unverified, candidates)
        return self._identity(domain, claims, now)

    @staticmethod
    def _check_header(unverified: UnverifiedJWT) -> None:
        if unverified.header["alg"] not in WORKLOAD_ALGORITHMS:
            raise WorkloadRejected("workload_alg_not_allowed")
        typ = unverified.header.get("typ")
        if typ is not None and typ.lower().removeprefix("application/") not in _TYPES:
            raise WorkloadRejected("workload_wrong_typ")

    @staticmethod
    def _verified_claims(
        unverified: UnverifiedJWT, candidates: tuple[IssuerKey, ...]
    ) -> dict[str, Any]:
        failure = WorkloadRejected("workload_bad_signature")
        for candidate in candidates:
            if unverified.header["alg"] not in candidate.algorithms:
                failure = WorkloadRejected("workload_alg_not_allowed")
                continue
            try:
                return verify_signature(unverified, candidate.key, candidate.algorithms)
            except JWTRejected as exc:
                failure = WorkloadRejected(_reason(exc))
        raise failure

    def _identity(
        self, domain: TrustDomain, claims: Mapping[str, Any], now: int
    ) -> WorkloadIdentity:
        # Re-checked on the verified claims: the unverified look was only to save a fetch.
        if not _issuer_allows(domain, claims):
            raise WorkloadRejected("workload_wrong_issuer")
        # RFC 7519 §4.1.3: "If the principal processing the claim does not identify
        # itself with a value in the "aud" claim when this claim is present, then the
        # JWT MUST be rejected." Here it must be present too.
        if not audience_includes(claims, (domain.audience,)):
            raise WorkloadRejected("workload_wrong_audience")
        exp = _numeric(claims.get("exp"), "exp")
        # RFC 7519 §4.1.4: not accepted "on or after" exp, §4.1.5: not "before" nbf.
        if exp + self.skew <= now:
            raise WorkloadRejected("workload_expired")
        nbf = _optional_time(claims, "nbf")
        if nbf is not None and nbf > now + self.skew:
            raise WorkloadRejected("workload_not_yet_valid")
        iat = _optional_time(claims, "iat")
        if iat is not None and iat > now + self.skew:
            raise WorkloadRejected("workload_issued_in_future")
        issued = now if iat is None else min(iat, now)
        if exp - issued > self.max_lifetime + self.skew:
            raise WorkloadRejected("workload_lifetime_too_long")
        jti = claims.get("jti")
        if jti is not None and (
            not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH or not jti.isprintable()
        ):
            # Kept as the identity's token_id, shown and logged like the other strings.
            raise WorkloadRejected("workload_bad_jti")
        subject, kept = shape(domain, claims)
        return WorkloadIdentity(
            domain_id=domain.id,
            issuer=domain.issuer,
            subject=subject,
            claims=kept,
            token_id=jti,
            expires_at=exp,
        )
