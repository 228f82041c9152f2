"""Attestation keys are kept prepared per JWKS text and kid (``tokens.inbound``): a kept
key verifies only what the registered key of that very JWKS signed, never a key that
was registered before under the same kid, nor another key of the set sharing its kid."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from authority.tokens.inbound import JWTRejected, peek, verify_attestation

AGENT = "agt_1"
AUDIENCE = "http://127.0.0.1:8400"
NOW = 1_800_000_000
FIRST, SECOND = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(*keys: tuple[ed25519.Ed25519PrivateKey, str]) -> str:
    return json.dumps(
        {
            "keys": [
                {**json.loads(OKPAlgorithm.to_jwk(private.public_key())), "kid": kid}
                for private, kid in keys
            ]
        }
    )


def attestation(signer: ed25519.Ed25519PrivateKey, header: dict[str, Any]) -> str:
    body = {"iss": AGENT, "sub": AGENT, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 30, "jti": "j"}
    head = b64(json.dumps({"alg": "EdDSA", **header}).encode())
    signing_input = f"{head}.{b64(json.dumps(body).encode())}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


def verify(token: str, registered: str) -> str:
    """The thumbprint of the key the attestation verified under."""
    return verify_attestation(
        peek(token),
        agent_id=AGENT,
        jwks_json=registered,
        audiences={AUDIENCE},
        now=NOW,
        skew=5,
        max_lifetime=60,
        max_keys_without_kid=3,
    ).jkt


def test_a_key_replaced_under_its_kid_verifies_only_its_own_attestations() -> None:
    before, after = jwks((FIRST, "k")), jwks((SECOND, "k"))
    by_first, by_second = attestation(FIRST, {"kid": "k"}), attestation(SECOND, {"kid": "k"})
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
        verify(attestation(FIRST, {}), shared)
        verify(attestation(SECOND, {}), shared)


def test_the_thumbprint_is_of_the_key_that_verified_not_another_sharing_its_kid() -> None:
    """The delegation binding compares this thumbprint: the holder of one key must never
    pass as the holder of another (registration refuses shared kids; stored rows may not)."""
    shared = jwks((FIRST, "same"), (SECOND, "same"))
    first, second = (json.loads(shared)["keys"][i] for i in (0, 1))
    for _ in range(2):
        assert verify(attestation(FIRST, {}), shared) == thumbprint_of(first)
        assert verify(attestation(SECOND, {}), shared) == thumbprint_of(second)


def thumbprint_of(public: dict[str, str]) -> str:
    """RFC 7638 §3.2 for an OKP key: crv, kty, x in order, no whitespace, SHA-256."""
    members = json.dumps({k: public[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    return b64(hashlib.sha256(members.encode()).digest())
