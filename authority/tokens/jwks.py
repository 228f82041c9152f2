"""Validation of registered public JWK Sets (RFC 7517 §4-5, RFC 7518 §6, RFC 8037 §2).

Agents prove who they are with these keys, and resource servers authenticate with them
(``private_key_jwt``), so a JWKS is checked once, when it is registered, against the JWT
BCP (RFC 8725 §3): public signing keys only, strong enough, on a curve we verify with, and
each one named by a unique ``kid`` so a verifier never has to guess. Parsing is joserfc's;
this module only decides what is acceptable.

Every rejection is an ``InvalidRequest`` with a fixed description naming the problem: the
submitted key material is never echoed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, KeySet, OKPKey, RSAKey

from authority.errors import InvalidRequest
from authority.tokens.jose import PRIVATE_MEMBERS, algorithms_for_key

MAX_KEYS = 10
MAX_KID_LENGTH = 128
MAX_MEMBER_LENGTH = 2048  # base64url of an 8192-bit RSA modulus is 1366 characters
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192

#: The members a public signing JWK may carry. Anything else (x5c, x5u, jku, private
#: members, extensions) is refused rather than stored unchecked.
_PUBLIC_MEMBERS: dict[str, frozenset[str]] = {
    "OKP": frozenset({"crv", "x"}),
    "EC": frozenset({"crv", "x", "y"}),
    "RSA": frozenset({"n", "e"}),
}
_COMMON_MEMBERS = frozenset({"kty", "kid", "use", "alg", "key_ops"})

#: RFC 7517 §4 / RFC 7518 §6.2.2, §6.3.2, §6.4 / RFC 8037 §2: private key members.

#: The curves we verify signatures on. secp256k1 (RFC 8812) is not among them, and
#: X25519/X448 are key-agreement curves (RFC 8037 §3.2), never signing keys.
_CURVES: dict[str, frozenset[str]] = {
    "OKP": frozenset({"Ed25519"}),
    "EC": frozenset({"P-256", "P-384", "P-521"}),
}


def algorithms_for_jwk(kty: str, crv: str | None) -> frozenset[str]:
    """The signing algorithms a key of this type and curve may be used with."""
    return algorithms_for_key(kty, crv if kty in ("OKP", "EC") else None)


def _check_members(jwk: Mapping[str, Any]) -> tuple[str, str | None]:
    """Shape checks before any parsing: what kind of key, and nothing that is not public."""
    if any(name in PRIVATE_MEMBERS for name in jwk):
        raise InvalidRequest("A key in the JWKS contains private key material.")
    kty = jwk.get("kty")
    if kty == "oct":
        raise InvalidRequest("Symmetric (oct) keys are not accepted in a JWKS.")
    if not isinstance(kty, str) or kty not in _PUBLIC_MEMBERS:
        raise InvalidRequest("A key in the JWKS has an unsupported key type.")
    if any(name not in _PUBLIC_MEMBERS[kty] and name not in _COMMON_MEMBERS for name in jwk):
        raise InvalidRequest("A key in the JWKS has an unsupported member.")
    for name, value in jwk.items():
        if name == "key_ops":
            continue
        if not isinstance(value, str) or not value:
            raise InvalidRequest("A key in the JWKS has a member that is not a non-empty string.")
        if len(value) > MAX_MEMBER_LENGTH:
            raise InvalidRequest("A key in the JWKS has a member that is too long.")

    kid = jwk.get("kid")
    if kid is None:
        raise InvalidRequest("Every key in the JWKS needs a kid.")
    if len(kid) > MAX_KID_LENGTH or not kid.isascii() or not kid.isprintable():
        raise InvalidRequest("A kid in the JWKS is too long or not printable ASCII.")

    # RFC 7517 §4.2: "sig" (signature) is the only use a verification key has here.
    if "use" in jwk and jwk["use"] != "sig":
        raise InvalidRequest("A key in the JWKS has a use other than sig.")
    # RFC 7517 §4.3: for a public key the only signing operation is "verify".
    if "key_ops" in jwk and jwk["key_ops"] != ["verify"]:
        raise InvalidRequest("A key in the JWKS has key_ops other than verify.")

    crv: str | None = None
    if kty in _CURVES:
        crv = jwk.get("crv")
        if crv not in _CURVES[kty]:
            raise InvalidRequest("A key in the JWKS uses an unsupported curve.")
    if "alg" in jwk and jwk["alg"] not in algorithms_for_jwk(kty, crv):
        raise InvalidRequest("A key's alg does not match its key type or curve.")
    return kty, crv


def _import(jwk: Mapping[str, Any]) -> OKPKey | ECKey | RSAKey:
    try:
        with warnings.catch_warnings():
            # joserfc warns about weak keys; the size is checked below and refused instead.
            warnings.simplefilter("ignore", SecurityWarning)
            key = JWKRegistry.import_key(dict(jwk))
    except (JoseError, ValueError, TypeError, KeyError):
        # Bad base64url, a point off the curve, a wrong-length Ed25519 key, e < 3, ...
        raise InvalidRequest("A key in the JWKS is not a valid public key.") from None
    if not isinstance(key, OKPKey | ECKey | RSAKey) or key.is_private:
        raise InvalidRequest("A key in the JWKS is not a valid public key.")
    if isinstance(key, RSAKey) and not RSA_MIN_BITS <= key.public_key.key_size <= RSA_MAX_BITS:
        raise InvalidRequest("RSA keys in the JWKS must have 2048 to 8192 bits.")
    return key


def validate_public_jwks(obj: object) -> dict[str, Any]:
    """Check a submitted JWKS and return its canonical public form, ready to store.

    Raises ``InvalidRequest`` naming the first problem found.
    """
    if not isinstance(obj, dict):
        raise InvalidRequest("The JWKS must be a JSON object with a keys array.")
    if set(obj) != {"keys"}:
        raise InvalidRequest("The JWKS must have exactly one member, keys.")
    keys = obj["keys"]
    if not isinstance(keys, list) or not keys:
        raise InvalidRequest("The JWKS keys member must be a non-empty array.")
    if len(keys) > MAX_KEYS:
        raise InvalidRequest(f"The JWKS may hold at most {MAX_KEYS} keys.")

    result: list[dict[str, Any]] = []
    kids: set[str] = set()
    thumbprints: set[str] = set()
    for jwk in keys:
        if not isinstance(jwk, dict):
            raise InvalidRequest("Every key in the JWKS must be a JSON object.")
        _check_members(jwk)
        key = _import(jwk)
        kid = jwk["kid"]
        if kid in kids:
            # Verifiers select the key by kid (RFC 7517 §4.5): two keys with one kid would
            # make the choice ambiguous.
            raise InvalidRequest("Two keys in the JWKS have the same kid.")
        kids.add(kid)
        thumbprint = key.thumbprint()
        if thumbprint in thumbprints:
            raise InvalidRequest("The JWKS contains the same key twice.")
        thumbprints.add(thumbprint)
        # Only the members validated above, in the submitted order: what is stored is
        # exactly what was checked.
        result.append({name: jwk[name] for name in jwk})
    return {"keys": result}


def key_set(jwks: Mapping[str, Any]) -> KeySet:
    """joserfc's ``KeySet`` for a JWKS that ``validate_public_jwks`` accepted."""
    return KeySet([JWKRegistry.import_key(dict(jwk)) for jwk in jwks["keys"]])
