"""Attestation keys are kept prepared per JWKS text and kid (``tokens.inbound``): a kept
key verifies only what the registered key of that very JWKS signed, never a key that
was registered before under the same kid, nor another key of the set sharing its kid."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from authority.tokens.inbound import JWTRejected
from tests.unit.tokens.test_inbound import attestation, b64, verify

FIRST, SECOND = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()


def jwks(*keys: tuple[ed25519.Ed25519PrivateKey, str]) -> str:
    return json.dumps(
        {
            "keys": [
                {**json.loads(OKPAlgorithm.to_jwk(private.public_key())), "kid": kid}
                for private, kid in keys
            ]
        }
    )


def test_a_key_replaced_under_its_kid_verifies_only_its_own_attestations() -> None:
    before, after = jwks((FIRST, "k")), jwks((SECOND, "k"))
    by_first, by_second = attestation({"kid": "k"}, FIRST), attestation({"kid": "k"}, SECOND)
    for _ in range(2):  # the second round is served by the kept keys
        verify(by_first, before)
        verify(by_second, after)
        with pytest.raises(JWTRejected, match="jwt_bad_signature"):
            verify(by_first, after)
        with pytest.raises(JWTRejected, match="jwt_bad_signature"):
            verify(by_second, before)


def test_each_of_two_keys_sharing_a_kid_verifies_what_it_signed() -> None:
    shared = jwks((FIRST, "same"), (SECOND, "same"))
    for _ in range(2):
        # Without a kid every key of the alg is a candidate, each verifying as itself.
        verify(attestation({}, FIRST), shared)
        verify(attestation({}, SECOND), shared)


def test_the_thumbprint_is_of_the_key_that_verified_not_another_sharing_its_kid() -> None:
    """The delegation binding compares this thumbprint: the holder of one key must never
    pass as the holder of another (registration refuses shared kids; stored rows may not)."""
    shared = jwks((FIRST, "same"), (SECOND, "same"))
    first, second = (json.loads(shared)["keys"][i] for i in (0, 1))
    for _ in range(2):
        assert verify(attestation({}, FIRST), shared).jkt == thumbprint_of(first)
        assert verify(attestation({}, SECOND), shared).jkt == thumbprint_of(second)


def thumbprint_of(public: dict[str, str]) -> str:
    """RFC 7638 §3.2 for an OKP key: crv, kty, x in order, no whitespace, SHA-256."""
    members = json.dumps({k: public[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    return b64(hashlib.sha256(members.encode()).digest())
