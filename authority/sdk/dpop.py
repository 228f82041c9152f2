"""DPoP proofs (RFC 9449 §4.3): checked by resource servers and, through
``authority.tokens.dpop``, at the token endpoint.

The proof's own ``jwk`` header is the key it is checked with (that is the point of DPoP);
it must be a public, asymmetric key of an allowed kind. Replay of ``jti`` is checked by
the caller against shared state, after every other check passed.

A client signs every proof with the same key, so the key is imported, checked and
thumbprinted once: the result is kept (``PROOF_KEY_CACHE_SIZE`` keys, least recently
used dropped first) under the proof's exact encoded header, which holds the ``jwk``
byte for byte. A different key, or the same key written differently, is another entry;
a key that is refused is never kept. The signature of every proof is still checked.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode

from authority.protocol import DPOP_ALGORITHMS, DPOP_TYP, PRIVATE_MEMBERS, access_token_hash
from authority.sdk.jws import (
    JWTRejected,
    PreparedKey,
    algorithms_for,
    peek,
    require_int,
    require_str,
)

__all__ = [
    "DPOP_TYP",
    "MIN_RSA_BITS",
    "PROOF_KEY_CACHE_SIZE",
    "VerifiedProof",
    "access_token_hash",
    "normalise_htu",
    "verify_proof",
]

MIN_RSA_BITS = 2048
#: How many proof keys are kept imported and thumbprinted (one per client, about 1 kB each).
PROOF_KEY_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    jkt: str  # RFC 7638 thumbprint of the proof's key: what the token is bound to
    jti: str
    iat: int


@functools.lru_cache(maxsize=1024)
def normalise_htu(url: str) -> str:
    """RFC 9449 §4.3 item 9: compare without query and fragment (scheme and host folded).

    A URL ``urlsplit`` cannot read (``http://[``, from the proof or from a ``Host``
    header) matches nothing: it is the proof's ``dpop_bad_htu``, never a ``ValueError``.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.lower()
    except ValueError:
        raise JWTRejected("dpop_bad_htu") from None
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


def _proof_key(header: dict[str, Any] | Any) -> OKPKey | ECKey | RSAKey:
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise JWTRejected("dpop_missing_jwk")
    # RFC 9449 §4.3 item 7: "the jwk JOSE Header Parameter does not contain a private key".
    if PRIVATE_MEMBERS & jwk.keys():
        raise JWTRejected("dpop_private_jwk")
    try:
        with warnings.catch_warnings():
            # Weak keys are refused below with our own reason, not a library warning.
            warnings.simplefilter("ignore", SecurityWarning)
            key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError):
        raise JWTRejected("dpop_bad_jwk") from None
    if not isinstance(key, OKPKey | ECKey | RSAKey) or key.is_private:
        raise JWTRejected("dpop_bad_jwk")
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        raise JWTRejected("dpop_weak_key")
    return key


@functools.lru_cache(maxsize=PROOF_KEY_CACHE_SIZE)
def _prepared_proof_key(header_segment: bytes) -> tuple[PreparedKey, str]:
    """The proof key of this exact encoded header, ready to verify, and its RFC 7638
    thumbprint. Only keys that pass every check are returned (and so kept): a refused
    one raises, and ``lru_cache`` keeps no exception."""
    # ``peek`` decoded these very bytes already; decoding them again on a miss is what
    # keeps the cache's key and its value from ever coming from two different headers.
    header = json.loads(urlsafe_b64decode(header_segment).decode())
    key = _proof_key(header)
    # items 5-6: an asymmetric algorithm we support, with which the signature verifies
    prepared = PreparedKey(key, algorithms_for(key) & frozenset(DPOP_ALGORITHMS))
    return prepared, key.thumbprint()


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: int,
    skew: int,
    max_age: int,
    access_token: str | None = None,
) -> VerifiedProof:
    """Every check of RFC 9449 §4.3 except replay and nonce (the caller holds those)."""
    unverified = peek(proof)  # items 2-3: one well-formed JWT
    # item 4: "the typ JOSE Header Parameter has the value dpop+jwt"
    if unverified.header.get("typ") != DPOP_TYP:
        raise JWTRejected("dpop_wrong_typ")
    if not isinstance(unverified.header.get("jwk"), dict):
        raise JWTRejected("dpop_missing_jwk")
    prepared, jkt = _prepared_proof_key(unverified.segments[0])
    # items 5-6: the signature verifies with jwk under an algorithm allowed for it
    claims = prepared.verify(unverified)
    jti = require_str(claims, "jti", max_length=256)
    # item 8: "the htm claim matches the HTTP method of the current request"
    if claims.get("htm") != method:
        raise JWTRejected("dpop_bad_htm")
    # item 9: "the htu claim matches the HTTP URI value for the HTTP request in which the
    # JWT was received, ignoring any query and fragment parts"
    htu = require_str(claims, "htu")
    if normalise_htu(htu) != normalise_htu(url):
        raise JWTRejected("dpop_bad_htu")
    # item 11: "the creation time of the JWT ... is within an acceptable window"
    iat = require_int(claims, "iat")
    if iat > now + skew or iat < now - max_age:
        raise JWTRejected("dpop_stale")
    # item 12: with an access token, ath must be its hash
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise JWTRejected("dpop_bad_ath")
    return VerifiedProof(jkt=jkt, jti=jti, iat=iat)
