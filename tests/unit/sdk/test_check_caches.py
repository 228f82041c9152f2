"""What the resource server's check keeps between requests, and what it never reuses.

DPoP proof keys are imported and thumbprinted once per exact header (a bounded cache);
published keys are prepared once per kid; proof jtis are remembered for the freshness
window. None of it may let a proof or token through that a fresh check would refuse: a
different key is never the cached one, a tampered proof fails its signature, a refused
key is never kept, a replayed jti is refused however many others came in between.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st
from joserfc.util import urlsafe_b64decode
from jwt.algorithms import OKPAlgorithm

from authority.sdk import dpop, jws
from authority.sdk.dpop import PROOF_KEY_CACHE_SIZE, verify_proof
from authority.sdk.jws import (
    MAX_HEADERS_PER_KEY,
    JWTRejected,
    PreparedKey,
    UnverifiedJWT,
    _b64decode,
    peek,
)
from authority.sdk.verifier import JWKSCache, TokenInvalid, TokenVerifier

NOW = 1_800_000_000
URL = "https://tools.example.test/issues"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def public_jwk(private: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3, recomputed here."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def proof(
    signer: ed25519.Ed25519PrivateKey,
    jti: str = "proof-1",
    *,
    jwk: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk or public_jwk(signer)}
    body = {"jti": jti, "htm": "POST", "htu": URL, "iat": NOW, **claims}
    signing_input = f"{segment(header)}.{segment(body)}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


def check(token: str) -> dpop.VerifiedProof:
    return verify_proof(token, method="POST", url=URL, now=NOW, skew=5, max_age=60)


def refused(token: str) -> str:
    with pytest.raises(JWTRejected) as caught:
        check(token)
    return caught.value.reason


# --- DPoP proof keys -------------------------------------------------------------------------


def test_the_proof_key_cache_is_bounded() -> None:
    info = dpop._prepared_proof_key.cache_info()
    assert info.maxsize == PROOF_KEY_CACHE_SIZE
    for i in range(PROOF_KEY_CACHE_SIZE + 20):
        check(proof(ed25519.Ed25519PrivateKey.generate(), f"p{i}"))
    assert dpop._prepared_proof_key.cache_info().currsize == PROOF_KEY_CACHE_SIZE


def test_a_different_key_is_never_the_cached_one() -> None:
    first, second = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    assert check(proof(first)).jkt == thumbprint(public_jwk(first))
    assert check(proof(first, "p2")).jkt == thumbprint(public_jwk(first))  # from the cache
    assert check(proof(second, "p3")).jkt == thumbprint(public_jwk(second))


def test_the_same_key_written_differently_binds_the_same_thumbprint() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    jwk = public_jwk(signer)
    reordered = dict(reversed(list(jwk.items())))
    assert check(proof(signer)).jkt == check(proof(signer, "p2", jwk=reordered)).jkt


def test_a_tampered_proof_fails_its_signature_though_its_key_is_cached() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    good = proof(signer)
    check(good)  # the key is now cached
    head, _, signature = good.split(".")
    other_claims = segment({"jti": "p9", "htm": "POST", "htu": URL, "iat": NOW})
    assert refused(f"{head}.{other_claims}.{signature}") == "jwt_bad_signature"
    # Another signer presenting the cached key's exact header: the same cache entry,
    # and still its signature is checked against that key.
    impostor = ed25519.Ed25519PrivateKey.generate()
    assert refused(proof(impostor, "p10", jwk=public_jwk(signer))) == "jwt_bad_signature"


def test_a_refused_key_is_refused_every_time_and_never_kept() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    private = json.loads(OKPAlgorithm.to_jwk(signer))  # with its "d"
    dpop._prepared_proof_key.cache_clear()
    for jti in ("p1", "p2"):
        assert refused(proof(signer, jti, jwk=private)) == "dpop_private_jwk"
    broken = {**public_jwk(signer), "x": "not-a-key"}
    for jti in ("p3", "p4"):
        assert refused(proof(signer, jti, jwk=broken)) == "dpop_bad_jwk"
    assert dpop._prepared_proof_key.cache_info().currsize == 0
    check(proof(signer, "p5"))  # the same signer with its public key: kept
    assert dpop._prepared_proof_key.cache_info().currsize == 1


# --- prepared keys and peek's parse ----------------------------------------------------------


def test_a_prepared_key_returns_the_claims_of_the_token_it_verified() -> None:
    """A hand-made ``UnverifiedJWT`` with other claims is parsed again from its own raw
    token: the claims returned are always the ones the signature covers."""
    signer = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode({"iss": "real"}, signer, algorithm="EdDSA")
    key = dpop._proof_key({"jwk": public_jwk(signer)})
    prepared = PreparedKey(key, {"EdDSA"})
    parsed = peek(token)
    assert prepared.verify(parsed) == {"iss": "real"}
    forged = UnverifiedJWT(token, parsed.header, {"iss": "forged"})
    assert prepared.verify(forged) == {"iss": "real"}


def test_a_prepared_key_verifies_only_its_algorithms() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode({"iss": "a"}, signer, algorithm="EdDSA")
    key = dpop._proof_key({"jwk": public_jwk(signer)})
    with pytest.raises(JWTRejected, match="jwt_alg_not_allowed"):
        PreparedKey(key, {"ES256"}).verify(peek(token))
    with pytest.raises(JWTRejected, match="jwt_alg_not_allowed"):
        PreparedKey(key, set()).verify(peek(token))
    # An algorithm the key cannot be used with never verifies, even when allowed.
    signing_input = f"{segment({'alg': 'RS256'})}.{segment({'iss': 'a'})}"
    other_alg = f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"
    with pytest.raises(JWTRejected, match="jwt_bad_signature"):
        PreparedKey(key, {"EdDSA", "RS256"}).verify(peek(other_alg))
    assert PreparedKey(key, {"EdDSA", "RS256"}).verify(peek(token)) == {"iss": "a"}


def signed(signer: ed25519.Ed25519PrivateKey, header: dict[str, Any]) -> str:
    signing_input = f"{segment(header)}.{segment({'iss': 'a'})}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


def test_a_prepared_key_remembers_a_bounded_number_of_checked_headers() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    prepared = PreparedKey(dpop._proof_key({"jwk": public_jwk(signer)}), {"EdDSA"})
    for i in range(MAX_HEADERS_PER_KEY * 3):
        assert prepared.verify(peek(signed(signer, {"alg": "EdDSA", "kid": f"k{i}"})))
        assert len(prepared._headers) <= MAX_HEADERS_PER_KEY


def test_a_header_the_registry_refuses_is_refused_every_time_and_never_kept() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    prepared = PreparedKey(dpop._proof_key({"jwk": public_jwk(signer)}), {"EdDSA"})
    token = signed(signer, {"alg": "EdDSA", "x5u": 12})  # RFC 7515 §4.1.5: a URI
    for _ in range(2):
        with pytest.raises(JWTRejected, match="jwt_bad_signature"):
            prepared.verify(peek(token))
    assert prepared._headers == set()


@given(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~ ", max_size=12)
)
def test_segments_decode_exactly_as_the_jose_librarys_strict_base64url(text: str) -> None:
    data = text.encode()
    try:
        expected: bytes | None = urlsafe_b64decode(data)
    except (binascii.Error, ValueError):
        expected = None
    try:
        got: bytes | None = _b64decode(data)
    except (binascii.Error, ValueError):
        got = None
    assert got == expected


def test_parsed_headers_are_kept_bounded_and_read_only() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    for i in range((jws._header.cache_info().maxsize or 0) + 10):
        peek(signed(signer, {"alg": "EdDSA", "kid": f"k{i}"}))
    info = jws._header.cache_info()
    assert info.currsize == info.maxsize
    header = peek(signed(signer, {"alg": "EdDSA", "kid": "k0"})).header
    with pytest.raises(TypeError):
        header["alg"] = "none"  # type: ignore[index]


def test_a_refused_header_is_refused_every_time_and_never_kept() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    jws._header.cache_clear()
    for header, reason in (
        ({"alg": 1}, "jwt_malformed"),
        ({"alg": "EdDSA", "typ": []}, "jwt_malformed"),
        ({"alg": "EdDSA", "crit": ["exp"]}, "jwt_unsupported_crit"),
    ):
        for _ in range(2):
            with pytest.raises(JWTRejected, match=reason):
                peek(signed(signer, header))
    # A crit header parses (and is kept), but every token naming it is refused.
    assert jws._header.cache_info().currsize == 1


def test_a_large_header_is_parsed_every_time_not_kept() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    jws._header.cache_clear()
    big = {"alg": "EdDSA", "kid": "k" * jws.MAX_KEPT_HEADER}
    assert peek(signed(signer, big)).header["kid"] == big["kid"]
    assert jws._header.cache_info().currsize == 0


def test_peek_keeps_the_segments_of_the_token_it_parsed() -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode({"iss": "a"}, signer, algorithm="EdDSA")
    assert b".".join(peek(token).segments) == token.encode()


# --- the replay cache ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock) -> TokenVerifier:
    jwks = JWKSCache("https://issuer.example.test", None)  # type: ignore[arg-type]
    return TokenVerifier("https://issuer.example.test", "aud", jwks, leeway=5, clock=clock)


def test_a_replayed_jti_is_refused_however_many_proofs_came_between() -> None:
    clock = Clock()
    checker = verifier(clock)
    checker._remember_proof("first", NOW)
    for i in range(5000):
        checker._remember_proof(f"other-{i}", NOW + i * 60 // 5000)
    with pytest.raises(TokenInvalid, match="replayed"):
        checker._remember_proof("first", NOW + 60)


def test_a_jti_is_forgotten_only_once_no_proof_carrying_it_can_be_fresh() -> None:
    checker = verifier(Clock())
    checker._remember_proof("first", NOW)
    # Still within max_age + leeway (60 + 5): refused.
    with pytest.raises(TokenInvalid, match="replayed"):
        checker._remember_proof("first", NOW + 65)
    # Past it, the entry is dropped (a proof with that jti would be refused as stale).
    checker._remember_proof("later", NOW + 66)
    assert "first" not in checker._seen_proofs
    assert len(checker._seen_proofs) == 1


def test_a_clock_set_back_never_forgets_a_jti_early() -> None:
    checker = verifier(Clock())
    checker._remember_proof("early", NOW + 100)
    checker._remember_proof("after-the-jump", NOW)  # the clock went back 100 s
    checker._remember_proof("next", NOW + 70)
    with pytest.raises(TokenInvalid, match="replayed"):
        checker._remember_proof("early", NOW + 70)
    with pytest.raises(TokenInvalid, match="replayed"):
        checker._remember_proof("after-the-jump", NOW + 60)
