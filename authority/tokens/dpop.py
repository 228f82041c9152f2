"""DPoP proofs (RFC 9449 §4.3) at the token endpoint.

The checks are the ones resource servers run (``authority.sdk.dpop``): one implementation,
so the authority and the middleware cannot disagree on what a valid proof is.
"""

from __future__ import annotations

from authority.sdk.dpop import (
    DPOP_TYP,
    MIN_RSA_BITS,
    VerifiedProof,
    access_token_hash,
    normalise_htu,
    verify_proof,
)

__all__ = [
    "DPOP_TYP",
    "MIN_RSA_BITS",
    "VerifiedProof",
    "access_token_hash",
    "normalise_htu",
    "verify_proof",
]
