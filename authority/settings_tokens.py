"""Settings of tokens and signing keys: lifetimes, skew, algorithms and key rotation.

A group of ``authority.settings.Settings``, which alone reads them; kept apart so that
the derived grace of a retired key sits next to the lifetimes it is computed from.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class TokenSettings(BaseModel):
    """The token and key fields of ``Settings`` (a base of it, never used alone)."""

    # --- tokens ---------------------------------------------------------------------
    # RS256 by default: RFC 9068 §2.1 makes it the one algorithm every authorization
    # server supports, so every validator accepts it (README, "Signing algorithms").
    signing_alg: Literal["RS256", "ES256", "EdDSA"] = Field(
        "RS256", description="Algorithm of new signing keys (existing keys keep theirs)."
    )
    signing_rsa_bits: Literal[2048, 3072, 4096] = Field(
        2048, description="Modulus size of new RS256 signing keys, bits."
    )
    access_token_lifetime: int = Field(5, ge=1, le=3600, description="Default seconds.")
    access_token_max_lifetime: int = Field(60, ge=1, le=3600, description="Server cap, seconds.")
    delegation_max_lifetime: int = Field(
        30 * 24 * 3600, ge=60, description="Longest delegation an owner can grant, seconds."
    )
    delegation_max_pattern_wildcards: int = Field(
        8,
        ge=0,
        le=64,
        description="Most wildcards one resource pattern of a delegation may hold (a run of "
        "stars counts once); a pattern with more is refused when the delegation is created.",
    )
    assertion_max_lifetime: int = Field(
        60,
        ge=1,
        le=600,
        description="Seconds after its iat that an attestation or client assertion is "
        "accepted (never after its exp).",
    )
    assertion_max_keys_without_kid: int = Field(
        5,
        ge=1,
        le=10,
        description="Registered keys tried for an attestation or client assertion without "
        "kid (those whose type fits its alg); a client with more must send kid.",
    )
    clock_skew: int = Field(5, ge=0, le=120, description="Seconds of leeway for iat/nbf/exp.")
    dpop_proof_max_age: int = Field(
        60, ge=1, le=600, description="Oldest DPoP proof (by iat) accepted, seconds."
    )
    key_rotation_grace: int | None = Field(
        None,
        ge=0,
        description="Seconds a retired public key stays published; default: the longest "
        "lifetime anything it signed can have.",
    )
    key_activation_delay: int = Field(
        20,
        ge=0,
        le=86400,
        description="Seconds a new signing key is published before it signs; at least "
        "jwks_max_age + keyring_refresh_interval + clock_skew.",
    )
    keyring_refresh_interval: float = Field(
        2.0, gt=0, le=300, description="Seconds between re-reads of the signing keys from SQL."
    )
    jwks_max_age: int = Field(
        10, ge=0, le=3600, description="Cache-Control max-age of the JWKS, seconds."
    )

    # --- workload federation -------------------------------------------------------
    federation_jwks_max_age: int = Field(
        300,
        ge=1,
        le=86400,
        description="Longest a trust domain's fetched keys are used before they are "
        "fetched again, seconds (an issuer's shorter Cache-Control max-age is honoured); "
        "past it, keys that cannot be fetched refuse the domain's tokens.",
    )
    federation_refresh_min_interval: int = Field(
        10,
        ge=1,
        le=3600,
        description="Least seconds between two fetches of one trust domain's keys: a "
        "token with an unknown kid, or an issuer that failed, fetches at most this often.",
    )
    federation_fetch_timeout: float = Field(
        3.0,
        gt=0,
        le=30,
        description="Seconds a fetch of a trust domain's discovery document and keys "
        "may take, together.",
    )
    federation_max_token_lifetime: int = Field(
        86400,
        ge=60,
        le=366 * 86400,
        description="Longest validity (exp after iat, or after now without iat) a "
        "workload token may have, seconds; longer ones are refused. GitHub's and GitLab's "
        "last minutes, Kubernetes projected tokens an hour by default, but a cluster may "
        "extend them (up to a year): raise this only for such a cluster.",
    )
    federation_allow_insecure_loopback: bool = Field(
        False,
        description="Let trust domains' keys be fetched over plain http from loopback "
        "(development and tests only); never in production, where keys come from public "
        "https hosts only.",
    )

    @model_validator(mode="after")
    def _federation_refresh_within_max_age(self) -> Self:
        # Keys kept shorter than the least interval between fetches would leave the
        # domain without keys for the rest of each interval.
        if self.federation_jwks_max_age < self.federation_refresh_min_interval:
            raise ValueError(
                "federation_jwks_max_age must be at least federation_refresh_min_interval"
            )
        return self

    @property
    def retired_key_grace(self) -> int:
        if self.key_rotation_grace is not None:
            return self.key_rotation_grace
        return max(self.access_token_max_lifetime, self.delegation_max_lifetime) + self.clock_skew
