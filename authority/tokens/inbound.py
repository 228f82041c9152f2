"""Verifying JWTs that arrive from outside: agent attestations (RFC 7523), DPoP proofs
(RFC 9449) and the authority's own delegation credentials, under the JWT BCP (RFC 8725).

This is the only server module that turns an ``UnverifiedJWT`` into verified claims; the
compact JWS parsing and signature check it rests on are ``authority.sdk.jws``, which
resource servers run too. Keys are chosen by us, never by the token: a ``jwk``, ``jku``,
``x5u`` or ``x5c`` header is never used to find a key (RFC 8725 §3.10); the algorithm must
be on an explicit allowlist and agree with the key (RFC 8725 §3.1); each kind of JWT has
its own ``typ`` so that one can never be accepted as another (RFC 8725 §3.11).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from authority.protocol import ATTESTATION_TYPES
from authority.sdk.jws import (
    MAX_JWT_BYTES,
    MAX_NUMERIC_DATE,
    JWTRejected,
    PreparedKey,
    PublicKey,
    UnverifiedJWT,
    algorithms_for,
    audience_includes,
    peek,
    require_int,
    require_str,
    verify_signature,
)

__all__ = [
    "ATTESTATION_TYPES",
    "KID_REQUIRED",
    "MAX_JTI_LENGTH",
    "MAX_JWT_BYTES",
    "MAX_NUMERIC_DATE",
    "JWTRejected",
    "PublicKey",
    "UnverifiedJWT",
    "VerifiedAttestation",
    "algorithms_for",
    "audience_includes",
    "candidate_keys",
    "check_lifetime",
    "find_key",
    "key_set",
    "peek",
    "peek_credential",
    "require_int",
    "require_str",
    "verify_attestation",
    "verify_signature",
]

MAX_JTI_LENGTH = 256


#: Most credential parses ``peek_credential`` keeps before it starts over.
CREDENTIAL_PARSES = 1024
_credential_parses: dict[str, UnverifiedJWT] = {}


def peek_credential(token: str) -> UnverifiedJWT:
    """``peek`` of a credential presented again and again (the delegation each token
    exchange names), kept for these exact bytes: parsing is a function of them, and a
    kept parse is trusted no more than a fresh one (it is verified as every peek is).
    A malformed token is never kept."""
    parsed = _credential_parses.get(token)
    if parsed is None:
        parsed = peek(token)
        if len(_credential_parses) >= CREDENTIAL_PARSES:
            _credential_parses.clear()
        _credential_parses[token] = parsed
    return parsed


@functools.lru_cache(maxsize=4096)
def key_set(jwks_json: str) -> KeySet:
    """Parse a registered JWKS once. Keyed by its exact text, so a changed JWKS is a miss.

    An agent registered with identity rules only has no keys: an empty set, which no
    attestation verifies against.
    """
    document = json.loads(jwks_json)
    if not document.get("keys"):
        return KeySet([])
    return KeySet.import_key_set(document)


def find_key(jwks_json: str, kid: object) -> PublicKey:
    if not isinstance(kid, str) or not kid:
        raise JWTRejected("jwt_missing_kid")
    for key in key_set(jwks_json).keys:
        if key.kid == kid and isinstance(key, OKPKey | ECKey | RSAKey):
            return key
    raise JWTRejected("jwt_unknown_kid")


#: The reason when a JWT without kid could have been signed by too many registered keys.
KID_REQUIRED = "jwt_kid_required"


def candidate_keys(
    jwks_json: str, header: Mapping[str, Any], *, max_without_kid: int
) -> list[PublicKey]:
    """The registered keys that may have signed a JWT with this header.

    With a ``kid``, exactly the key it names. RFC 7515 §4.1.4 makes ``kid`` OPTIONAL, and
    clients such as authlib's ``PrivateKeyJWT`` send none: then every registered key whose
    own algorithms include the header's ``alg`` (RFC 8725 §3.1: "The library MUST ensure
    that the "alg" or "enc" header specifies the same algorithm that is used for the
    cryptographic operation", so never HS* with a public key, nor ES256 with an RSA key),
    at most ``max_without_kid`` of them, so that a JWT cannot make us try a long list.
    """
    kid = header.get("kid")
    if kid is not None:
        return [find_key(jwks_json, kid)]
    alg = header["alg"]
    matching = [
        key
        for key in key_set(jwks_json).keys
        if isinstance(key, OKPKey | ECKey | RSAKey) and alg in algorithms_for(key)
    ]
    if not matching:
        raise JWTRejected("jwt_alg_not_allowed")
    if len(matching) > max_without_kid:
        raise JWTRejected(KID_REQUIRED)
    return matching


# --- time and identity claims --------------------------------------------------------------
def check_lifetime(
    claims: Mapping[str, Any], *, now: int, skew: int, max_lifetime: int
) -> tuple[int, int]:
    """exp, iat and nbf of a short-lived assertion (RFC 7523 §3, items 4-6).

    Returns the end of the assertion's usable window and its iat. The window ends at
    ``exp`` ("The authorization server MUST reject any JWT with an expiration time that has
    passed", item 4) or ``max_lifetime`` after ``iat``, whichever comes first: clients such
    as authlib's ``PrivateKeyJWT`` put exp an hour out, and such an assertion is accepted
    only while it is fresh, so its jti is remembered (item 7) only that long.
    """
    exp = require_int(claims, "exp")
    iat = require_int(claims, "iat")
    if exp < iat:
        raise JWTRejected("jwt_lifetime_too_long")
    usable_until = min(exp, iat + max_lifetime)
    if usable_until <= now - skew:
        raise JWTRejected("jwt_expired")
    if iat > now + skew:
        raise JWTRejected("jwt_issued_in_future")
    if "nbf" in claims and require_int(claims, "nbf") > now + skew:
        raise JWTRejected("jwt_not_yet_valid")
    return usable_until, iat


# --- agent attestations (RFC 7523 §3) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedAttestation:
    """An agent's proof of possession, verified: its key signed these claims just now."""

    agent_id: str
    jti: str
    exp: int
    jkt: str  # RFC 7638 thumbprint of the key that signed it


@dataclass(frozen=True, slots=True)
class _KeptKey:
    """A registered key prepared for its algorithms, with its RFC 7638 thumbprint."""

    prepared: PreparedKey
    thumbprint: str


@functools.lru_cache(maxsize=4096)
def _kept(jwks_json: str, kid: str) -> _KeptKey:
    """The registered key ``kid`` of a JWKS, prepared and thumbprinted once: both depend
    on the key alone, and a changed JWKS is another text, so a miss."""
    key = find_key(jwks_json, kid)
    return _KeptKey(PreparedKey(key, algorithms_for(key)), key.thumbprint())


def _kept_for(jwks_json: str, key: PublicKey) -> _KeptKey:
    """``key`` (one of ``key_set(jwks_json)``) prepared and thumbprinted: the kept entry
    when it was made of this very key object, else afresh (a key without kid, or one of
    two sharing a kid: never another key's entry)."""
    if key.kid:
        kept = _kept(jwks_json, key.kid)
        if kept.prepared.key is key:
            return kept
    return _KeptKey(PreparedKey(key, algorithms_for(key)), key.thumbprint())


def _verify_with_any(
    unverified: UnverifiedJWT, keys: Collection[PublicKey], jwks_json: str
) -> tuple[_KeptKey, dict[str, Any]]:
    """The first of ``keys`` (of ``key_set(jwks_json)``) whose signature verifies, with the
    verified claims: ``verify_signature`` under each key's algorithms."""
    failure = JWTRejected("jwt_bad_signature")
    for key in keys:
        kept = _kept_for(jwks_json, key)
        try:
            return kept, kept.prepared.verify(unverified)
        except JWTRejected as exc:
            failure = exc
    raise failure


def verify_attestation(
    unverified: UnverifiedJWT,
    *,
    agent_id: str,
    jwks_json: str,
    audiences: Collection[str],
    now: int,
    skew: int,
    max_lifetime: int,
    max_keys_without_kid: int,
) -> VerifiedAttestation:
    """RFC 7523 §3: iss = sub = the agent, aud = this authority, short exp, unique jti.

    The key is the registered key named by ``kid`` or, without a ``kid``, the one of at
    most ``max_keys_without_kid`` keys for the header's ``alg`` whose signature verifies
    (``candidate_keys``); replay of ``jti`` is checked by the caller against shared hot
    state, after every other check passed.
    """
    typ = unverified.header.get("typ")
    if not (typ is None or isinstance(typ, str)) or typ not in ATTESTATION_TYPES:
        raise JWTRejected("jwt_wrong_typ")
    keys = candidate_keys(jwks_json, unverified.header, max_without_kid=max_keys_without_kid)
    kept, claims = _verify_with_any(unverified, keys, jwks_json)
    # "The JWT MUST contain an iss (issuer) claim" and "a sub (subject) claim"; for client
    # authentication both are the client_id (RFC 7523 §3, items 1-2).
    if claims.get("iss") != agent_id or claims.get("sub") != agent_id:
        raise JWTRejected("jwt_bad_iss_sub")
    # "The JWT MUST contain an aud (audience) claim containing a value that identifies the
    # authorization server as an intended audience" (item 3).
    if not audience_includes(claims, audiences):
        raise JWTRejected("jwt_bad_aud")
    exp, _ = check_lifetime(claims, now=now, skew=skew, max_lifetime=max_lifetime)
    jti = require_str(claims, "jti", max_length=MAX_JTI_LENGTH)
    # The thumbprint of the key that verified (the delegation's binding compares it).
    return VerifiedAttestation(agent_id=agent_id, jti=jti, exp=exp, jkt=kept.thumbprint)
